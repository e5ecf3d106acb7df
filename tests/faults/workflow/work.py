"""
Takes a moment, then counts its pair and adds up its number.

**
argument_spec:
    - {name: arguments, type: list}
handler_type: mapper
required_capability: none
"""
import time

time.sleep(0.05)
yield MrConfigureToReturn()
for _key, number in arguments:
    yield ('count', 1)
    yield ('sum', number)
