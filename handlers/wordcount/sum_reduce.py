"""
Total the counts of each word over all documents (reduces the children of the branching map).

**
argument_spec:
    -
        name: results
        type: list

handler_type: reducer
required_capability: none
"""

for word, counts in results:
    yield (word, sum(counts))
