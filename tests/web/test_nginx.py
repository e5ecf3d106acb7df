"""deploy/nginx/mr.conf in a real nginx, in front of gunicorn serving the app as
``mr_start_gunicorn_dev`` starts it, over the session's etcd and nsqd.

The site is used as shipped but for where it listens, the socket it proxies to, and its body
limit (lowered so that nginx's own 413 is cheap to provoke). Requests that need workers to finish
are left to the end-to-end tests.
"""
import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import pytest

from mr import devservers
from mr.cli.cluster import NGINX_MAIN
from mr.auth.tokens import TokenStore
from mr.models import EntityStore
from mr.settings import Settings
from tests.conftest import etcd_client
from tests.web.workflow import WORKFLOW, populate

NGINX = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin")
SITE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "mr.conf"
APP_MAX_REQUEST_BYTES = 1024
NGINX_BODY_LIMIT_BYTES = 8192
JSON = {"Content-Type": "application/json"}
TOKEN_NAME = "through-nginx"

needs_nginx = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (apt-get install nginx): deploy/nginx/mr.conf "
                          "is only tested with a real nginx")



class Answer(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def error(self) -> dict:
        assert self.headers["Content-Type"] == "application/json", self.body
        return json.loads(self.body)["error"]


def call(address: str, method: str, path: str, body: bytes | None = None,
         headers: dict | None = None) -> Answer:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the site should contain {old!r} once"
    return text.replace(old, new)


@contextlib.contextmanager
def running_nginx(directory: Path, socket_path: str):
    """A private nginx serving the site on a free loopback port; yields ``host:port``."""
    address = f"127.0.0.1:{devservers.free_port()}"
    site = replace_once(SITE.read_text(), "listen 80;", f"listen {address};")
    site = replace_once(site, "unix:/run/mr/gunicorn.sock", f"unix:{socket_path}")
    site = replace_once(site, "client_max_body_size 16g;",
                        f"client_max_body_size {NGINX_BODY_LIMIT_BYTES};")
    (directory / "mr.conf").write_text(site)
    # As root, nginx's workers would drop to "nobody", who cannot reach our private directory.
    user = "user root;" if os.geteuid() == 0 else ""
    (directory / "nginx.conf").write_text(NGINX_MAIN.format(directory=directory, user=user))
    command = [NGINX, "-p", str(directory), "-c", str(directory / "nginx.conf"),
               "-e", str(directory / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    with open(directory / "nginx.out", "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_listening(address, process, directory / "error.log")
        assert int((directory / "nginx.pid").read_text()) == process.pid
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_listening(address: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert process.poll() is None, f"nginx exited: {log.read_text()}"
        try:
            call(address, "GET", "/")
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nginx did not listen on {address}: {log.read_text()}")


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory, etcd_server, nsqd_server):
    """gunicorn with the dev config on a unix socket (for nginx) and a TCP port (to compare)."""
    directory = tmp_path_factory.mktemp("gunicorn")
    socket_path, address = directory / "mr.sock", f"127.0.0.1:{devservers.free_port()}"
    prefix = f"/test-{uuid.uuid4().hex[:12]}"
    etcd = etcd_client(etcd_server)
    store = EntityStore(etcd, prefix)
    populate(store)
    _, token = TokenStore(etcd, store.keys).create(TOKEN_NAME, "submit")
    etcd.close()
    etcd_host, etcd_port = etcd_server.addresses["client"].rsplit("/", 1)[-1].split(":")
    environment = {
        "MR_KV_BACKEND": "etcd", "MR_ETCD_HOST": etcd_host, "MR_ETCD_PORT": etcd_port,
        "MR_KV_PREFIX": prefix, "MR_QUEUE_BACKEND": "nsq",
        "MR_NSQD_HOSTS": nsqd_server.addresses["tcp"], "MR_DATA_STORE_URL": str(directory),
        "MR_WORKFLOW_NAMES": WORKFLOW, "MR_MAX_REQUEST_BYTES": str(APP_MAX_REQUEST_BYTES)}
    server = devservers.ServerProcess(
        "gunicorn", [sys.executable, "-c", "from mr.web.gunicorn_dev import main; main()",
                     "--bind", f"unix:{socket_path}", "--bind", address],
        directory, {"unix": str(socket_path), "http": address}, f"http://{address}/health",
        tie_to_parent=True)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        server.start()
    server.headers = {**JSON, "Authorization": f"Bearer {token}"}
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nginx(tmp_path_factory, gunicorn):
    with running_nginx(tmp_path_factory.mktemp("nginx"), gunicorn.addresses["unix"]) as address:
        assert call(address, "GET", "/health").status == 200
        yield address


def test_site_limits_match_the_settings_defaults():
    site, defaults = SITE.read_text(), Settings()
    body_limit_gib = int(re.search(r"client_max_body_size (\d+)g;", site)[1])
    assert body_limit_gib << 30 == defaults.max_upload_bytes
    read_timeout_s = int(re.search(r"proxy_read_timeout (\d+)s;", site)[1])
    assert read_timeout_s > defaults.request_wait_timeout_s


@needs_nginx
def test_unknown_workflow_404_passes_through_unchanged(gunicorn, nginx):
    request = ("POST", "/job/nope/j", b'{"arguments": {}}', gunicorn.headers)
    direct, proxied = call(gunicorn.addresses["http"], *request), call(nginx, *request)
    assert proxied.status == direct.status == 404
    assert proxied.body == direct.body
    assert proxied.error()["type"] == "NotFound" and "'nope'" in proxied.error()["message"]
    assert proxied.headers["X-FULFILLED-BY"]


@needs_nginx
def test_mr_413_passes_through_unchanged(gunicorn, nginx):
    body = b'{"arguments": {"a": "' + b"x" * (APP_MAX_REQUEST_BYTES * 4) + b'"}}'
    assert len(body) < NGINX_BODY_LIMIT_BYTES
    request = ("POST", "/job/w/j", body, gunicorn.headers)
    direct, proxied = call(gunicorn.addresses["http"], *request), call(nginx, *request)
    assert proxied.status == direct.status == 413
    assert proxied.body == direct.body
    assert proxied.error()["type"] == "RequestEntityTooLarge"
    assert proxied.headers["X-FULFILLED-BY"]  # mr answered, not nginx


@needs_nginx
def test_an_upload_larger_than_a_json_body_may_be_passes_through(gunicorn, nginx):
    body = b'["a", 1]\n' * (APP_MAX_REQUEST_BYTES // 4)
    assert APP_MAX_REQUEST_BYTES < len(body) < NGINX_BODY_LIMIT_BYTES
    accepted = call(nginx, "POST", "/job/w/j?blocking=false", body,
                    {**gunicorn.headers, "Content-Type": "application/x-ndjson"})
    assert accepted.status == 202, accepted.body
    assert json.loads(accepted.body)["request_id"]


@needs_nginx
def test_body_over_the_nginx_limit_is_a_json_413_from_nginx(nginx):
    answer = call(nginx, "POST", "/job/w/j", b"x" * (NGINX_BODY_LIMIT_BYTES * 2), JSON)
    assert answer.status == 413
    assert answer.error()["type"] == "RequestEntityTooLarge"
    assert answer.headers["X-FULFILLED-BY"] is None


@needs_nginx
def test_requester_ip_is_the_peer_of_nginx_not_what_the_client_claims(gunicorn, nginx):
    accepted = call(nginx, "POST", "/job/w/j?blocking=false", b'{"arguments": {"a": 1}}',
                    {**gunicorn.headers, "X-Forwarded-For": "203.0.113.66"})
    assert accepted.status == 202, accepted.body
    status_url = accepted.headers["Location"]
    try:
        described = json.loads(call(nginx, "GET", status_url, headers=gunicorn.headers).body)
        assert described["context"] == {"requester_ip": "127.0.0.1", "token": TOKEN_NAME}
    finally:
        assert call(nginx, "DELETE", status_url, headers=gunicorn.headers).status == 200


@needs_nginx
def test_front_end_down_is_a_json_503(tmp_path):
    with running_nginx(tmp_path, str(tmp_path / "nobody-listens.sock")) as address:
        answer = call(address, "GET", "/health")
    assert answer.status == 503
    assert answer.error()["type"] == "ServiceUnavailable"


@needs_nginx
def test_a_401_passes_through_with_its_challenge(nginx):
    answer = call(nginx, "GET", "/request/w/" + "0" * 32)
    assert answer.status == 401 and answer.error()["type"] == "Unauthorized"
    assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="mr"')


@needs_nginx
@pytest.mark.parametrize("path,headers,status,error_type", [
    ("/request/w/" + "x" * 9000, {}, 414, "URITooLong"),
    ("/health", {"X-Padding": "x" * 9000}, 431, "HeadersTooLarge"),
])
def test_a_request_over_nginxs_buffers_is_a_json_error_from_nginx(nginx, path, headers, status,
                                                                   error_type):
    answer = call(nginx, "GET", path, headers=headers)
    assert answer.status == status
    assert answer.error()["type"] == error_type
    assert answer.headers["X-FULFILLED-BY"] is None
