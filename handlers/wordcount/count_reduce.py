"""
Total the counts of each word of one document.

Written in the "return an iterable" style that reducers may use instead of yielding.

**json
{
    "argument_spec": [{"name": "results", "type": "list"}],
    "handler_type": "reducer",
    "required_capability": "none"
}
"""

return [(word, sum(counts)) for word, counts in results]
