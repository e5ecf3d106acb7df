"""
Add up the counts of each word on the map side, before they are spilled to the shuffle.

**
argument_spec:
    -
        name: results
        type: list

handler_type: combiner
required_capability: none
"""

for word, counts in results:
    yield (word, [sum(counts)])
