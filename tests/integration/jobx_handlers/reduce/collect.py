"""
The distinct words of one sentence per length, and how many words it had.

**json
{
    "argument_spec": [
        {"name": "results", "type": "list"}
    ],
    "handler_type": "reducer",
    "required_capability": "none"
}
"""

collected = [(length, sorted(set(words))) for (length, words) in results]
collected.append(('words', S_GET('words')))
return collected
