"""
Maps to one child of step "echo" per number below the argument "children": ("sum", number).

**
argument_spec:
    - {name: arguments, type: list}
handler_type: mapper
required_capability: none
"""

yield MrConfigureToMap('echo')
for _name, count in arguments:
    for number in range(count):
        yield ('sum', number)
