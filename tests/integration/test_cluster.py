"""A local distributed mr — etcd, nsqd, two ``mr worker`` processes and the gunicorn front end —
under faults, driven over HTTP as a client would."""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mr.cli.cluster import start_cluster
from mr.handlers.load import read_definition

FAULTS = Path(__file__).parents[1] / "faults" / "workflow"
MESSAGE_TIMEOUT_S = 2
SPLIT_BYTES = 4096


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    local = start_cluster(tmp_path_factory.mktemp("cluster"), [read_definition(FAULTS)],
                          workers=2, tie_to_parent=True,
                          extra_env={"MR_MESSAGE_TIMEOUT_S": str(MESSAGE_TIMEOUT_S),
                                     "MR_EXECUTOR_PROCESSES": "2",
                                     "MR_SPLIT_BYTES": str(SPLIT_BYTES)})
    yield local
    local.stop()


def call(url: str, body: dict | None = None, timeout: float = 60,
         token: str = "") -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def front(cluster, path: str, body: dict | None = None) -> tuple[int, dict]:
    """A call to the cluster's front end, with the token the cluster made."""
    return call(cluster.url + path, body, token=cluster.env["MR_TOKEN"])


def test_the_cluster_signs_its_messages_with_a_secret_of_its_own(cluster):
    """Every request of this module runs with signed messages: its processes share it."""
    assert len(cluster.env["MR_MESSAGE_SECRET"]) == 64


def test_a_raising_handler_answers_the_blocking_client_within_a_second(cluster):
    started = time.monotonic()
    status, body = front(cluster, "/job/faults/explode", {"arguments": {"a": 1, "b": 2}})
    elapsed = time.monotonic() - started
    assert status == 422
    error = body["error"]
    assert (error["type"], error["message"]) == ("RuntimeError", "boom: 2 keys")
    assert error["stdout"] == "exploding now\n" and error["handler"] == "explode"
    assert error["failed_invocation_id"] and "explode" in error["traceback"]
    assert elapsed < 1.0, f"the error took {elapsed:.2f} s"


def test_a_worker_killed_mid_request_loses_nothing(cluster):
    state = killed_mid_request(cluster, "many", {"arguments": {"n": 200}}, kill_after_s=0.8)
    # 200 children of 50 ms on 2 workers x 2 executors: about 2.5 s of work
    assert dict(state["result"]["pairs"]) == {"count": 200, "sum": sum(range(200))}


def test_a_worker_killed_mid_shuffle_loses_nothing(cluster, tmp_path):
    numbers = list(range(12000))  # 15 splits of a second each on 2 workers x 2 executors
    (tmp_path / "numbers.txt").write_text("".join(f"{number}\n" for number in numbers))
    output = tmp_path / "sums"
    state = killed_mid_request(cluster, "shuffle", {
        "input": {"url": str(tmp_path / "numbers.txt")},
        "output": {"url": str(output), "format": "jsonl"}}, kill_after_s=1.5)
    assert len(state["result"]["output"]["parts"]) == 3
    sums = dict(json.loads(line) for part in sorted(output.glob("part-*"))
                for line in part.read_text().splitlines())
    assert sums == {residue: sum(number for number in numbers if number % 7 == residue)
                    for residue in range(7)}
    assert (output / "_SUCCESS").exists() and not (output / "_temporary").exists()


def killed_mid_request(cluster, job: str, body: dict, kill_after_s: float) -> dict:
    """The final state of a request during which a worker was SIGKILLed (and restarted)."""
    timed_out_before = timed_out_messages(cluster)
    status, accepted = front(cluster, f"/job/faults/{job}?blocking=false", body)
    assert status == 202, accepted
    time.sleep(kill_after_s)
    victim = cluster.process("worker-1")
    victim.kill()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, state = front(cluster, accepted["status_url"])
            if state["state"] != "running":
                break
            time.sleep(0.2)
        assert state["state"] == "done", state
        # The victim died holding messages: nsqd timed them out and delivered them again.
        assert timed_out_messages(cluster) > timed_out_before
    finally:
        victim.start()
    return state


def timed_out_messages(cluster) -> int:
    """How many messages nsqd has delivered again because their consumer went silent."""
    status, stats = call(f"http://{cluster.process('nsqd').addresses['http']}/stats?format=json")
    assert status == 200
    return sum(channel["timeout_count"] for topic in stats["topics"]
               for channel in topic["channels"])


