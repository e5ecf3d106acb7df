"""
The three values of each statistic with the largest n, largest first (ties: smallest value).

**
argument_spec: [{name: results, type: list}]
handler_type: reducer
required_capability: none
"""

for statistic, values in results:
    yield statistic, sorted(values, key=lambda pair: (-pair[1], pair[0]))[:3]
