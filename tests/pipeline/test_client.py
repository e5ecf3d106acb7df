"""``mr.client.Client`` against a scripted HTTP server on loopback: what it sends (the bearer
token included, from Python and from ``mr pipeline run --token``) and how each answer becomes a
result or an error."""
import http.server
import json
import threading

import pytest

from mr.client import ApiError, Cancelled, Client, JobFailed, Unreachable
from mr.devservers import LOOPBACK, free_port
from tests.pipeline.conftest import EXAMPLE, mr


class ScriptedServer(http.server.ThreadingHTTPServer):
    """Answers each call with the next (status, body) of ``answers`` and records the calls."""

    def __init__(self, answers):
        super().__init__((LOOPBACK, 0), ScriptedHandler)
        self.answers = list(answers)
        self.calls = []

    @property
    def url(self):
        return f"http://{LOOPBACK}:{self.server_port}"


class ScriptedHandler(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.calls.append((self.command, self.path, dict(self.headers), body))
        status, answer = self.server.answers.pop(0)
        data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *arguments):
        pass


@pytest.fixture
def scripted():
    servers = []

    def start(*answers):
        server = ScriptedServer(answers)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_submit_sends_the_body_and_the_token_and_returns_the_result(scripted):
    server = scripted((200, {"result": {"pairs": [["a", 1]]}}))
    client = Client(server.url + "/", token="s3cret")
    assert client.submit("w", "j", input={"url": "/data"}, deadline_s=5) == {"pairs": [["a", 1]]}
    method, path, headers, body = server.calls[0]
    assert (method, path) == ("POST", "/job/w/j")
    assert body == {"input": {"url": "/data"}, "deadline_s": 5}
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Type"] == "application/json"


def test_a_blocking_submit_that_times_out_follows_the_request(scripted):
    server = scripted(
        (504, {"error": {"type": "Timeout", "message": "…", "request_id": "r1",
                         "status_url": "/request/w/r1"}}),
        (200, {"request_id": "r1", "state": "running"}),
        (200, {"request_id": "r1", "state": "done", "result": {"pairs": []}}))
    assert Client(server.url).submit("w", "j", {"x": 1}) == {"pairs": []}
    assert [call[1] for call in server.calls] == ["/job/w/j", "/request/w/r1", "/request/w/r1"]
    assert server.calls[0][3] == {"arguments": {"x": 1}}


def test_answers_become_errors_by_status(scripted):
    failure = {"type": "ZeroDivisionError", "message": "division by zero", "kind": "handler",
               "request_id": "r2", "failed_invocation_id": "i9"}
    server = scripted((422, {"error": failure}),
                      (409, {"error": {"type": "Cancelled", "message": "cancelled"}}),
                      (404, {"error": {"type": "NotFound", "message": "no job"}}),
                      (502, "<html>bad gateway</html>"),
                      (200, {"request_id": "r3", "state": "failed", "error": failure}))
    client = Client(server.url)
    with pytest.raises(JobFailed) as failed:
        client.submit("w", "j")
    assert (failed.value.request_id, failed.value.failed_invocation_id) == ("r2", "i9")
    assert str(failed.value) == "ZeroDivisionError: division by zero"
    with pytest.raises(Cancelled):
        client.submit("w", "j")
    with pytest.raises(ApiError) as missing:
        client.job("w", "nojob")
    assert (missing.value.status, missing.value.type) == (404, "NotFound")
    assert server.calls[2][1] == "/job/w/nojob/definition"
    with pytest.raises(ApiError, match="HTTP502"):
        client.status("w", "r3")
    with pytest.raises(JobFailed):
        client.wait("w", "r3")


def test_no_server_is_unreachable():
    with pytest.raises(Unreachable, match="cannot reach mr at"):
        Client(f"http://{LOOPBACK}:{free_port()}").health()


def test_the_pipeline_command_sends_its_token(scripted):
    server = scripted((404, {"error": {"type": "NotFound",
                                       "message": "job 'count_words' of workflow 'texts' does "
                                                  "not exist"}}))
    finished = mr("pipeline", "run", str(EXAMPLE / "pipeline.yaml"), "--url", server.url,
                  "--token", "t0ken", cwd=EXAMPLE)
    assert finished.returncode == 2
    assert finished.stderr == ("mr: error: step 'count': job 'count_words' of workflow 'texts' "
                               "does not exist\n")
    assert server.calls[0][2]["Authorization"] == "Bearer t0ken"
