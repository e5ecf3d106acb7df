"""mr beside Celery and Dask: the figures of P1 and P2 of each, side by side (medians over
the rounds in which they took turns), with mr distributed's ratio to each peer; the table
printed by ``--peers`` and its section of docs/benchmarks.rst."""
from __future__ import annotations

import dataclasses
import statistics

from benchmarks import fan_out_throughput, http_latency
from benchmarks.common import MODES, REQUEST_WAIT_S, BenchmarkError, Row, number, percentile

TITLE = "Beside Celery and Dask"
DESCRIPTION = """\
P1 and P2 run on two peers in the same run as mr's own, on the same machine, and are driven as
those drive mr: the same requests, warm-ups, concurrent clients, time limit and percentiles,
every answer checked. mr distributed and the peers take turns, with all their servers up for
the whole comparison: P1 sequential first, in three rounds back to back, each round a turn of
each of the three in an order that rotates from round to round; then P1 with 16 clients, the
same way; then P2. So the turns whose figures a ratio compares are seconds apart, and a machine
whose speed drifts during the run (another tenant's load, say) weighs on both alike. A figure
in the table is the median over the rounds, and a ratio the median of the ratios of the rounds
(each of mr's figures over the peer's of the same round); the notes give every round's. mr
embedded's figures are those of its own P1 and P2 above.

The peers live in a venv of their own (``.venv-peers``, the packages of
``benchmarks/peers/requirements.txt``, made by ``scripts/benchmark --peers``, which also
installs Debian's ``redis-server``). Their jobs (``benchmarks/peers/peer_jobs``) do what the
benchmark jobs do: a map task returns its pairs (P1: ``[["x", 1]]``; P2: ``[["sum", n]]`` for
child n) and a reduce task sums each key's values over the pairs of all the map tasks.

- Celery: P1 is a chord of one map task whose callback is the reduce task,
  ``chord([map_pairs.s(pairs)])(reduce_pairs.s()).get()``; P2 a chord of the N map tasks with
  the same callback, awaited with ``.get(follow_parents=False)`` (otherwise every check of the
  callback's state also reads the state of each of the N map tasks from Redis). One Redis is
  both broker and result backend: ``redis-server`` with its default settings but its address
  (a free port of 127.0.0.1) and its directory (a temporary one). One worker:
  ``celery worker --pool prefork --concurrency 2``, with Celery's defaults otherwise (JSON
  messages, a prefetch multiplier of 4, a task acknowledged just before it runs). Redis and the
  worker are started before the first round and stopped after the last, as mr's cluster is.
- Dask: a ``LocalCluster(n_workers=2, threads_per_worker=1)`` (worker processes, no dashboard)
  and one ``Client``, likewise. P1 is ``client.submit(map, pairs)``, then
  ``client.submit(reduce, [future]).result()``; P2 is N submits of map and one submit of reduce
  over their futures. Every submit passes ``pure=False``, so that no request is answered with an
  earlier request's result.
- The clients: each peer's own client library, in one process (which lives for the whole
  comparison), one thread per concurrent client (mr's client: greenlets of one process, one
  keep-alive connection each). A peer's turn that fails is measured again, once, by a new
  process, and the run's output says so: Celery's client can wait for ever for a result its
  worker stored when several threads wait at once (its Redis result backend's known hang,
  celery/celery#3761).

Requests per s: the requests answered over the seconds from the first request of the series to
its last answer. P2's children per s, N over the wall time of the request, is the like-for-like
rate; invocations per s counts what each one runs: mr 2N + 2 invocations (each child's map and
its reduction, the root's map and reduce, as in P2), a peer N + 1 tasks (the N map tasks and
the reduce). A ratio (÷ Celery, ÷ Dask) is mr distributed's figure over the peer's: mr is the
faster where it is below 1 for a latency and above 1 for a rate (the last column says which).
What each keeps durably differs: mr distributed commits every invocation's state to etcd and
queues through nsqd's disk queue; Redis keeps Celery's messages and results in memory (with its
default snapshots), and Dask keeps its tasks and results in the memory of its scheduler and
workers."""

PEERS_START = ".. start of the peers' comparison written by python -m benchmarks --peers --write"
PEERS_END = ".. end of the peers' comparison written by python -m benchmarks --peers --write"
#: mr's mode whose figures are divided by the peers'.
RATIO_MODE = "distributed"


