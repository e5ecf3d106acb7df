"""Notifications, in both modes: a webhook and an email when a request finishes, handlers'
``NOTIFY``/``EMAIL``/``HTTP`` messages, and delivery that survives a dying sender.

The receivers are real: an HTTP server and an SMTP server (aiosmtpd, in a subprocess that writes
what it receives to a maildir) on free loopback ports, started and stopped by the tests.
"""
import email
import email.policy
import http.server
import json
import mailbox
import re
import socket
import subprocess
import sys
import threading
import time

import gevent
import pytest

from mr import codec, devservers
from mr.kv.base import KV
from mr.models import Job, Request, ValidationError
from mr.models.errors import ModelError
from mr.notify import delivery
from mr.notify.notices import TO_EMAIL
from mr.notify.outbox import Outbox
from mr.handlers.load import WorkflowDefinitionError, read_definition
from mr.web.app import create_app
from tests.engine.conftest import start_cluster
from tests.unit.executor_helpers import python_source, task

WITHIN_S = 30.0

LEAF_MAPPER = """
yield MrConfigureToReturn()
for key, value in arguments:
    yield key, value
"""
SUM_REDUCER = """
for key, values in results:
    yield key, sum(values)
"""
EXPLODING_REDUCER = """
for key, values in results:
    raise RuntimeError("no sums today")
yield
"""
CHATTY_MAPPER = """
NOTIFY.info("to every channel: %d arguments", len(arguments))
EMAIL.warning("to the email channels only")
HTTP.error("to the webhooks only")
NOTIFY.debug("below INFO: only logged")
yield MrConfigureToReturn()
for key, value in arguments:
    yield key, value
"""


def wait_until(condition, timeout_s: float = WITHIN_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        gevent.sleep(0.02)


class Webhook:
    """An HTTP receiver on a free loopback port that records every POST. It answers with the
    statuses given, in turn, then 200; while ``held``, it keeps each answer back."""

    def __init__(self, statuses: tuple[int, ...] = ()):
        self.posts: list[tuple[dict, dict]] = []  # (headers, JSON body)
        self.statuses = list(statuses)
        self.held = threading.Event()
        self.released = threading.Event()
        webhook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                webhook.posts.append((dict(self.headers), body))
                if webhook.held.is_set():
                    webhook.released.wait()
                status = webhook.statuses.pop(0) if webhook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, event: str | None = None) -> list[dict]:
        return [body for _, body in self.posts if event is None or body["event"] == event]

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


class SmtpServer:
    """aiosmtpd in a subprocess on a free loopback port, delivering to a maildir."""

    def __init__(self, directory):
        self.maildir = directory / "maildir"
        self.port = devservers.free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
             "-c", "aiosmtpd.handlers.Mailbox", str(self.maildir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(self._listening)

    def _listening(self) -> bool:
        assert self.process.poll() is None, self.process.stderr.read().decode()
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def messages(self) -> list[email.message.EmailMessage]:
        if not self.maildir.exists():
            return []
        return list(mailbox.Maildir(str(self.maildir), create=False, factory=lambda file: (
            email.message_from_binary_file(file, policy=email.policy.default))))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process.stderr.close()


@pytest.fixture
def webhook():
    receiver = Webhook()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def smtp_server(tmp_path_factory):
    server = SmtpServer(tmp_path_factory.mktemp("smtp"))
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "distributed"])
def mailing_cluster(request, executor, tmp_path, smtp_server):
    """A cluster whose workers send email through the test's SMTP server."""
    yield from start_cluster(request, request.param, executor, tmp_path,
                             smtp_host="127.0.0.1", smtp_port=smtp_server.port)


def queued(kv: KV, cluster) -> int:
    """How many notifications wait to be sent."""
    return kv.range(cluster.engine.keys.notifications(), prefix=True,
                    count_only=True).count


def all_sent(cluster) -> None:
    wait_until(lambda: queued(cluster.engine.kv, cluster) == 0)


def summing_job(cluster, reducer: str = SUM_REDUCER, **job_options) -> None:
    cluster.handler("leaf", "mapper", LEAF_MAPPER)
    cluster.handler("total", "reducer", reducer)
    cluster.step("sum", "leaf", "total")
    cluster.job("sum", "sum", **job_options)


