"""
Groups the values of each statistic: [[statistic, value], n] -> [statistic, [value, n]].

**
argument_spec: [{name: arguments, type: list}]
handler_type: mapper
required_capability: none
"""

yield MrConfigureToReturn()
for (statistic, value), n in arguments:
    yield statistic, [value, n]
