"""mr beside its peers, Celery and Dask: P1 and P2 run on each in the same run as mr's
(``python -m benchmarks --peers``).

:mod:`benchmarks.peers.running` starts the peers' servers and runs their measurements,
:mod:`benchmarks.peers.compare` sets the figures side by side; both run in mr's venv. The peers'
own code, ``peer_jobs``, runs in the peers' venv (``.venv-peers``) and imports nothing of mr.
"""