def test_a_finished_request_is_posted_to_its_jobs_webhook(cluster, webhook):
    summing_job(cluster, notify=[{"http": webhook.url}])
    request = cluster.run("sum", {"a": 1, "b": 2})
    assert request.state == "done" and request.notify == [
        {"http": webhook.url, "when": ["done", "failed", "cancelled"]}]
    wait_until(lambda: webhook.posts)
    all_sent(cluster)
    [(headers, body)] = webhook.posts
    notification_id = f"{cluster.workflow}/{request.request_id}/finished"
    assert body == {
        "id": notification_id, "event": "finished", "workflow": cluster.workflow, "job": "sum",
        "request_id": request.request_id, "state": "done", "error": None,
        "created_at": request.created_at, "finished_at": request.finished_at,
        "duration_s": round(request.finished_at - request.created_at, 3),
        "status_url": f"http://127.0.0.1:8080/request/{cluster.workflow}/{request.request_id}"}
    assert headers["X-Mr-Notification-Id"] == notification_id
    assert headers["X-Mr-Request-Id"] == request.request_id


def test_a_failed_request_tells_its_error_to_the_channels_that_asked_for_failures(cluster,
                                                                                  webhook):
    summing_job(cluster, reducer=EXPLODING_REDUCER)
    request = cluster.run("sum", {"a": 1}, notify=[{"http": webhook.url, "when": ["failed"]}])
    assert request.state == "failed"
    wait_until(lambda: webhook.posts)
    all_sent(cluster)
    [body] = webhook.bodies()
    assert (body["event"], body["state"]) == ("finished", "failed")
    assert body["error"] == {"type": "RuntimeError", "message": "no sums today",
                             "kind": "handler", "handler": "total",
                             "failed_invocation_id": request.failed_invocation_id}


def test_a_channel_is_told_only_of_the_states_it_asked_for(cluster):
    outbox = Outbox(cluster.engine.keys, cluster.engine.settings)
    request = Request(workflow=cluster.workflow, job_name="sum", root_invocation_id="0" * 32,
                      blocking=True, state="done", finished_at=time.time(),
                      notify=[{"http": "http://127.0.0.1:1/failures", "when": ["failed"]},
                              {"http": "http://127.0.0.1:1/all"}])
    [write] = outbox.finished(request)
    assert write.key.endswith(f"/{request.request_id}/finished/1")
    assert outbox.finished(request.replace(notify=None)) == []
    behind_a_proxy = Outbox(cluster.engine.keys,
                            cluster.engine.settings.with_overrides(url="https://mr.example.com/"))
    [write] = behind_a_proxy.finished(request)
    assert codec.decode(write.value)["notification"]["status_url"] == (
        f"https://mr.example.com/request/{cluster.workflow}/{request.request_id}")


def test_a_requests_own_channels_replace_its_jobs(cluster, webhook):
    summing_job(cluster, notify=[{"http": "http://127.0.0.1:1/never"}])
    assert cluster.run("sum", {"a": 1}, notify=[]).notify is None
    request = cluster.run("sum", {"a": 1}, notify=[{"http": webhook.url}])
    assert [channel["http"] for channel in request.notify] == [webhook.url]


