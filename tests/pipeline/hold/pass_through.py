"""
Yields every value of every key as it came.

**
argument_spec: [{name: results, type: list}]
handler_type: reducer
required_capability: none
"""

for key, values in results:
    for value in values:
        yield key, value
