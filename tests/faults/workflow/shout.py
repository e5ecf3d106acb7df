"""
Prints "megabytes" MiB to stdout, in lines of 1 KiB; then raises if "fail" is true, else
answers how many bytes it printed.

**
argument_spec:
    - {name: arguments, type: list}
handler_type: mapper
required_capability: none
"""

options = dict(arguments)
line = 'x' * 1023
for _ in range(options['megabytes'] * 1024):
    print(line)
if options['fail']:
    raise RuntimeError('shouted %d MiB, then failed' % options['megabytes'])
yield MrConfigureToReturn()
yield ('printed_bytes', options['megabytes'] * 1024 * 1024)
