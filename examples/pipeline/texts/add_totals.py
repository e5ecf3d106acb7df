"""
Adds up a word's counts and documents: [word, [occurrences, documents using it]].

**
argument_spec: [{name: results, type: list}]
handler_type: reducer
required_capability: none
"""

for word, pairs in results:
    yield word, [sum(count for count, _ in pairs), sum(documents for _, documents in pairs)]
