"""
Split a word count over documents: one "count" map invocation per document.

Arguments are the request's (name, text) pairs, one per document.

**
argument_spec:
    -
        name: arguments
        type: list

handler_type: mapper
required_capability: none
"""

yield MrConfigureToMap('count')

for document_name, text in arguments:
    yield (document_name, text)
