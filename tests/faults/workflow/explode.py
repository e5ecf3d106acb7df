"""
Fails on purpose, after saying so on stdout.

**
argument_spec:
    - {name: results, type: list}
handler_type: reducer
required_capability: none
"""

print('exploding now')
raise RuntimeError('boom: %d keys' % len(results))
