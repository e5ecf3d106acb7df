"""
Never yields a pair: it spins on the CPU until it is killed.

**
argument_spec:
    - {name: arguments, type: list}
handler_type: mapper
required_capability: none
"""

yield MrConfigureToReturn()
while True:
    pass
