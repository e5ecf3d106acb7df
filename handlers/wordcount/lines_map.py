"""
Count the words of the lines of text files read by reference: a 1 per word, lower-cased.

Arguments are the input split's records, ``[[file, offset], line]``, read lazily.

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

words = re.compile(r"\w+")
for _position, line in arguments:
    for word in words.findall(line.lower()):
        yield (word, 1)
