"""The default combiner: group values by key, as reducers expect their ``results``."""
from __future__ import annotations

from typing import Any, Iterable

from mr import codec


def group_by_key(pairs: Iterable[Any]) -> list[list]:
    """``[[k, [v, ...]], ...]`` with the values of equal keys in arrival order.

    Keys come in sorted when they are mutually comparable (what JobX users relied on), else in
    order of first appearance. Keys that are lists (tuples become lists on the way) are grouped
    by their encoding, since lists are not hashable.
    """
    groups: dict[Any, list] = {}
    keys: dict[Any, Any] = {}
    for key, value in pairs:
        identity = codec.encode(key) if isinstance(key, (list, dict)) else (type(key), key)
        if identity not in groups:
            groups[identity] = []
            keys[identity] = key
        groups[identity].append(value)
    identities = list(groups)
    try:
        identities.sort(key=lambda identity: keys[identity])
    except TypeError:
        pass  # keys of mixed types: keep the order of first appearance
    return [[keys[identity], groups[identity]] for identity in identities]


def merge_groups(groups: Iterable[Any]) -> list[list]:
    """Regroup ``[k, [values]]`` items that a custom combiner may have emitted per key twice."""
    return group_by_key((key, value) for key, values in groups for value in values)
