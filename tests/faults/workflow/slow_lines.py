"""
Count the records of an input split and sum their numbers (one integer per line), slowly: a
split takes about a second, so that a worker can be killed while the shuffle runs.

**
argument_spec:
    -
        name: arguments
        type: list

handler_type: mapper
required_capability: none
"""
import time

yield MrConfigureToReturn()

lines = [int(line) for _position, line in arguments]
time.sleep(1)
for number in lines:
    yield number % 7, number
