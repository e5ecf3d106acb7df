"""
Re-keys a document's count of a word by the word alone, with one document to its name.

**
argument_spec: [{name: arguments, type: list}]
handler_type: mapper
required_capability: none
"""

yield MrConfigureToReturn()
for (document, word), count in arguments:
    yield word, [count, 1]
