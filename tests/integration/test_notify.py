"""Notifications on a local distributed mr — etcd, nsqd, ``mr worker`` and the gunicorn front end
— to a webhook and an SMTP server (aiosmtpd) of the test's own, asked for in ``workflow.yaml``
and in request bodies."""
import json
import shutil
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mr.cli.cluster import start_cluster
from mr.handlers.load import read_definition
from tests.engine.test_notify import SmtpServer, Webhook, wait_until

ADDRESS = "ops@example.com"
FAULTS = Path(__file__).parents[1] / "faults" / "workflow"
LEAF = """
'''
Says hello on every channel, then counts its arguments.

**
argument_spec:
    - {name: arguments, type: list}
handler_type: mapper
required_capability: none
'''
NOTIFY.warning('hello from %d arguments', len(arguments))
yield MrConfigureToReturn()
for key, value in arguments:
    yield 'count', 1
"""


@pytest.fixture(scope="module")
def receivers(tmp_path_factory):
    webhook, smtp = Webhook(), SmtpServer(tmp_path_factory.mktemp("smtp"))
    yield webhook, smtp
    webhook.stop()
    smtp.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, receivers):
    webhook, smtp = receivers
    directory = tmp_path_factory.mktemp("told")
    (directory / "leaf.py").write_text(LEAF.lstrip())
    for reducer in ("add.py", "explode.py"):  # it sums; it prints, then raises "boom: N keys"
        shutil.copy(FAULTS / reducer, directory)
    (directory / "workflow.yaml").write_text(textwrap.dedent(f"""
        workflow: told
        steps:
          count: {{mapper: leaf, reducer: add}}
          explode: {{mapper: leaf, reducer: explode}}
        jobs:
          count:
            step: count
            notify: [{{http: "{webhook.url}"}}, {{email: {ADDRESS}}}]
          explode:
            step: explode
            notify: [{{http: "{webhook.url}", when: [failed]}}]
        """))
    local = start_cluster(tmp_path_factory.mktemp("cluster"), [read_definition(directory)],
                          workers=1, tie_to_parent=True,
                          extra_env={"MR_EXECUTOR_PROCESSES": "1",
                                     "MR_SMTP_HOST": "127.0.0.1", "MR_SMTP_PORT": str(smtp.port)})
    yield local
    local.stop()


def post(cluster, path: str, body: dict) -> tuple[int, dict, str]:
    """The status, body and request id of an answer of the cluster's front end."""
    request = urllib.request.Request(
        cluster.url + path, data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json",
                 "Authorization": f"Bearer {cluster.env['MR_TOKEN']}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.load(answer), answer.headers.get("X-MR-REQUEST-ID")
    except urllib.error.HTTPError as error:
        return error.code, json.load(error), error.headers.get("X-MR-REQUEST-ID")


def told_about(webhook: Webhook, request_id: str) -> list[dict]:
    return [body for body in webhook.bodies() if body["request_id"] == request_id]


def test_a_jobs_webhook_and_email_hear_of_its_requests_and_their_handlers(cluster, receivers):
    webhook, smtp = receivers
    status, answer, request_id = post(cluster, "/job/told/count", {"arguments": {"a": 1, "b": 2}})
    assert status == 200 and answer["result"]["pairs"] == [["count", 2]]
    wait_until(lambda: len(told_about(webhook, request_id)) == 2)
    [finished] = [body for body in told_about(webhook, request_id) if body["event"] == "finished"]
    [message] = [body for body in told_about(webhook, request_id) if body["event"] == "message"]
    assert (finished["workflow"], finished["state"], finished["error"]) == ("told", "done", None)
    assert finished["status_url"] == f"{cluster.url}/request/told/{request_id}"
    assert (message["handler"], message["level"], message["message"]) == (
        "leaf", "WARNING", "hello from 2 arguments")

    def mails():
        return [mail for mail in smtp.messages() if request_id in mail["Subject"]]
    wait_until(lambda: len(mails()) == 2)
    about = f"request {request_id} of told/count"
    assert sorted(mail["Subject"].strip() for mail in mails()) == [
        f"[mr] WARNING from leaf ({about}): hello from 2 arguments", f"[mr] done: {about}"]
    assert {mail["To"] for mail in mails()} == {ADDRESS}


def test_a_failure_is_posted_with_its_error(cluster, receivers):
    webhook, _ = receivers
    status, answer, request_id = post(cluster, "/job/told/explode", {"arguments": {"a": 1}})
    assert status == 422
    wait_until(lambda: len(told_about(webhook, request_id)) == 2)  # and the leaf's message
    [failure] = [body for body in told_about(webhook, request_id) if body["event"] == "finished"]
    assert failure["state"] == "failed"
    assert failure["error"] == {"type": "RuntimeError", "message": "boom: 1 keys",
                                "kind": "handler",
                                "handler": "explode",
                                "failed_invocation_id": answer["error"]["failed_invocation_id"]}


def test_a_request_names_its_own_channels(cluster, receivers):
    webhook, smtp = receivers
    mails_before = len(smtp.messages())
    status, answer, _ = post(cluster, "/job/told/explode?blocking=false", {
        "arguments": {"a": 1}, "notify": [{"http": webhook.url + "?own"}]})
    assert status == 202
    wait_until(lambda: len(told_about(webhook, answer["request_id"])) == 2)
    assert sorted(body["event"] for body in told_about(webhook, answer["request_id"])) == [
        "finished", "message"]
    assert len(smtp.messages()) == mails_before


def test_a_bad_channel_is_a_400_naming_it(cluster):
    status, answer, _ = post(cluster, "/job/told/count", {"arguments": {},
                                                       "notify": [{"email": "ops"}]})
    assert status == 400 and answer["error"]["type"] == "InvalidBody"
    assert answer["error"]["message"] == (
        "notify[0].email must be one email address such as ops@example.com, got 'ops'")
