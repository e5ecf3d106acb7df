"""
[start, branches, leaves] -> one "spread" child per branch, each over the next "leaves" numbers
from "start" on: two levels of branching.

**
argument_spec:
    - {name: arguments, type: list}
handler_type: mapper
required_capability: none
"""

yield MrConfigureToMap('spread')
for _name, (start, branches, leaves) in arguments:
    for branch in range(branches):
        first = start + branch * leaves
        yield ('span', [first, first + leaves])