def test_handler_messages_go_to_the_channels_of_their_logger(mailing_cluster, smtp_server,
                                                             webhook):
    cluster = mailing_cluster
    cluster.handler("chatty", "mapper", CHATTY_MAPPER)
    cluster.handler("total", "reducer", SUM_REDUCER)
    cluster.step("sum", "chatty", "total")
    cluster.job("sum", "sum")
    address = f"{cluster.workflow}@example.com"
    request = cluster.run("sum", {"a": 1, "b": 2},
                          notify=[{"http": webhook.url}, {"email": address}])
    assert request.state == "done"
    wait_until(lambda: len(webhook.posts) == 3)
    all_sent(cluster)
    messages = webhook.bodies("message")
    assert sorted((body["level"], body["message"]) for body in messages) == [
        ("ERROR", "to the webhooks only"), ("INFO", "to every channel: 2 arguments")]
    assert {body["handler"] for body in messages} == {"chatty"}
    assert [body["state"] for body in webhook.bodies("finished")] == ["done"]
    mails = [mail for mail in smtp_server.messages() if mail["To"] == address]
    assert len(mails) == 3
    subjects = sorted(mail["Subject"].strip() for mail in mails)  # folded: unfolds to " [mr]"
    about = f"request {request.request_id} of {cluster.workflow}/sum"
    assert subjects == sorted([
        f"[mr] done: {about}",
        f"[mr] INFO from chatty ({about}): to every channel: 2 arguments",
        f"[mr] WARNING from chatty ({about}): to the email channels only"])
    finished_mail = next(mail for mail in mails if "[mr] done" in mail["Subject"])
    text = finished_mail.get_content()
    assert f"/request/{cluster.workflow}/{request.request_id}" in text
    assert mails[0]["From"] == "mr@localhost"


def test_handler_messages_without_a_channel_of_their_kind_are_only_logged(cluster):
    outbox = Outbox(cluster.engine.keys, cluster.engine.settings)
    notice = {"channel": TO_EMAIL, "level": "INFO", "message": "hi", "logged_at": time.time()}
    request = Request(workflow=cluster.workflow, job_name="sum", root_invocation_id="0" * 32,
                      blocking=True, notify=[{"http": "http://127.0.0.1:1/hook"}])
    assert outbox.message(request, "1" * 32, "chatty", notice) == []
    assert outbox.message(request.replace(notify=None), "1" * 32, "chatty", notice) == []
    cluster.handler("chatty", "mapper", CHATTY_MAPPER)
    cluster.handler("total", "reducer", SUM_REDUCER)
    cluster.step("sum", "chatty", "total")
    cluster.job("sum", "sum")
    assert cluster.run("sum", {"a": 1}).state == "done"
    assert queued(cluster.engine.kv, cluster) == 0


def test_a_sender_that_dies_mid_send_loses_no_notification(cluster, webhook):
    summing_job(cluster, notify=[{"http": webhook.url}])
    webhook.held.set()  # the first POST gets no answer while its sender is stopped
    request = cluster.run("sum", {"a": 1})
    wait_until(lambda: webhook.posts)
    cluster.worker.stop(timeout=2)  # the sender dies: its process no longer leads
    assert queued(cluster.engine.kv, cluster) == 1
    webhook.held.clear()
    webhook.released.set()
    cluster.restart_worker()
    wait_until(lambda: len(webhook.posts) == 2)
    all_sent(cluster)
    assert [body["request_id"] for body in webhook.bodies()] == [request.request_id] * 2


def test_a_refused_post_is_retried_then_delivered(cluster, monkeypatch):
    monkeypatch.setattr(delivery, "BACKOFF_S", 0.01)
    webhook = Webhook(statuses=(503, 500))
    try:
        summing_job(cluster, notify=[{"http": webhook.url}])
        cluster.run("sum", {"a": 1})
        wait_until(lambda: len(webhook.posts) == 3)
        all_sent(cluster)
        assert len({body["id"] for body in webhook.bodies()}) == 1
    finally:
        webhook.stop()


def test_a_notification_is_dropped_and_logged_after_its_last_attempt(cluster, monkeypatch,
                                                                     caplog):
    monkeypatch.setattr(delivery, "BACKOFF_S", 0.01)
    monkeypatch.setattr(delivery, "ATTEMPTS", 3)
    webhook = Webhook(statuses=(500,) * 10)
    try:
        summing_job(cluster, notify=[{"http": webhook.url}])
        request = cluster.run("sum", {"a": 1})
        all_sent(cluster)
        assert len(webhook.posts) == 3
        assert f"{request.request_id}/finished/0 dropped: could not deliver" in caplog.text
        assert "after 3 attempts: HTTP 500" in caplog.text
    finally:
        webhook.stop()


