"""``mr notifications listen`` and its JobX name, ``mr_http_notification_listen``: a webhook that
prints every notification it receives, one JSON line each."""
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from mr.notify.delivery import deliver
from mr.settings import Settings
from tests.cli.conftest import REPOSITORY, SCRIPTS, Mr, environment_without_settings

MR = [sys.executable, "-m", "mr.cli.main"]


class Listener:
    """The command, started on a free port and stopped by the test."""

    def __init__(self, command: list[str]):
        self.process = subprocess.Popen(
            [*command, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=environment_without_settings(), cwd=REPOSITORY)
        announcement = self.process.stderr.readline()
        assert announcement.startswith("listening on http://127.0.0.1:"), announcement
        self.url = announcement.removeprefix("listening on ").strip()

    def post(self, body: bytes, content_type: str) -> tuple[int, dict]:
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def printed(self):
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process.stdout.close()
        self.process.stderr.close()


@pytest.fixture
def listener():
    started = Listener([*MR, "notifications", "listen"])
    yield started
    started.stop()


NOTIFICATION = {"id": "w/1/finished", "event": "finished", "workflow": "w", "job": "j",
                "request_id": "1", "state": "done", "error": None, "created_at": 1.5,
                "finished_at": 2.5, "duration_s": 1.0, "status_url": "http://h/request/w/1",
                "note": "ünïcode"}


def test_every_json_notification_is_printed_as_one_line(listener):
    assert listener.post(json.dumps(NOTIFICATION, indent=2).encode(),
                         "application/json") == (200, {"received": True})
    assert listener.printed() == NOTIFICATION  # posted over several lines, printed on one


def test_what_mr_sends_is_what_it_prints(listener):
    deliver(Settings.load({}), {"http": listener.url}, NOTIFICATION)
    assert listener.printed() == NOTIFICATION


def test_a_form_posted_by_a_jobx_log_hook_is_printed_as_an_object(listener):
    status, _ = listener.post(b"name=MR_HANDLER.HTTP.h&levelname=INFO&msg=hello+there",
                              "application/x-www-form-urlencoded")
    assert status == 200
    assert listener.printed() == {"name": "MR_HANDLER.HTTP.h", "levelname": "INFO",
                                  "msg": "hello there"}


def test_a_body_that_is_no_notification_is_a_400_and_is_not_printed(listener):
    for body, content_type in ((b"hello", "text/plain"), (b"{oops", "application/json")):
        status, answer = listener.post(body, content_type)
        assert status == 400 and answer["error"]["type"] == "InvalidNotification"
    listener.post(b'{"after": 1}', "application/json")
    assert listener.printed() == {"after": 1}


def test_the_jobx_script_name_runs_the_same_listener():
    listener = Listener([str(SCRIPTS / "mr_http_notification_listen")])
    try:
        listener.post(b'{"from": "jobx"}', "application/json")
        assert listener.printed() == {"from": "jobx"}
    finally:
        listener.stop()


def test_a_busy_port_is_a_one_line_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = Mr(environment_without_settings()).fails("notifications", "listen", "--port",
                                                           str(port))
    assert message.startswith(f"cannot listen on 127.0.0.1:{port}: ")
