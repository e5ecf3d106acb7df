"""
Allocates 64 MiB at a time (pages written, so resident) and keeps all of it. It stops at 2 GiB,
far above any executor memory limit, so that where no limit holds it cannot take the machine
down with it; then it answers how much it holds.

**
argument_spec:
    - {name: arguments, type: list}
handler_type: mapper
required_capability: none
"""

chunk = 64 * 1024 * 1024
held = []
while len(held) * chunk < 2 * 1024 * 1024 * 1024:
    held.append(b'x' * chunk)
yield MrConfigureToReturn()
yield ('held_mib', len(held) * 64)
