"""The http result writer's POST, against a real HTTP server on loopback that misbehaves on cue."""
import http.server
import json
import threading

import pytest

from mr.results import http_post
from mr.results.http_post import ResultDeliveryError, check_result_url, post_result

BODY = json.dumps({"result": {"pairs": [["the", 3], ["cat", 1]]}}).encode()
HEADERS = {"X-Mr-Request-Id": "3f2a9c", "X-Mr-Workflow": "wordcount", "X-Mr-Job": "count"}
FAST = {"backoff_s": 0.001, "timeout_s": 5.0}


class Receiver(http.server.ThreadingHTTPServer):
    """Answers the POSTs it gets with ``script`` in order, then with 200; records each one."""

    def __init__(self, script):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = list(script)
        self.received = []  # (body, headers) of every POST whose body arrived
        self.released = threading.Event()  # lets a "hang" answer go

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/results"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        receiver = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        receiver.received.append((body, dict(self.headers)))
        action = receiver.script.pop(0) if receiver.script else 200
        if action == "close":  # no answer at all
            self.close_connection = True
            return
        if action == "hang":  # answer only after the client gave up and came back
            receiver.released.wait(30)
            return
        receiver.released.set()
        status, retry_after = action if isinstance(action, tuple) else (action, None)
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        if 300 <= status < 400:
            self.send_header("Location", receiver.url)
        reply = b"not today" if status >= 400 else b"ok"
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *arguments):
        pass


@pytest.fixture
def receiver(request):
    server = Receiver(request.param)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def sleeps(monkeypatch):
    """The waits between attempts, recorded instead of slept."""
    recorded = []
    monkeypatch.setattr(http_post.time, "sleep", recorded.append)
    return recorded


def assert_posted(received):
    body, headers = received
    assert body == BODY
    assert headers["Content-Type"] == "application/json"
    for name, value in HEADERS.items():
        assert headers[name] == value


@pytest.mark.parametrize("receiver", [[]], indirect=True)
def test_a_result_is_posted_once_with_its_headers(receiver):
    post_result(receiver.url, BODY, HEADERS, attempts=3, **FAST)

    assert len(receiver.received) == 1
    assert_posted(receiver.received[0])


@pytest.mark.parametrize("receiver", [[503, 503], ["close", "close"], [500, "close", 502]],
                         indirect=True)
def test_failures_and_lost_answers_are_retried_until_the_receiver_accepts(receiver):
    failures = len(receiver.script)

    post_result(receiver.url, BODY, HEADERS, attempts=failures + 1, **FAST)

    assert len(receiver.received) == failures + 1
    for received in receiver.received:
        assert_posted(received)


@pytest.mark.parametrize("receiver", [["hang"]], indirect=True)
def test_a_receiver_that_does_not_answer_in_time_gets_the_result_again(receiver):
    post_result(receiver.url, BODY, HEADERS, attempts=2, backoff_s=0.001, timeout_s=0.2)

    assert len(receiver.received) == 2
    assert_posted(receiver.received[1])


@pytest.mark.parametrize("receiver", [[(429, "7"), (408, None), (429, "100000")]],
                         indirect=True)
def test_throttling_is_retried_after_the_time_the_receiver_asks_capped(receiver, sleeps):
    post_result(receiver.url, BODY, HEADERS, attempts=4, **FAST)

    assert len(receiver.received) == 4
    assert sleeps[0] == 7
    assert 0 < sleeps[1] <= 2 * FAST["backoff_s"]  # no Retry-After: the backoff
    assert sleeps[2] == http_post.MAX_DELAY_S


@pytest.mark.parametrize("receiver", [[400], [404], [301]], indirect=True)
def test_an_answer_that_refuses_the_result_is_not_retried(receiver):
    status = receiver.script[0]

    with pytest.raises(ResultDeliveryError) as raised:
        post_result(receiver.url, BODY, HEADERS, attempts=5, **FAST)

    assert len(receiver.received) == 1
    assert raised.value.attempts == 1
    assert str(raised.value).startswith(f"could not deliver the result to {receiver.url} "
                                        f"after 1 attempt: HTTP {status} ")


@pytest.mark.parametrize("receiver", [[503] * 10], indirect=True)
def test_attempts_are_bounded_and_the_error_names_the_url_and_the_last_answer(receiver):
    with pytest.raises(ResultDeliveryError) as raised:
        post_result(receiver.url, BODY, HEADERS, attempts=3, **FAST)

    assert len(receiver.received) == 3
    error = raised.value
    assert (error.url, error.attempts) == (receiver.url, 3)
    assert str(error) == (f"could not deliver the result to {receiver.url} after 3 attempts: "
                          f"HTTP 503 Service Unavailable: not today")


def test_a_receiver_that_is_not_there_is_retried_then_reported(sleeps):
    with Receiver([]) as closed:  # a port that was just free: the connection is refused
        url = closed.url

    with pytest.raises(ResultDeliveryError) as raised:
        post_result(url, BODY, HEADERS, attempts=3, **FAST)

    assert raised.value.attempts == 3
    assert len(sleeps) == 2
    assert "ConnectionRefusedError" in raised.value.last_error


@pytest.mark.parametrize("attempt", [1, 2, 5])
def test_backoff_doubles_per_attempt_with_jitter_and_is_capped(attempt):
    ceiling = 0.5 * 2 ** (attempt - 1)
    delays = [http_post.retry_delay_s(attempt, 0.5, None) for _ in range(50)]

    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1
    assert http_post.retry_delay_s(30, 0.5, None) <= http_post.MAX_DELAY_S


@pytest.mark.parametrize("url", ["http://example.org/hook", "https://example.org:8443/r?x=1"])
def test_http_and_https_urls_with_a_host_are_result_urls(url):
    assert check_result_url(url) == url


@pytest.mark.parametrize("url, message", [
    ("ftp://example.org/r", "must be an http:// or https:// URL"),
    ("file:///etc/passwd", "must be an http:// or https:// URL"),
    ("example.org/r", "must be an http:// or https:// URL"),
    (None, "must be an http:// or https:// URL"),
    ("http:///r", "has no host"),
    ("https://:80/r", "has no host"),
])
def test_other_urls_are_refused(url, message):
    with pytest.raises(ValueError, match=message):
        check_result_url(url)
    with pytest.raises(ValueError, match=message):
        post_result(url, BODY, HEADERS, attempts=1, **FAST)
