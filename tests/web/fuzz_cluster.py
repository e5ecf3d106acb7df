"""``python -m tests.web.fuzz_cluster [--requests N] [--seed S] [--data-dir DIR]``: fuzz the
HTTP API of a live local cluster with authentication on (docs/security.rst, "The fuzzed API").

It starts a cluster (etcd, nsqd, a worker, the gunicorn front end) serving the workflow of
tests/web/workflow.py, makes tokens of each role, and sends N requests that schemathesis
generates from the OpenAPI description, spread over all its operations: the description's
examples, the coverage of its boundaries and of the methods it does not list, then generated
requests, valid and invalid. Most carry a valid token; the others none, a forged, revoked or
generated one, or one whose role, workflows or requests do not cover the call. Every answer must
be one the description lists (never a 5xx, every 4xx a JSON error), no token may get a 2xx where
it has no right to one, and every request accepted with a valid token is sent again without it
and with a spoiled one (schemathesis' ignored_auth check), to be refused. The figures are
printed; any failure is printed as a curl line, and the exit status is 1.
"""
from gevent import monkey

if not monkey.is_module_patched("socket"):  # scripts/fuzz-api patches before this module runs
    monkey.patch_all()

import argparse  # noqa: E402
import collections  # noqa: E402
import dataclasses  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import hypothesis  # noqa: E402
import requests  # noqa: E402
import schemathesis  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.core.transport import response_content_type  # noqa: E402
from schemathesis.generation.hypothesis.builder import (HypothesisTestConfig,  # noqa: E402
                                                        HypothesisTestMode, create_test)
from schemathesis.specs.openapi.checks import ignored_auth  # noqa: E402

from mr.auth.tokens import TokenStore  # noqa: E402
from mr.cli.cluster import LocalCluster, start_cluster  # noqa: E402
from mr.kv import create_kv  # noqa: E402
from mr.models import EntityStore  # noqa: E402
from mr.settings import Settings  # noqa: E402
from mr.web.openapi import description  # noqa: E402
from tests.faults.__main__ import machine  # noqa: E402
from tests.web.fuzzing import (CHECKS, GENERATED, OPEN, PHASES, Credential, Places,  # noqa: E402
                               existing_requests, headers_are_invalid, operation_id,
                               result_receiver, schema, upload_as_sent)
from tests.web.workflow import WORKFLOW, populate  # noqa: E402

