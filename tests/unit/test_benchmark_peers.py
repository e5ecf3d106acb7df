"""mr beside Celery and Dask (benchmarks/peers): a peer run's JSON read back into figures, the
figures of the rounds set beside mr's with their medians and the right ratios, and the section
placed in the document."""
import ast
import re
import sys
import textwrap
from pathlib import Path

import pytest

from benchmarks.common import BenchmarkError, Row
from benchmarks.peers.compare import (PEERS_END, PEERS_START, Comparison, PeerTimings, Round,
                                      Workload, with_section)
from benchmarks.peers import running
from benchmarks.run import main

WORKLOAD = Workload(requests=4, clients=2, children=100)


def peer_report(peer: str, sequential_s: list, concurrent_s: list, concurrent_elapsed_s: float,
                fan_out_s: float) -> dict:
    """A round of a peer as its process answers it: its name and versions, then each series."""
    return {"peer": peer, "versions": {peer: f"{peer.lower()} 1.0"},
            "sequential": {"series": "sequential", "clients": 1, "latencies_s": sequential_s,
                           "elapsed_s": 9.0},
            "concurrent": {"series": "concurrent", "clients": 2, "latencies_s": concurrent_s,
                           "elapsed_s": concurrent_elapsed_s},
            "fan_out": {"series": "fan_out", "children": 100, "elapsed_s": fan_out_s}}


CELERY = PeerTimings.from_report(peer_report("Celery", [0.004, 0.001, 0.002, 0.003],
                                             [0.01] * 4, 0.02, 0.5))
DASK = PeerTimings.from_report(peer_report("Dask", [0.02] * 3 + [0.05], [0.04] * 3, 0.1, 2.0))


def mr_rows(mode: str, p50_ms: float, requests_per_s: float, invocations_per_s: float) -> list:
    return {"P1": [Row("sequential", mode, "p50 latency (ms)", p50_ms),
                   Row("sequential", mode, "p99 latency (ms)", p50_ms * 2),
                   Row("2 concurrent clients", mode, "p50 latency (ms)", 99.0),
                   Row("2 concurrent clients", mode, "requests per s", requests_per_s)],
            "P2": [Row("100 children", mode, "invocations per s", invocations_per_s),
                   Row("100 children", mode, "messages per s", 1.0),
                   Row("1,000 children", mode, "invocations per s", 5.0)]}


def both_modes() -> dict:
    """mr's own run, in both modes: the table takes its embedded figures."""
    embedded = mr_rows("embedded", 1.0, 1000.0, 5050.0)
    distributed = mr_rows("distributed", 7.0, 7.0, 7.0)
    return {name: embedded[name] + distributed[name] for name in embedded}


def one_round() -> list:
    return [Round(mr_rows("distributed", 2.0, 400.0, 808.0), [CELERY, DASK])]


def test_a_peer_run_is_read_into_its_figures():
    assert CELERY.sequential_ms == pytest.approx([4.0, 1.0, 2.0, 3.0])
    assert (CELERY.concurrent_clients, CELERY.concurrent_requests) == (2, 4)
    assert CELERY.figures(WORKLOAD) == pytest.approx({
        ("P1 sequential", "p50 latency (ms)"): 2.0,  # nearest rank, as mr's
        ("P1 sequential", "p99 latency (ms)"): 4.0,
        ("P1 2 clients", "requests per s"): 200.0,
        ("P2 100 children", "invocations per s"): 202.0,  # 100 map tasks and the reduce
        ("P2 100 children", "children per s"): 200.0})


@pytest.mark.parametrize("report", [
    {}, {"peer": "Celery"}, {**peer_report("Celery", [], [], 1.0, 1.0), "fan_out": None},
    {**peer_report("Celery", [], [], 1.0, 1.0), "concurrent": {"series": "concurrent"}}])
def test_a_round_without_timings_is_an_error(report):
    with pytest.raises(BenchmarkError, match="answered no timings"):
        PeerTimings.from_report(report)


def test_a_series_cut_short_by_the_time_limit_says_so():
    assert "stopped after 60 s" in DASK.note(WORKLOAD)
    assert "stopped" not in CELERY.note(WORKLOAD)


