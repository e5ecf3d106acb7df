"""What a handler produced, checked against what its type may produce, whatever its language.

A processor turns a handler's output into items: the markers, then ``(key, value)`` pairs (the
Python processor gives the handler's own iterable; the exec processor decodes its messages into
the same items), so the rules and their messages are the same for every language.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from mr.executor.protocol import HandlerProtocolError, Task
from mr.handlers.scope import MrConfigureToMap, MrConfigureToReturn

_NOTHING = object()


def collect(result: Any, task: Task) -> tuple[dict | None, list]:
    """``(directive, pairs)``: the directive of a mapper (None for the others) and the pairs."""
    directive, pairs = stream(result, task)
    return directive, list(pairs)


def stream(result: Any, task: Task) -> tuple[dict | None, Iterator[list]]:
    """As :func:`collect`, the pairs as they come (checked one by one), for a sink that writes
    them without holding them all."""
    if task.handler_type == "mapper":
        return _mapper_stream(result, task)
    return None, _pairs_stream(result, task)


def _mapper_stream(result: Iterable, task: Task) -> tuple[dict, Iterator[list]]:
    items = iter(result)
    first = next(items, _NOTHING)
    if first is _NOTHING:
        raise HandlerProtocolError(f"mapper {task.handler_name!r} yielded nothing; its first "
                                   f"item must be MrConfigureToMap(step) or MrConfigureToReturn()")
    if isinstance(first, MrConfigureToMap):
        directive = {"kind": "map", "step": first.step_name}
    elif isinstance(first, MrConfigureToReturn):
        directive = {"kind": "return"}
    else:
        raise HandlerProtocolError(f"mapper {task.handler_name!r} yielded {first!r:.200} first; "
                                   f"its first item must be MrConfigureToMap(step) or "
                                   f"MrConfigureToReturn()")
    return directive, _checked(items, 2, task)


def _pairs_stream(result: Any, task: Task) -> Iterator[list]:
    """Combiners and reducers: a generator, or a returned iterable."""
    if isinstance(result, (str, bytes, dict)) or not hasattr(result, "__iter__"):
        raise HandlerProtocolError(f"{task.handler_type} {task.handler_name!r} returned "
                                   f"{result!r:.200}; it must yield (key, value) pairs or "
                                   f"return an iterable of them")
    pairs = _checked(result, 1, task)
    if task.handler_type == "combiner":
        return ([key, _values(values, key, task)] for key, values in pairs)
    return pairs


def _checked(items: Iterable, first_number: int, task: Task) -> Iterator[list | tuple]:
    """The items, each checked to be a pair (not copied: every consumer unpacks or encodes
    it); ``first_number``: the number of the first in the handler's output, for errors."""
    for number, item in enumerate(items, first_number):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise HandlerProtocolError(
                f"{task.handler_type} {task.handler_name!r} produced {item!r:.200} (a "
                f"{type(item).__name__}) as item {number}; every item must be a (key, value) "
                f"pair")
        yield item


def _values(values: Any, key: Any, task: Task) -> list:
    """A combiner gives each key an iterable of values."""
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise HandlerProtocolError(f"combiner {task.handler_name!r} produced {values!r:.200} "
                                   f"for key {key!r:.100}; a combiner yields (key, values) with "
                                   f"values a list of values")
    return list(values)