DEFAULT_REQUESTS = 10_000
#: Longer than a blocking request may wait (MR_REQUEST_WAIT_TIMEOUT_S, 60 s).
ANSWER_TIMEOUT_S = 90
EXPLICIT = [HypothesisTestMode.EXAMPLES, HypothesisTestMode.COVERAGE]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.web.fuzz_cluster",
                                     description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS, metavar="N",
                        help=f"generated requests to send (default {DEFAULT_REQUESTS:,})")
    parser.add_argument("--seed", type=int, metavar="S",
                        help="seed of the generation and of the tokens chosen (default: a new "
                             "one, printed; the same seed sends the same requests)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="where the cluster keeps its logs and data (default: a new "
                             "temporary directory, removed after a run without failures)")
    return parser.parse_args(argv)


def generated_cases(requests_wanted: int, seed: int) -> list:
    """``requests_wanted`` cases over every operation: first each one's examples and coverage
    cases, then generated ones, shared evenly among the operations whose generated cases are
    not exhausted; in turns, one operation after another, so that a short run covers them
    all."""
    operations = [result.ok() for result in schema.get_all_operations()]
    cases = {operation.label: _drawn(operation, EXPLICIT, seed, 1) for operation in operations}
    left = requests_wanted - sum(map(len, cases.values()))
    unexhausted = list(operations)
    for round_number in itertools.count():
        if left <= 0 or not unexhausted:
            break
        share = -(-left // len(unexhausted))
        for operation in list(unexhausted):
            wanted = min(share, left)
            if wanted <= 0:
                break
            drawn = _drawn(operation, [HypothesisTestMode.FUZZING], seed + round_number, wanted)
            cases[operation.label] += drawn
            left -= len(drawn)
            if len(drawn) < wanted:
                unexhausted.remove(operation)
    in_turns = itertools.chain.from_iterable(itertools.zip_longest(*cases.values()))
    return [case for case in in_turns if case is not None][:requests_wanted]


def _drawn(operation, modes: list, seed: int, max_examples: int) -> list:
    """The cases schemathesis generates for ``operation`` in ``modes``."""
    drawn = []

    def keep(case):
        drawn.append(case)

    create_test(operation=operation, test_func=keep, config=HypothesisTestConfig(
        project=schema.config, modes=modes,
        seed=zlib.crc32(f"{seed} {operation.label}".encode()),
        settings=hypothesis.settings(
            max_examples=max_examples, deadline=None, database=None,
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck))))()
    return drawn


def start(data_dir: Path) -> LocalCluster:
    """A cluster serving the workflow of tests/web/workflow.py."""
    cluster = start_cluster(data_dir, [], workers=1, tie_to_parent=True)
    try:
        settings = Settings.load({**os.environ, **cluster.env})
        with create_kv(settings) as kv:
            populate(EntityStore(kv, settings.kv_prefix))
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _operations() -> dict[str, tuple[str, dict]]:
    """Every operation of the description: its id -> its path and itself."""
    return {operation["operationId"]: (path, operation)
            for path, operations in description()["paths"].items()
            for operation in operations.values() if isinstance(operation, dict)}


def operations_at(fragment: str) -> frozenset[str]:
    """The operations (their ids) that ask for a token and whose path holds ``fragment``."""
    return frozenset(name for name, (path, _) in _operations().items()
                     if fragment in path and name not in OPEN)


def _errors_in_json(operation: dict) -> bool:
    """Whether every 4xx answer the operation documents is JSON (the web UI's are pages)."""
    answers = [answer for status, answer in operation["responses"].items()
               if str(status).startswith("4")]
    named = description()["components"]["responses"]
    return all("application/json" in named.get(answer.get("$ref", "").rpartition("/")[2],
                                               answer).get("content", {})
               for answer in answers)


#: The operations whose 4xx answers must be JSON errors.
ERRORS_IN_JSON = frozenset(name for name, (_, operation) in _operations().items()
                           if _errors_in_json(operation))


def credentials(cluster: LocalCluster) -> list[tuple[Credential, int]]:
    """The tokens the cases are sent with, each with its weight: four in five are valid. What
    each must not be let through follows docs/security.rst: a token of one workflow reaches
    nothing of another, nor what belongs to none (``/metrics``), which only ``admin`` tokens
    of every workflow reach; a ``submit`` token reaches only the requests it submitted."""
    of_no_workflow = frozenset({"metrics"})
    settings = Settings.load({**os.environ, **cluster.env})
    with create_kv(settings) as kv:
        tokens = TokenStore(kv, EntityStore(kv, settings.kv_prefix).keys)

        def token(name: str, role: str, *workflows: str) -> str:
            return f"Bearer {tokens.create(name, role, workflows)[1]}"

        made = [
            (Credential("admin", f"Bearer {cluster.env['MR_TOKEN']}", valid=True), 8),
            (Credential("submit", token("submitter", "submit", WORKFLOW), valid=True,
                        refused=of_no_workflow), 3),
            (Credential("read", token("reader", "read", WORKFLOW), valid=True,
                        refused=of_no_workflow | {"submitRequest", "cancelRequest"}), 2),
            # It did not submit the requests that exist.
            (Credential("another submitter's", token("other-submitter", "submit", WORKFLOW),
                        valid=True, refused=of_no_workflow | operations_at("{request_id}")), 1),
            (Credential("another workflow's", token("other-workflow", "admin", "other"),
                        valid=True, refused=of_no_workflow | operations_at("{workflow}")), 2),
            (Credential("no"), 1),
            (GENERATED, 1),
            (Credential("forged", f"Bearer mrt_admin.{'A' * 43}"), 1),
            (Credential("revoked", token("revoked", "admin")), 1),
        ]
        tokens.revoke("revoked")
    return made


@dataclasses.dataclass
class Failure:
    """A case whose answer failed a check, and how to send it again."""
    operation: str
    credential: str
    status: int | None
    #: The title and the details of each check it failed.
    reasons: tuple[tuple[str, str], ...]
    curl: str

    @property
    def kind(self) -> tuple:
        return self.operation, self.status, tuple(title for title, _ in self.reasons)


@dataclasses.dataclass
class Tally:
    """What was sent and what came back."""
    sent_by_phase: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    by_credential: collections.Counter = dataclasses.field(
        default_factory=collections.Counter)
    #: Operation -> status -> answers.
    by_operation: dict = dataclasses.field(
        default_factory=lambda: collections.defaultdict(collections.Counter))
    #: Answered with a 2xx to a valid token where one is needed: ignored_auth sent each again
    #: without it and with a spoiled one.
    accepted: int = 0
    server_errors: int = 0
    non_json_4xx: int = 0
    failures: list[Failure] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.server_errors or self.non_json_4xx or self.failures)

    def render(self, took: dict[str, float]) -> str:
        by_status = sum(self.by_operation.values(), collections.Counter())
        lines = [
            f"requests sent: {sum(self.sent_by_phase.values())} over {len(self.by_operation)} "
            "operations (" + ", ".join(f"{phase} {self.sent_by_phase[phase]}"
                                       for phase in PHASES)
            + f"); ignored_auth sent the {self.accepted} accepted with a valid token again "
            "without it and with a spoiled one",
            f"answers by status: {_counts(by_status)}",
            *(f"  {operation}: {_counts(statuses)}"
              for operation, statuses in self.by_operation.items()),
            "requests by token: " + ", ".join(f"{kind} {count}" for kind, count in
                                              self.by_credential.most_common()),
            f"server errors (5xx): {self.server_errors}",
            f"4xx not a JSON error: {self.non_json_4xx}",
            f"conformance failures: {len(self.failures)}",
            "took: " + ", ".join(f"{what} {seconds:.1f} s" for what, seconds in took.items()),
        ]
        kinds = collections.defaultdict(list)
        for failure in self.failures:
            kinds[failure.kind].append(failure)
        for (operation, status, titles), failures in kinds.items():
            first = failures[0]
            lines += [f"\nFAILED {operation} -> {status}, {len(failures)} case(s): "
                      + "; ".join(titles), f"  token: {first.credential}", f"  {first.curl}",
                      *(f"  {title}: {details}" for title, details in first.reasons)]
        lines.append("PASS" if self.ok else "FAIL")
        return "\n".join(lines)


