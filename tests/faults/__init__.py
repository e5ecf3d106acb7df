"""The fault suite: a local distributed mr (etcd, nsqd, worker processes, the gunicorn front end,
nginx in front for the soak) under load over HTTP while faults are injected; each scenario
prints its figures and whether its expectations held. See docs/reliability.rst.

``python -m tests.faults`` (or ``scripts/faults``) runs the full program; tests/faults/test_quick.py
runs the quick subset in the test suite."""
