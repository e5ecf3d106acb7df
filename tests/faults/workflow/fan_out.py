"""
One child invocation of step "work" per number below the argument "n".

**
argument_spec:
    - {name: arguments, type: list}
handler_type: mapper
required_capability: none
"""

yield MrConfigureToMap('work')
for _name, count in arguments:
    for number in range(count):
        yield ('item', number)
