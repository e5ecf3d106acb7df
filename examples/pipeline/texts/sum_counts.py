"""
Adds up the counts of each key.

**
argument_spec: [{name: results, type: list}]
handler_type: reducer
required_capability: none
"""

for key, counts in results:
    yield key, sum(counts)
