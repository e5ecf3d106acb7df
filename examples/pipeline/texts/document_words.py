"""
Keys each word of a text file's lines by its document (the file's name without its suffix),
with its count in this split: words are counted here before they are yielded, one pair per
distinct word of the split.

**
argument_spec: [{name: arguments, type: list}]
handler_type: mapper
required_capability: none
"""
import collections
import os
import re

yield MrConfigureToReturn()

words = re.compile(r"[a-z]+")
counts = collections.Counter()
for (path, offset), line in arguments:
    document = os.path.splitext(os.path.basename(path))[0]
    counts.update((document, word) for word in words.findall(line.lower()))
for (document, word), count in counts.items():
    yield [document, word], count
