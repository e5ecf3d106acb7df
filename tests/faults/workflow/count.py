"""
Counts its pairs and adds up their numbers, at once: the leaf of the fault suite's requests.

**
argument_spec:
    - {name: arguments, type: list}
handler_type: mapper
required_capability: none
"""

yield MrConfigureToReturn()
for _key, number in arguments:
    yield ('count', 1)
    yield ('sum', number)
