"""The map and reduce functions of the peers' jobs: the same work as the ``echo`` mapper and
the ``add`` reducer of ``benchmarks/jobs``, over JSON-like lists of ``[key, value]`` pairs."""
from __future__ import annotations


def echo(arguments: list) -> list:
    """A map task's pairs, unchanged."""
    return [list(pair) for pair in arguments]


def add(outputs: list[list]) -> list:
    """The values of each key over every map task's pairs, summed."""
    sums: dict = {}
    for pairs in outputs:
        for key, value in pairs:
            sums[key] = sums.get(key, 0) + value
    return [[key, total] for key, total in sums.items()]


def fan_out_arguments(children: int) -> list[list]:
    """The arguments of each child of a fan-out, as the ``fan_out`` mapper maps them."""
    return [[["sum", number]] for number in range(children)]


def check(answer: list, expected: list, what: str) -> None:
    if answer != expected:
        raise AssertionError(f"{what} answered {answer!r:.300}, not {expected!r}")


def fan_out_result(children: int) -> list:
    return [["sum", sum(range(children))]]
