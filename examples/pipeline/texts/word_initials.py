"""
A word's occurrences, keyed by its first letter.

**
argument_spec: [{name: arguments, type: list}]
handler_type: mapper
required_capability: none
"""

yield MrConfigureToReturn()
for word, (count, documents) in arguments:
    yield ["initial", word[0]], count