@dataclasses.dataclass(frozen=True)
class Workload:
    """What the peers run: P1's and P2's counts, as mr's benchmarks run them."""
    requests: int = http_latency.REQUESTS
    warm_up_requests: int = http_latency.WARM_UP_REQUESTS
    clients: int = http_latency.CONCURRENT_CLIENTS
    series_time_limit_s: float = http_latency.SERIES_TIME_LIMIT_S
    trivial_pairs: list = dataclasses.field(default_factory=lambda: [
        list(pair) for pair in http_latency.TRIVIAL_ARGUMENTS.items()])
    children: int = fan_out_throughput.CHILDREN
    warm_up_children: int = fan_out_throughput.WARM_UP_CHILDREN
    wait_s: float = REQUEST_WAIT_S

    sequential = "P1 sequential"

    @property
    def concurrent(self) -> str:
        return f"P1 {self.clients} clients"

    @property
    def fan_out(self) -> str:
        return f"P2 {self.children:,} children"

    def measures(self) -> list[tuple[str, str, bool]]:
        """(workload, measure, whether lower is faster), in the table's order."""
        return [(self.sequential, "p50 latency (ms)", True),
                (self.sequential, "p99 latency (ms)", True),
                (self.concurrent, http_latency.THROUGHPUT, False),
                (self.fan_out, "invocations per s", False),
                (self.fan_out, "children per s", False)]


@dataclasses.dataclass(frozen=True)
class PeerTimings:
    """One round of a peer: its three series (``peer_jobs.series.measure``)."""
    peer: str
    versions: dict[str, str]
    sequential_ms: list[float]
    concurrent_clients: int
    concurrent_requests: int
    concurrent_s: float
    children: int
    fan_out_s: float

    @classmethod
    def from_report(cls, report: dict) -> "PeerTimings":
        """From what the peer's process answered: its name and versions, and each series'
        timings under the series' name."""
        try:
            sequential, concurrent = report["sequential"], report["concurrent"]
            return cls(report["peer"], report["versions"],
                       [seconds * 1000 for seconds in sequential["latencies_s"]],
                       concurrent["clients"], len(concurrent["latencies_s"]),
                       concurrent["elapsed_s"], report["fan_out"]["children"],
                       report["fan_out"]["elapsed_s"])
        except (KeyError, TypeError, ValueError) as error:
            raise BenchmarkError(f"a peer answered no timings ({error!r}): "
                                 f"{report!r:.500}") from error

    def figures(self, workload: Workload) -> dict[tuple[str, str], float]:
        return {(workload.sequential, "p50 latency (ms)"): percentile(self.sequential_ms, 50),
                (workload.sequential, "p99 latency (ms)"): percentile(self.sequential_ms, 99),
                (workload.concurrent, http_latency.THROUGHPUT):
                    self.concurrent_requests / self.concurrent_s,
                (workload.fan_out, "invocations per s"): (self.children + 1) / self.fan_out_s,
                (workload.fan_out, "children per s"): self.children / self.fan_out_s}

    def note(self, workload: Workload) -> str:
        stopped = (f" (stopped after {workload.series_time_limit_s:.0f} s)"
                   if min(len(self.sequential_ms), self.concurrent_requests) < workload.requests
                   else "")
        return (f"{self.peer}: {len(self.sequential_ms):,} sequential requests, then "
                f"{self.concurrent_requests:,} by {self.concurrent_clients} clients in "
                f"{self.concurrent_s:.1f} s{stopped}; {self.children:,} children in "
                f"{self.fan_out_s:.2f} s")


def mr_figures(rows: dict[str, list[Row]], mode: str,
               workload: Workload) -> dict[tuple[str, str], float]:
    """mr's figures in ``mode`` from the rows of its P1 and P2 (those it has)."""
    def find(benchmark: str, case: str, measure: str) -> float | None:
        return next((row.value for row in rows.get(benchmark, [])
                     if (row.mode, row.case, row.measure) == (mode, case, measure)), None)

    children_case = f"{workload.children:,} children"
    invocations = find("P2", children_case, "invocations per s")
    found = {
        (workload.sequential, "p50 latency (ms)"): find("P1", "sequential", "p50 latency (ms)"),
        (workload.sequential, "p99 latency (ms)"): find("P1", "sequential", "p99 latency (ms)"),
        (workload.concurrent, http_latency.THROUGHPUT):
            find("P1", f"{workload.clients} concurrent clients", http_latency.THROUGHPUT),
        (workload.fan_out, "invocations per s"): invocations,
        # P2 counts 2N + 2 invocations per request of N children.
        (workload.fan_out, "children per s"):
            None if invocations is None
            else invocations * workload.children / (2 * workload.children + 2)}
    return {key: value for key, value in found.items() if value is not None}


@dataclasses.dataclass(frozen=True)
class Round:
    """One turn of each: mr distributed's P1 and P2 rows, and each peer's timings."""
    mr_rows: dict[str, list[Row]]
    peers: list[PeerTimings]


