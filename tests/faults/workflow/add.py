"""
Sums the values of each key.

**
argument_spec:
    - {name: results, type: list}
handler_type: reducer
required_capability: none
"""

for key, values in results:
    yield (key, sum(values))
