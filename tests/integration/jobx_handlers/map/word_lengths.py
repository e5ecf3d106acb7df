"""
Keys every word of one sentence by its length.

**yaml
argument_spec:
    -
        name: arguments
        type: list

handler_type: mapper
required_capability: none
"""

yield MrConfigureToReturn()

(sentence_id, sentence) = arguments[0]
words = sentence.lower().split()
S_SET('words', len(words))
PRINT('sentence %s has %d words' % (sentence_id, len(words)))

for word in words:
    yield (len(word), word)
