"""
Splits every text into sentences; each sentence becomes its own "words" invocation.

**
argument_spec:
    -
        name: arguments
        type: list

handler_type: mapper
required_capability: none
"""

yield MrConfigureToMap('words')

index = 0
for (title, text) in arguments:
    for sentence in text.split('.'):
        sentence = sentence.strip()
        if sentence:
            yield ('%s#%d' % (title, index), sentence)
            index += 1
