"""
Count the words of one document: a 1 per word, lower-cased.

**
argument_spec:
    -
        name: arguments
        type: list

handler_type: mapper
required_capability: none
"""
import re

yield MrConfigureToReturn()

for _document_name, text in arguments:
    for word in re.findall(r"\w+", text):
        yield (word.lower(), 1)
