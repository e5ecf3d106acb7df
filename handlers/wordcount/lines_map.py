"""
Count the words of the lines of text files read by reference, lower-cased.

Arguments are the records of the invocation's input splits, ``[[file, offset], line]``, read
lazily. The counts are added up here, per invocation, before they are yielded (in-mapper
combining): one pair per distinct word instead of one per occurrence, which spares the shuffle
most of its work.

**
argument_spec:
    -
        name: arguments
        type: list

handler_type: mapper
required_capability: none
"""
import collections
import itertools
import operator
import re

yield MrConfigureToReturn()

words = re.compile(r"\w+")
counts = collections.Counter()
lines = map(operator.itemgetter(1), arguments)  # the records are [[file, offset], line]
while batch := list(itertools.islice(lines, 1000)):  # one findall per 1000 lines: fewer calls
    counts.update(words.findall("\n".join(batch).lower()))
yield from counts.items()