def _counts(counter: collections.Counter) -> str:
    return ", ".join(f"{key} {count}" for key, count in sorted(counter.items()))


def is_json_error(response) -> bool:
    """Whether ``response`` is ``{"error": {"type": ..., "message": ...}}`` as JSON."""
    if (response_content_type(response) or "").split(";")[0].strip() != "application/json":
        return False
    try:
        error = json.loads(response.content).get("error")
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and all(isinstance(error.get(field), str)
                                           for field in ("type", "message"))


def exercise(case, credential: Credential, headers: dict[str, str], base_url: str,
             session: requests.Session, tally: Tally) -> None:
    """Send ``case`` with ``credential`` (and ``headers``, the ones it adds) and judge the
    answer."""
    tally.sent_by_phase[case.meta.phase.name.value] += 1
    tally.by_credential[credential.kind] += 1
    statuses = tally.by_operation[case.operation.label]
    curl = case.as_curl_command(headers=headers, base_url=base_url)
    try:
        response = case.call(base_url=base_url, session=session, headers=headers,
                             timeout=ANSWER_TIMEOUT_S)
    except requests.RequestException as error:
        statuses["no answer"] += 1
        tally.failures.append(Failure(case.operation.label, credential.kind, None,
                                      (("No answer", str(error)),), curl))
        return
    status = response.status_code
    statuses[status] += 1
    tally.accepted += credential.valid and 200 <= status < 300 and operation_id(case) not in OPEN
    tally.server_errors += status >= 500
    reasons = []
    if 400 <= status < 500 and operation_id(case) in ERRORS_IN_JSON and \
            not is_json_error(response):
        tally.non_json_4xx += 1
        reasons.append(("Not a JSON error", response.content[:200].decode(errors="replace")))
    try:
        case.validate_response(response, checks=[*CHECKS, ignored_auth], headers=headers,
                               transport_kwargs={"base_url": base_url, "session": session,
                                                 "headers": headers,
                                                 "timeout": ANSWER_TIMEOUT_S})
    except FailureGroup as group:
        reasons += [(failure.title, failure.message) for failure in group.exceptions]
    wrong_answer = credential.judge(case, status)
    if wrong_answer:
        reasons.append(("Token not refused", wrong_answer))
    if reasons:
        tally.failures.append(Failure(case.operation.label, credential.kind, status,
                                      tuple(reasons), curl))


