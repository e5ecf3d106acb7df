"""How the fault suite judges a request from its status document: a duplicated effect, a lost
or mixed-up one, and a failure before its deadline must each count as a miss."""
import pytest

from tests.faults.load import SHAPES, Tracked, tally

TREE = SHAPES[2]  # 21 leaves over 100, 101, ... 120
DEADLINE_S = 60.0


def seen(state: str, pairs: dict | None = None, error: dict | None = None,
         took_s: float = 1.0) -> Tracked:
    document = {"state": state, "created_at": 1000.0,
                "finished_at": None if state == "running" else 1000.0 + took_s}
    if pairs is not None:
        document["result"] = {"pairs": [[key, value] for key, value in pairs.items()]}
    if error is not None:
        document["error"] = error
    return Tracked(TREE, 100, request_id="r1", document=document)


DEADLINE_ERROR = {"type": "DeadlineExceeded", "message": "request r1 ran past its deadline"}


@pytest.mark.parametrize("tracked, outcome", [
    (seen("done", {"count": 21, "sum": sum(range(100, 121))}), "exact"),
    (seen("done", {"count": 22, "sum": sum(range(100, 121)) + 107}), "duplicated"),
    (seen("done", {"count": 20, "sum": sum(range(100, 120))}), "wrong"),
    (seen("done", {"count": 21, "sum": sum(range(101, 122))}), "wrong"),
    (seen("failed", error=DEADLINE_ERROR, took_s=DEADLINE_S), "failed past deadline"),
    (seen("failed", error=DEADLINE_ERROR, took_s=DEADLINE_S - 1), "failed"),
    (seen("failed", error={"type": "DeadlineExceeded", "message": ""}, took_s=DEADLINE_S + 1),
     "failed"),
    (seen("running"), "unfinished"),
    (seen("cancelled"), "cancelled"),
    (Tracked(TREE, 100, request_id="r1", vanished=True), "vanished"),
    (Tracked(TREE, 100, submit_error="503 ServiceUnavailable: etcd is down"), "not accepted"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_outcome(tracked, outcome):
    assert tracked.outcome(DEADLINE_S) == outcome


def test_without_a_deadline_every_failure_is_a_miss():
    assert seen("failed", error=DEADLINE_ERROR, took_s=3600).outcome(None) == "failed"


def test_tally_counts_every_outcome_even_when_none_happened():
    counts = tally([seen("running"), seen("cancelled")], DEADLINE_S)
    assert counts["unfinished"] == counts["cancelled"] == 1
    assert counts["exact"] == counts["duplicated"] == 0
