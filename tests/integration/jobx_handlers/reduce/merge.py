"""
Merges the sentences: distinct words per length, and the total word count.

**
argument_spec:
    -
        name: results
        type: list

handler_type: reducer
required_capability: none
"""

for (key, values) in results:
    if key == 'words':
        yield (key, sum(values))
    else:
        merged = set()
        for words in values:
            merged.update(words)
        yield (key, sorted(merged))
