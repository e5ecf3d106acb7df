"""
One leaf per number of the span [start, stop) it gets.

**
argument_spec:
    - {name: arguments, type: list}
handler_type: mapper
required_capability: none
"""

yield MrConfigureToMap('leaf')
for _name, (start, stop) in arguments:
    for number in range(start, stop):
        yield ('number', number)
