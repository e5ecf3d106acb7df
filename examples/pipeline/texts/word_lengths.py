"""
One for each distinct word, keyed by its length.

**
argument_spec: [{name: arguments, type: list}]
handler_type: mapper
required_capability: none
"""

yield MrConfigureToReturn()
for word, (count, documents) in arguments:
    yield ["length", len(word)], 1