def test_mr_and_its_peers_side_by_side_with_mr_distributed_over_each_peer():
    lines = {(line.workload, line.measure): line
             for line in Comparison(WORKLOAD, both_modes(), one_round()).lines()}
    assert list(lines) == [("P1 sequential", "p50 latency (ms)"),
                           ("P1 sequential", "p99 latency (ms)"),
                           ("P1 2 clients", "requests per s"),
                           ("P2 100 children", "invocations per s"),
                           ("P2 100 children", "children per s")]
    latency = lines["P1 sequential", "p50 latency (ms)"]
    assert latency.mr == {"embedded": 1.0, "distributed": 2.0}
    assert latency.peers == pytest.approx({"Celery": 2.0, "Dask": 20.0})
    assert latency.lower_is_faster
    assert (latency.ratio("Celery"), latency.ratio("Dask")) == pytest.approx((1.0, 0.1))
    throughput = lines["P1 2 clients", "requests per s"]
    assert not throughput.lower_is_faster
    assert throughput.ratio("Celery") == pytest.approx(400 / 200)
    assert throughput.ratio("Dask") == pytest.approx(400 / 30)
    # mr's P2 counts 2N + 2 invocations: 808/s over 202 of them is 4 requests/s, 400 children/s.
    children = lines["P2 100 children", "children per s"]
    assert children.mr == pytest.approx({"embedded": 2500.0, "distributed": 400.0})
    assert children.ratio("Celery") == pytest.approx(2.0)
    assert lines["P2 100 children", "invocations per s"].ratio("Dask") == pytest.approx(808 / 50.5)


def table_cells(table: str) -> dict[tuple[str, str], list[str]]:
    """The cells of each line of an RST simple table, by its first two; cut where the rule
    above the header puts the columns."""
    lines = table.splitlines()
    columns = [(rule.start(), rule.end()) for rule in re.finditer("=+", lines[0])]
    rows = [[line[start:end].strip() for start, end in columns]
            for line in lines[1:lines.index("")] if not line.startswith("=")]
    return {(row[0], row[1]): row for row in rows}


def test_the_table_shows_every_figure_and_which_way_mr_is_faster():
    comparison = Comparison(WORKLOAD, both_modes(), one_round())
    cells = table_cells(comparison.table())
    assert cells["Workload", "Measure"] == ["Workload", "Measure", "mr embedded",
                                            "mr distributed", "Celery", "Dask", "÷ Celery",
                                            "÷ Dask", "mr faster if"]
    assert cells["P1 sequential", "p50 latency (ms)"][2:] == [
        "1.00", "2.00", "2.00", "20.00", "1.00", "0.10", "ratio < 1"]
    assert cells["P1 2 clients", "requests per s"][2:] == [
        "1,000", "400", "200", "30.00", "2.00", "13.33", "ratio > 1"]
    assert cells["P2 100 children", "children per s"][2:] == [
        "2,500", "400", "200", "50.00", "2.00", "8.00", "ratio > 1"]
    assert ("- round 1, Dask: 4 sequential requests, then 3 by 2 clients in 0.1 s (stopped after "
            "60 s); 100 children in 2.00 s") in comparison.table().splitlines()


def peer_round(peer: str, concurrent_elapsed_s: float, fan_out_s: float) -> PeerTimings:
    return PeerTimings.from_report(peer_report(peer, [0.002] * 4, [0.01] * 4,
                                               concurrent_elapsed_s, fan_out_s))


def test_over_rounds_each_figure_is_the_median_and_each_ratio_the_median_of_the_rounds():
    # The machine slows down in the second round and speeds up in the third: mr and Celery
    # alike, so each round's ratio is 2 while the ratio of the medians would not be.
    rounds = [Round(mr_rows("distributed", 2.0, 400.0, 808.0), [peer_round("Celery", 0.02, 0.5)]),
              Round(mr_rows("distributed", 4.0, 100.0, 404.0), [peer_round("Celery", 0.08, 1.0)]),
              Round(mr_rows("distributed", 1.0, 900.0, 1616.0),
                    [peer_round("Celery", 0.01, 0.25)])]
    comparison = Comparison(WORKLOAD, both_modes(), rounds)
    lines = {(line.workload, line.measure): line for line in comparison.lines()}
    throughput = lines["P1 2 clients", "requests per s"]
    assert throughput.mr == pytest.approx({"embedded": 1000.0, "distributed": 400.0})
    assert throughput.peers == pytest.approx({"Celery": 200.0})  # of 200, 50 and 400
    assert throughput.ratios["Celery"] == pytest.approx([2.0, 2.0, 2.25])
    assert throughput.ratio("Celery") == pytest.approx(2.0)
    # mr's 2N + 2 invocations against the peer's N + 1: twice the children per s is 4 times.
    fan_out = lines["P2 100 children", "invocations per s"]
    assert fan_out.ratios["Celery"] == pytest.approx([4.0, 4.0, 4.0])
    assert lines["P1 sequential", "p50 latency (ms)"].ratio("Celery") == pytest.approx(1.0)
    notes = comparison.table().split("\n\n", 1)[1].splitlines()
    assert [note.split(",")[0] for note in notes[:3]] == ["- round 1", "- round 2", "- round 3"]
    assert notes[3] == ("- ÷ Celery, round by round: P1 sequential p50 latency 1.00, 2.00, 0.50; "
                        "P1 sequential p99 latency 2.00, 4.00, 1.00; "
                        "P1 2 clients requests per s 2.00, 2.00, 2.25; "
                        "P2 100 children invocations per s 4.00, 4.00, 4.00; "
                        "P2 100 children children per s 2.00, 2.00, 2.00")


