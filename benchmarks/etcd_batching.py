"""What transactions sent together (mr.kv.batching) save etcd and its client: the same
transactions, each a request's record created under a compare, made one after another and by
concurrent greenlets, through ``EtcdKV.txn`` as mr sends them and with every one sent alone.

Usage: ``python -m benchmarks.etcd_batching``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import gevent

from benchmarks.common import cpu_used
from mr import devservers
from mr.kv import batching
from mr.kv.base import Compare, Put
from mr.kv.etcd import EtcdKV

TRANSACTIONS = 1600
#: Greenlets making transactions at once, as a front end's requests or a worker's slots do.
CONCURRENCY = (1, 8, 16)
#: About the size of a trivial request's record.
RECORD = b"r" * 600


def create_records(kv: EtcdKV, count: int, concurrency: int) -> None:
    """``count`` records created under compares, by ``concurrency`` greenlets."""
    def create(number: int) -> None:
        for _ in range(number):
            key = f"/benchmark/{uuid.uuid4().hex}"
            assert kv.txn([Compare(key, "create_revision", "==", 0),
                           Compare("/benchmark-marker", "mod_revision", "==", 0)],
                          [Put(key, RECORD), Put(f"{key}/finished", b"")]).succeeded

    gevent.joinall([gevent.spawn(create, count // concurrency) for _ in range(concurrency)],
                   raise_error=True)


def measure(kv: EtcdKV, etcd_pid: int, concurrency: int, together: bool) -> str:
    calls_in_flight = batching.CALLS_IN_FLIGHT if together else TRANSACTIONS
    previous, batching.CALLS_IN_FLIGHT = batching.CALLS_IN_FLIGHT, calls_in_flight
    try:
        with cpu_used({"etcd": etcd_pid}) as used:
            started = time.perf_counter()
            create_records(kv, TRANSACTIONS, concurrency)
            elapsed = time.perf_counter() - started
    finally:
        batching.CALLS_IN_FLIGHT = previous
    per_ms = {name: seconds * 1000 / TRANSACTIONS for name, seconds in used.items()}
    return (f"{concurrency:>2} at once, {'together' if together else 'alone   '}: "
            f"{TRANSACTIONS / elapsed:,.0f} transactions/s; CPU ms per transaction: "
            f"etcd {per_ms['etcd']:.3f}, client {per_ms['client']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.etcd_batching",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2,
                        help="times each case runs, the cases interleaved (default 2)")
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mr-benchmark-batching-") as directory:
        server = devservers.etcd(Path(directory), tie_to_parent=True).start()
        host, port = server.addresses["client"].rsplit("/", 1)[-1].split(":")
        kv = EtcdKV(host, int(port))
        try:
            create_records(kv, 200, 8)  # warm-up: connections open, etcd's caches filled
            for _ in range(arguments.rounds):
                for concurrency in CONCURRENCY:
                    for together in ((False,) if concurrency == 1 else (False, True)):
                        print(measure(kv, server.pid, concurrency, together), flush=True)
        finally:
            kv.close()
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
