"""``python -m tests.faults [--quick] [--scenario NAME]... [--requests N] ...``: run the fault
suite's scenarios, print their figures, exit 1 if any expectation failed."""
from gevent import monkey

if not monkey.is_module_patched("socket"):  # scripts/faults patches before this module runs
    monkey.patch_all()

import argparse  # noqa: E402
import datetime  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from mr import devservers  # noqa: E402
from tests.faults import pathological, server_kills, soak, worker_kills  # noqa: E402
from tests.faults.plan import Plan  # noqa: E402

SCENARIOS = {module.NAME: module.run
             for module in (worker_kills, server_kills, pathological, soak)}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="the small plan that CI runs (tests/faults/test_quick.py)")
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS), metavar="NAME",
                        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}")
    parser.add_argument("--requests", type=int, help="requests of the kill scenarios")
    parser.add_argument("--rate", type=float, dest="rate_per_s",
                        help="requests submitted per second")
    parser.add_argument("--kills", type=int, dest="worker_kills", help="worker kills")
    parser.add_argument("--deadline-s", type=float, help='"deadline_s" of the server kills')
    parser.add_argument("--soak-seconds", type=float, dest="soak_s", help="soak duration")
    parser.add_argument("--soak-clients", type=int, help="concurrent soak clients")
    parser.add_argument("--workers", type=int, help="mr worker processes")
    parser.add_argument("--seed", type=int, help="seed of the random choices")
    parser.add_argument("--data-dir", type=Path,
                        help="where each scenario's cluster keeps its logs (default: a new "
                             "temporary directory, kept)")
    return parser.parse_args(argv)


def machine() -> str:
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return (f"{datetime.date.today()}, {os.cpu_count()} cores, {memory_gib:.1f} GiB, "
            f"load average {os.getloadavg()[0]:.2f}, Python {platform.python_version()}, "
            f"{devservers.binary_version('etcd')}, {devservers.binary_version('nsqd')}")


def main(argv: list[str]) -> int:
    arguments = parse(argv)
    plan = (Plan.quick() if arguments.quick else Plan()).but(
        **{name: getattr(arguments, name) for name in (
            "requests", "rate_per_s", "worker_kills", "deadline_s", "soak_s", "soak_clients",
            "workers", "seed")})
    root = arguments.data_dir or Path(tempfile.mkdtemp(prefix="mr-faults-"))
    print(f"mr fault suite on {machine()}\n{plan}\nlogs under {root}\n", flush=True)
    outcomes = {}
    for name in arguments.scenario or SCENARIOS:
        began = time.monotonic()
        report = SCENARIOS[name](plan, root.resolve() / name, plan.rng(name))
        report.record(scenario_took_s=round(time.monotonic() - began, 1))
        print(report.render() + "\n", flush=True)
        outcomes[name] = report.ok
    print("summary: " + ", ".join(f"{name} {'PASS' if ok else 'FAIL'}"
                                  for name, ok in outcomes.items()))
    return 0 if all(outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