@dataclasses.dataclass(frozen=True)
class Line:
    """One measure of one workload: mr's figure in each mode and each peer's, the medians over
    the rounds (mr embedded's from its own run), and mr distributed's ratio to each peer in
    each round where both have the figure."""
    workload: str
    measure: str
    lower_is_faster: bool
    mr: dict[str, float]
    peers: dict[str, float]
    ratios: dict[str, list[float]]

    def ratio(self, peer: str) -> float | None:
        """The median of the rounds' ratios."""
        ratios = self.ratios.get(peer)
        return statistics.median(ratios) if ratios else None


@dataclasses.dataclass(frozen=True)
class Comparison:
    workload: Workload
    #: mr's own run, whose embedded figures the table shows beside the rounds'.
    mr_rows: dict[str, list[Row]]
    rounds: list[Round]

    @property
    def peer_names(self) -> list[str]:
        return list(dict.fromkeys(timings.peer for each in self.rounds for timings in each.peers))

    def lines(self) -> list[Line]:
        embedded = mr_figures(self.mr_rows, "embedded", self.workload)
        distributed = [mr_figures(each.mr_rows, RATIO_MODE, self.workload)
                       for each in self.rounds]
        peers = [{timings.peer: timings.figures(self.workload) for timings in each.peers}
                 for each in self.rounds]
        lines = []
        for workload, measure, lower_is_faster in self.workload.measures():
            key = (workload, measure)
            mr = {"embedded": embedded.get(key),
                  RATIO_MODE: _median([figures.get(key) for figures in distributed])}
            theirs = {name: _median([figures[name][key] for figures in peers if name in figures])
                      for name in self.peer_names}
            ratios = {name: [mine[key] / figures[name][key]
                             for mine, figures in zip(distributed, peers)
                             if key in mine and figures.get(name, {}).get(key)]
                      for name in self.peer_names}
            lines.append(Line(workload, measure, lower_is_faster,
                              {mode: value for mode, value in mr.items() if value is not None},
                              {name: value for name, value in theirs.items()
                               if value is not None}, ratios))
        return lines

    def table(self) -> str:
        """An RST simple table (readable as it is on a terminal), the notes below it: each
        round's runs of the peers, and the ratios round by round."""
        names = self.peer_names
        lines = self.lines()
        header = ["Workload", "Measure", *(f"mr {mode}" for mode in MODES), *names,
                  *(f"÷ {name}" for name in names), "mr faster if"]
        body = [[line.workload, line.measure,
                 *(number(line.mr.get(mode)) for mode in MODES),
                 *(number(line.peers.get(name)) for name in names),
                 *(_ratio(line.ratio(name)) for name in names),
                 "ratio < 1" if line.lower_is_faster else "ratio > 1"]
                for line in lines]
        notes = [f"- round {index}, {timings.note(self.workload)}"
                 for index, each in enumerate(self.rounds, 1) for timings in each.peers]
        notes += [f"- ÷ {name}, round by round: " + "; ".join(
                      f"{line.workload} {line.measure.split(' (')[0]} "
                      + ", ".join(_ratio(value) for value in line.ratios[name])
                      for line in lines if line.ratios.get(name))
                  for name in names]
        return "\n".join([*_simple_table(header, body), "", *notes])

    def versions(self) -> dict[str, str]:
        return {name: text for each in self.rounds for timings in each.peers
                for name, text in timings.versions.items()}

    def report(self) -> str:
        return f"{TITLE}\n{'-' * len(TITLE)}\n\n{self.table()}\n"

    def section(self, run_on: str) -> str:
        """The section of docs/benchmarks.rst, markers included; ``run_on``: when, how long and
        on what the run was made."""
        return f"""\
{PEERS_START}

{TITLE}
{'-' * len(TITLE)}

.. The part between the start and end markers is written by ``scripts/benchmark --peers
   --write``: change the programs in benchmarks/peers/, not this text.

{DESCRIPTION}

{run_on}

{self.table()}

{PEERS_END}"""


def with_section(text: str, section: str, before: str) -> str:
    """``text`` with the peers' section replaced, or added before the line ``before`` (at the
    end if there is no such line)."""
    if PEERS_START in text:
        start, rest = text.split(PEERS_START, 1)
        return start + section + rest.split(PEERS_END, 1)[1]
    if before in text:
        start, rest = text.split(before, 1)
        return f"{start}{section}\n\n{before}{rest}"
    return f"{text.rstrip()}\n\n{section}\n"


def _median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _simple_table(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(cells[column]) for cells in [header, *body])
              for column in range(len(header))]
    rule = "  ".join("=" * width for width in widths)
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()
             for cells in [header, *body]]
    return [rule, lines[0], rule, *lines[1:], rule]