def test_the_cluster_serves_again_after_the_kill(cluster):
    status, body = front(cluster, "/job/faults/many", {"arguments": {"n": 10}})
    assert status == 200
    assert dict(body["result"]["pairs"]) == {"count": 10, "sum": 45}


def test_a_workflow_loaded_while_the_cluster_runs_is_served_within_a_second(cluster):
    """No restart: the front end and the workers follow the workflows in etcd."""
    environment = {**os.environ, **cluster.env}
    mr = [sys.executable, "-m", "mr.cli.main", "workflow"]
    wordcount = str(Path(__file__).parents[2] / "handlers" / "wordcount")
    path = "/job/wordcount/wordcount"
    assert front(cluster, path, {"arguments": {"a": "x"}})[0] == 404
    subprocess.run([*mr, "load", wordcount], env=environment, check=True, capture_output=True)
    loaded = time.monotonic()
    while (answer := front(cluster, path, {"arguments": {"a": "to be or not to be"}}))[0] == 404:
        assert time.monotonic() - loaded < 1.0, answer
        time.sleep(0.05)
    status, body = answer
    assert status == 200, body
    assert sorted(body["result"]["pairs"]) == [["be", 2], ["not", 1], ["or", 1], ["to", 2]]
    subprocess.run([*mr, "delete", "wordcount"], env=environment, check=True,
                   capture_output=True)
    deleted = time.monotonic()
    while (answer := front(cluster, path, {"arguments": {"a": "x"}}))[0] != 404:
        assert time.monotonic() - deleted < 1.0, answer
        time.sleep(0.05)
    assert "is not served here" in answer[1]["error"]["message"]


def test_a_secure_cluster_runs_requests_over_tls_with_etcd_authentication(tmp_path):
    """mr cluster start --secure: certificates made for it, etcd and nsqd over TLS only,
    etcd's authentication on; a request runs end to end, and a client without them is
    refused."""
    from mr.kv.base import KVError
    from mr.kv.etcd import EtcdKV
    secure = start_cluster(tmp_path / "secure", [read_definition(FAULTS)], workers=1,
                           tie_to_parent=True, secure=True)
    try:
        assert {"MR_ETCD_IS_SSL", "MR_ETCD_PASSWORD", "MR_NSQD_TLS"} <= set(secure.env)
        status, body = front(secure, "/job/faults/many", {"arguments": {"n": 3}})
        assert status == 200, body
        assert sorted(body["result"]["pairs"]) == [["count", 3], ["sum", 3]]
        host, port = secure.env["MR_ETCD_HOST"], int(secure.env["MR_ETCD_PORT"])
        with pytest.raises(KVError):  # plain HTTP to a TLS-only etcd
            with EtcdKV(host, port, timeout_s=1) as plain:
                plain.get("/probe")
    finally:
        secure.stop()


def test_the_front_end_asks_for_a_token_that_mr_token_makes_and_revokes(cluster):
    """Authentication is on in a distributed mr: the cluster made an admin token; ``mr token``
    makes a scoped one, which works at once and stops working once revoked."""
    body = {"arguments": {"n": 2}}
    status, answer = call(f"{cluster.url}/job/faults/many", body)
    assert status == 401 and answer["error"]["type"] == "Unauthorized"
    environment = {**os.environ, **cluster.env}
    mr = [sys.executable, "-m", "mr.cli.main", "token"]

    def token_command(*arguments: str) -> str:
        done = subprocess.run([*mr, *arguments], env=environment, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    presented = token_command("create", "ci", "--role", "submit", "--workflow", "faults").strip()
    assert call(f"{cluster.url}/job/faults/many", body, token=presented)[0] == 200
    status, answer = call(f"{cluster.url}/job/other/many", body, token=presented)
    assert status == 403 and "not for workflow 'other'" in answer["error"]["message"]
    assert "ci\tsubmit\tfaults" in token_command("list").splitlines()
    assert presented not in token_command("list", "--json")
    token_command("revoke", "ci")
    revoked = time.monotonic()
    while call(f"{cluster.url}/job/faults/many", body, token=presented)[0] != 401:
        assert time.monotonic() - revoked < 1.0
        time.sleep(0.05)
