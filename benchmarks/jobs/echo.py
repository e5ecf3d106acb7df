"""
Returns its pairs unchanged.

**
argument_spec:
    - {name: arguments, type: list}
handler_type: mapper
required_capability: none
"""

yield MrConfigureToReturn()
for pair in arguments:
    yield pair
