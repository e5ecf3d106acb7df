"""
Waits until the file named by the environment variable MR_TEST_GATE exists, then yields its
pairs unchanged.

**
argument_spec: [{name: arguments, type: list}]
handler_type: mapper
required_capability: none
"""
import os
import time

yield MrConfigureToReturn()
while not os.path.exists(os.environ["MR_TEST_GATE"]):
    time.sleep(0.05)
yield from arguments