def fuzz(cluster: LocalCluster, cases: list, directory: Path, seed: int) -> Tally:
    made = credentials(cluster)
    submit = next(credential for credential, _ in made if credential.kind == "submit")
    setup = requests.Session()

    def send(method, path, body):
        response = setup.request(method, cluster.url + path, json=body, timeout=ANSWER_TIMEOUT_S,
                                 headers={"Authorization": submit.authorization})
        return response.status_code, response.json()

    _wait_until_served(send)
    tally = Tally()
    session = requests.Session()
    choices = random.Random(seed)
    with result_receiver() as receiver_url:
        places = Places(existing_requests(send), directory, receiver_url)
        for case in cases:
            places.steer(case)
            upload_as_sent(case)
            credential = choices.choices(*zip(*made))[0]
            if not credential.valid and headers_are_invalid(case):
                credential = GENERATED  # schemathesis' own missing or malformed token
            headers = credential.apply(case)
            places.confine(case)
            exercise(case, credential, headers, cluster.url, session, tally)
    return tally


def _wait_until_served(send) -> None:
    """The front end and the worker see a new workflow through their watches."""
    with gevent.Timeout(30):
        while send("GET", f"/job/{WORKFLOW}/j/definition", None)[0] != 200:
            gevent.sleep(0.1)


def main(argv: list[str]) -> int:
    arguments = parse(argv)
    seed = random.randrange(2 ** 32) if arguments.seed is None else arguments.seed
    root = arguments.data_dir or Path(tempfile.mkdtemp(prefix="mr-fuzz-api-"))
    print(f"mr API fuzzing on {machine()}, schemathesis {schemathesis.__version__}\n"
          f"{arguments.requests} requests, seed {seed}, cluster under {root}\n", flush=True)
    moments = [time.monotonic()]
    cases = generated_cases(arguments.requests, seed)
    moments.append(time.monotonic())
    cluster = start(root.resolve() / "cluster")
    moments.append(time.monotonic())
    try:
        tally = fuzz(cluster, cases, root.resolve(), seed)
    finally:
        cluster.stop()
    moments.append(time.monotonic())
    steps = ("generating", "starting the cluster", "sending")
    took = {step: ended - began for step, began, ended in zip(steps, moments, moments[1:])}
    print(tally.render({**took, "in all": moments[-1] - moments[0]}))
    if not tally.ok:
        print(f"\nreproduce with: scripts/fuzz-api --requests {arguments.requests} --seed "
              f"{seed}; the cluster's logs are under {root}")
        return 1
    if arguments.data_dir is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