def test_without_mr_figures_the_ratios_are_left_blank():
    cells = table_cells(Comparison(WORKLOAD, {}, [Round({}, [CELERY])]).table())
    assert cells["P1 sequential", "p50 latency (ms)"][2:] == [
        "–", "–", "2.00", "–", "ratio < 1"]


def test_the_section_goes_before_the_data_benchmarks_then_replaces_itself():
    section = Comparison(WORKLOAD, both_modes(), [Round({}, [CELERY])]).section("Recorded today")
    assert section.startswith(PEERS_START) and section.endswith(PEERS_END)
    text = "analysis\n\n.. data start\n\ndata\n"
    placed = with_section(text, section, before=".. data start")
    assert placed == f"analysis\n\n{section}\n\n.. data start\n\ndata\n"
    again = with_section(placed, f"{PEERS_START}\nnew\n{PEERS_END}", before=".. data start")
    assert again == f"analysis\n\n{PEERS_START}\nnew\n{PEERS_END}\n\n.. data start\n\ndata\n"
    assert with_section("only text\n", section, before=".. data start") == \
        f"only text\n\n{section}\n"


def test_peers_need_p1_and_p2_in_the_run(capsys):
    with pytest.raises(SystemExit):
        main(["--peers", "--only", "P1", "P6"])
    assert "--peers sets mr's P1 and P2 beside Celery's and Dask's" in capsys.readouterr().err


def _constant(module: str, name: str):
    """A constant of a peer_jobs module, read from its source: the package runs in the peers'
    venv and is not importable from mr's."""
    source = (Path(running.__file__).parent / "peer_jobs" / module).read_text()
    return next(ast.literal_eval(node.value) for node in ast.parse(source).body
                if isinstance(node, ast.Assign) and node.targets[0].id == name)


def test_the_peers_processes_are_asked_and_answer_in_their_own_terms():
    assert running.SERIES == _constant("series.py", "SERIES")
    assert running.ANSWER == _constant("__main__.py", "ANSWER")


def _fake_peer_jobs(parent: Path, failing_processes: int) -> None:
    """A ``peer_jobs`` package whose first ``failing_processes`` processes die at their first
    series, as Celery's client does when it waits for ever for a lost result; the others
    answer with how many processes were started."""
    package = parent / "peer_jobs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(textwrap.dedent(f"""
        import json, pathlib, sys
        started = pathlib.Path("started")
        started.write_text(started.read_text() + "x" if started.exists() else "x")
        count = len(started.read_text())
        print({running.ANSWER!r} + json.dumps({{"peer": "Fake", "versions": {{}}}}), flush=True)
        for line in sys.stdin:
            if count <= {failing_processes}:
                sys.exit("the result was lost")
            print({running.ANSWER!r} + json.dumps({{"series": line.strip(),
                                                   "processes": count}}), flush=True)
        """))


def test_a_peers_turn_that_fails_is_measured_again_by_a_new_process(tmp_path, monkeypatch,
                                                                     capsys):
    _fake_peer_jobs(tmp_path, failing_processes=1)
    monkeypatch.setattr(running, "PEER_JOBS_PARENT", tmp_path)
    with running._PeerProcess(Path(sys.executable), "fake", Workload(), {}, tmp_path) as peer:
        assert peer.measure("concurrent") == {"series": "concurrent", "processes": 2}
        assert peer.measure("fan_out") == {"series": "fan_out", "processes": 2}
    assert ("peers: fake's concurrent turn failed, measured again by a new process: the result "
            "was lost") in capsys.readouterr().out


def test_a_peers_turn_that_fails_twice_stops_the_comparison(tmp_path, monkeypatch):
    _fake_peer_jobs(tmp_path, failing_processes=2)
    monkeypatch.setattr(running, "PEER_JOBS_PARENT", tmp_path)
    with running._PeerProcess(Path(sys.executable), "fake", Workload(), {}, tmp_path) as peer:
        with pytest.raises(BenchmarkError,
                           match="the fake process exited with 1:\nthe result was lost"):
            peer.measure("concurrent")