@pytest.mark.parametrize("channel, refusal", [
    ({"http": "ftp://example.com/hook"}, "notify[0].http must be an http:// or https:// URL"),
    ({"email": "not an address"}, "notify[0].email must be one email address"),
    ({"http": "https://example.com", "when": ["finished"]}, "notify[0].when must be a non-empty"),
    ({"sms": "+1555"}, 'notify[0] must be an object with one of "http"'),
])
def test_bad_channels_are_refused_in_jobs_and_requests(cluster, channel, refusal):
    with pytest.raises(ModelError, match=re.escape(refusal)):
        Job(workflow=cluster.workflow, name="j", description="", initial_step_name="s",
            notify=[channel])
    summing_job(cluster)
    with pytest.raises(ValidationError) as refused:
        cluster.engine.submit(cluster.workflow, "sum", {}, blocking=True, notify=[channel])
    assert refusal in str(refused.value)


def test_email_is_refused_where_no_smtp_server_is_configured(cluster):
    summing_job(cluster)
    with pytest.raises(ValidationError, match="MR_SMTP_HOST is not set"):
        cluster.engine.submit(cluster.workflow, "sum", {}, blocking=True,
                              notify=[{"email": "ops@example.com"}])


@pytest.fixture
def embedded_cluster(request, executor, tmp_path):
    yield from start_cluster(request, "embedded", executor, tmp_path)


def test_a_bad_notify_field_is_a_400_naming_it(embedded_cluster):
    summing_job(embedded_cluster)
    client = create_app(embedded_cluster.engine).test_client()
    answer = client.post(f"/job/{embedded_cluster.workflow}/sum",
                         json={"arguments": {}, "notify": [{"http": "localhost:8080"}]})
    assert answer.status_code == 400
    assert answer.json["error"]["type"] == "InvalidBody"
    assert answer.json["error"]["message"] == (
        "notify[0].http must be an http:// or https:// URL with a host, got 'localhost:8080'")
    answer = client.post(f"/job/{embedded_cluster.workflow}/sum",
                         json={"arguments": {}, "notify": {"email": "ops@example.com"}})
    assert answer.status_code == 400
    assert answer.json["error"]["message"].startswith("notify must be a list of channels")
    answer = client.post(f"/job/{embedded_cluster.workflow}/sum",
                         json={"arguments": {}, "notify": [{"email": "ops@example.com"}]})
    assert answer.status_code == 400
    assert answer.json["error"]["type"] == "ValidationError"
    assert "MR_SMTP_HOST is not set" in answer.json["error"]["message"]


def test_handler_messages_leave_the_executor_child_with_its_result(executor):
    outcome = executor.run(task("mapper", """
        try:
            {}["k"]
        except KeyError:
            NOTIFY.exception("lookup failed")
        for number in range(60):
            HTTP.info("x" * 5000)
        EMAIL.debug("below INFO")
        yield MrConfigureToReturn()
        raise RuntimeError("the handler fails after its messages")
        """))
    assert not outcome.ok  # its messages come back all the same
    first, *rest = outcome.notices
    assert (first["channel"], first["level"]) == ("all", "ERROR")
    assert first["message"].startswith("lookup failed\nTraceback")
    assert first["message"].endswith("KeyError: 'k'")
    assert [(notice["channel"], len(notice["message"])) for notice in rest] == [("http", 4000)] * 49
    assert "lookup failed" in outcome.stderr and "below INFO" in outcome.stderr


def test_a_jobs_channels_are_read_from_workflow_yaml(tmp_path):
    (tmp_path / "leaf.py").write_text(python_source("mapper", LEAF_MAPPER))
    (tmp_path / "total.py").write_text(python_source("reducer", SUM_REDUCER))
    manifest = tmp_path / "workflow.yaml"
    manifest.write_text("workflow: told\nsteps: {sum: {mapper: leaf, reducer: total}}\n"
                        "jobs: {sum: {step: sum, notify: [{email: ops@example.com, "
                        "when: [failed]}]}}\n")
    [job] = read_definition(tmp_path).jobs
    assert job.notify == [{"email": "ops@example.com", "when": ["failed"]}]
    manifest.write_text(manifest.read_text().replace("when: [failed]", "on: [failed]"))
    with pytest.raises(WorkflowDefinitionError, match=r"notify\[0\] has unknown fields True"):
        read_definition(tmp_path)
