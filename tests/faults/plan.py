"""How big each scenario is: the full run (``python -m tests.faults``) and the quick subset that
CI runs (``--quick``, tests/faults/test_quick.py)."""
from __future__ import annotations

import dataclasses
import random


@dataclasses.dataclass(frozen=True)
class Plan:
    #: Worker and server kills: requests submitted, how fast, from how many client greenlets.
    requests: int = 1000
    rate_per_s: float = 20.0
    clients: int = 4
    workers: int = 2
    worker_kills: int = 20
    #: How long, after the last submission, every request has to end (worker kills).
    wait_s: float = 120.0
    #: Killed and restarted in this order, spread over the submission (server kills).
    server_kills: tuple[str, ...] = ("nsqd", "etcd")
    #: How long each killed server stays down before it is started again.
    server_down_s: float = 3.0
    #: The body's "deadline_s" of every request of the server kills.
    deadline_s: float = 60.0
    pathological: tuple[str, ...] = ("raise", "spin", "hog", "print", "print-then-raise")
    soak_s: float = 60.0
    soak_warmup_s: float = 5.0
    soak_clients: int = 200
    seed: int = 1

    @classmethod
    def quick(cls) -> "Plan":
        """Every kind of fault once, small: about two minutes on two cores."""
        return cls(requests=100, rate_per_s=10.0, worker_kills=3, wait_s=60.0,
                   server_kills=("nsqd",), deadline_s=20.0, pathological=("spin", "hog"),
                   soak_s=10.0, soak_warmup_s=2.0, soak_clients=50)

    def but(self, **changes) -> "Plan":
        """This plan with the given fields changed (None: unchanged)."""
        return dataclasses.replace(self, **{name: value for name, value in changes.items()
                                            if value is not None})

    def rng(self, scenario: str) -> random.Random:
        """The random choices of one scenario: the same for the same seed, whatever else runs."""
        return random.Random(f"{self.seed}/{scenario}")
