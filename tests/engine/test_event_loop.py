"""A worker's event loop stays responsive while it moves and groups a large fan-in.

Touches and NSQ heartbeats of every in-flight message run on the worker's one event loop; if
decoding, grouping or writing a request's bulk data held it for a message timeout, every other
message of that worker would be delivered again. Here 50 children each reduce to about 1 MB,
and the branch's reducer runs over all of them (about 50 MB, 250,000 keys) while a greenlet that
sleeps 10 ms at a time records the longest gap between its wake-ups.
"""
import time

import gevent

from mr.grouping import INLINE_PAIRS, SORT_RUN_KEYS, group_by_key
from tests.conftest import TEST_MESSAGE_TIMEOUT_S

CHILDREN = 50
PAIRS_PER_CHILD = 5_000

FAN_OUT = f"""
yield MrConfigureToMap('leaf')
for child in range({CHILDREN}):
    yield child, child
"""
LEAF_MAPPER = """
yield MrConfigureToReturn()
for key, value in arguments:
    yield key, value
"""
#: About 200 bytes per pair: 1 MB per child, every key distinct.
MEGABYTE_REDUCER = f"""
for child, values in results:
    for number in range({PAIRS_PER_CHILD}):
        yield f"{{child:03d}}-{{number:06d}}-" + "k" * 30, "v" * 150
"""
SUMMARY_REDUCER = """
yield "keys", len(results)
yield "first", results[0][0]
yield "last", results[-1][0]
"""


class LongestGap:
    """The longest time between wake-ups of a greenlet that asks to sleep 10 ms at a time."""

    def __init__(self):
        self.longest_s = 0.0
        self._greenlet = gevent.spawn(self._sleep_forever)

    def _sleep_forever(self):
        woke = time.monotonic()
        while True:
            gevent.sleep(0.01)
            now = time.monotonic()
            self.longest_s = max(self.longest_s, now - woke)
            woke = now

    def stop(self) -> float:
        self._greenlet.kill()
        return self.longest_s


def test_a_large_fan_in_does_not_stall_the_event_loop(cluster):
    cluster.handler("fan_out", "mapper", FAN_OUT)
    cluster.handler("leaf_map", "mapper", LEAF_MAPPER)
    cluster.handler("megabyte", "reducer", MEGABYTE_REDUCER)
    cluster.handler("summary", "reducer", SUMMARY_REDUCER)
    cluster.step("leaf", "leaf_map", "megabyte")
    cluster.step("root", "fan_out", "summary")
    cluster.job("fan_in", "root")

    gap = LongestGap()
    try:
        request = cluster.run("fan_in", {"start": 0})
    finally:
        longest_s = gap.stop()

    assert longest_s < TEST_MESSAGE_TIMEOUT_S / 2, f"the event loop stalled for {longest_s:.3f} s"
    assert request.state == "done", request.error
    assert cluster.engine.result(request) == [
        ["keys", CHILDREN * PAIRS_PER_CHILD], ["first", "000-000000-" + "k" * 30],
        ["last", f"{CHILDREN - 1:03d}-{PAIRS_PER_CHILD - 1:06d}-" + "k" * 30]]


# The default combiner on large inputs: off the loop, in sort runs merged in order.

def test_a_large_grouping_sorts_keys_across_runs_and_keeps_ties_in_arrival_order():
    count = 3 * SORT_RUN_KEYS
    pairs = [[number % count, number] for number in range(3 * count)]
    pairs += [[1.0, "float"], [True, "bool"]]  # equal to 1 but other keys: after it, in order
    grouped = group_by_key(pairs)
    expected = [[key, [key, key + count, key + 2 * count]] for key in range(count)]
    expected[2:2] = [[1.0, ["float"]], [True, ["bool"]]]
    assert [(type(key), key) for key, _ in grouped] == [(type(key), key) for key, _ in expected]
    assert grouped == expected


def test_a_large_grouping_of_incomparable_keys_keeps_their_first_appearance():
    keys = [str(number) if number % 2 else number for number in range(2 * SORT_RUN_KEYS)]
    pairs = [[key, index] for index, key in enumerate(keys + [["list", "key"]] + keys)]
    grouped = group_by_key(pairs)
    assert [key for key, _ in grouped] == keys + [["list", "key"]]
    assert grouped[1] == ["1", [1, len(keys) + 2]]


def test_a_large_grouping_runs_beside_the_event_loop_and_a_small_one_inline():
    for size, offloaded in [(INLINE_PAIRS, False), (INLINE_PAIRS + 1, True)]:
        other = gevent.spawn(lambda: None)
        group_by_key([[number, number] for number in range(size)])
        assert other.dead == offloaded
        other.kill()


def test_an_iterator_is_consumed_letting_other_greenlets_run_between_batches():
    turns = []
    other = gevent.spawn(lambda: turns.append(len(consumed)))
    consumed = []

    def pairs():
        for number in range(3 * INLINE_PAIRS):
            consumed.append(number)
            yield number % 7, number

    grouped = group_by_key(pairs())
    other.kill()
    assert turns == [INLINE_PAIRS]
    assert [key for key, _ in grouped] == list(range(7))
