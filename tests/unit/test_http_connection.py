"""The lean HTTP/1.1 client of etcd's gateway against a raw server on loopback that answers on
cue: framings, keep-alive, and every way a connection breaks (it must then be closed, never
used again)."""
import re
import socket
import ssl
import time

import gevent
import gevent.event
import gevent.server
import pytest

from mr.kv.base import KVError
from mr.kv.etcd import EtcdKV
from mr.kv.http_connection import (BrokenAnswer, ConnectionPool, HttpConnection,
                                   RequestNotSent)

#: What etcd answers to a range of "/k" holding "v".
RANGE_ANSWER = (b'{"header":{"revision":"7"},"kvs":[{"key":"L2s=","value":"dg==",'
                b'"mod_revision":"7"}],"count":"1"}')


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


class Peer:
    """The server's end of one connection."""

    def __init__(self, sock: socket.socket, number: int, requests: list):
        self.sock = sock
        #: 1 for the server's first connection, 2 for the next...
        self.number = number
        #: Every request the server got, on any connection: (head, body).
        self.requests = requests
        self._buffer = b""

    def read_request(self) -> bytes | None:
        """The next request's body, once it came whole; None if the client closed."""
        while b"\r\n\r\n" not in self._buffer:
            data = self.sock.recv(65536)
            if not data:
                return None
            self._buffer += data
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"\r\ncontent-length: *(\d+)", head, re.I).group(1))
        while len(self._buffer) < length:
            self._buffer += self.sock.recv(65536)
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        self.requests.append((head, body))
        return body

    def answer(self, body: bytes, headers: str = "") -> None:
        self.sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
                          .encode() + body)

    def answers_until_closed(self, body: bytes = RANGE_ANSWER) -> None:
        while self.read_request() is not None:
            self.answer(body)


def send_and_close(raw: bytes):
    """A connection's handler: once a request came, send ``raw`` and close the connection."""
    def serve(peer: Peer) -> None:
        peer.read_request()
        peer.sock.sendall(raw)
        peer.sock.close()
    return serve


class Server:
    """Runs ``serve(peer)`` for each connection it accepts; counts them and records requests."""

    def __init__(self, serve, tls: ssl.SSLContext | None = None):
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self._serve = serve
        self._server = gevent.server.StreamServer(("127.0.0.1", 0), self._accept,
                                                  **({"ssl_context": tls} if tls else {}))
        self._server.start()
        self.port = self._server.server_port
        self.endpoint = f"127.0.0.1:{self.port}"

    def _accept(self, sock, _address) -> None:
        self.connections += 1
        self._serve(Peer(sock, self.connections, self.requests))

    def stop(self) -> None:
        self._server.stop(timeout=1)


@pytest.fixture
def serve():
    servers = []

    def start(handler, tls: ssl.SSLContext | None = None) -> Server:
        servers.append(Server(handler, tls))
        return servers[-1]
    yield start
    for server in servers:
        server.stop()


class SendCounter:
    """A socket that counts the calls that put bytes on the wire."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self.sends = 0

    def sendall(self, data: bytes) -> None:
        self.sends += 1
        self._sock.sendall(data)

    def send(self, data: bytes) -> int:
        self.sends += 1
        return self._sock.send(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def test_a_request_goes_out_in_one_send_with_its_headers_and_body(serve):
    server = serve(Peer.answers_until_closed)
    counted = SendCounter(socket.create_connection(("127.0.0.1", server.port)))
    connection = HttpConnection(counted, server.endpoint)
    status = connection.request("/v3/kv/range", b'{"key":"L2s="}',
                                {"Content-Type": "application/json", "Authorization": "t.1"},
                                soon())
    assert (status, connection.read_body()) == (200, RANGE_ANSWER)
    assert counted.sends == 1
    head, body = server.requests[0]
    assert head.split(b"\r\n") == [
        b"POST /v3/kv/range HTTP/1.1", f"Host: {server.endpoint}".encode(),
        b"Content-Length: 14", b"Content-Type: application/json", b"Authorization: t.1"]
    assert body == b'{"key":"L2s="}'
    connection.close()


def test_answers_framed_by_length_keep_one_connection_for_every_call(serve):
    server = serve(Peer.answers_until_closed)
    pool = ConnectionPool(server.endpoint)
    for _ in range(3):
        assert pool.post("/v3/kv/range", b"{}", {}, soon()) == (200, RANGE_ANSWER)
    assert server.connections == 1 and len(server.requests) == 3
    pool.close()


def test_a_chunked_answer_is_read_whole_and_the_connection_kept(serve):
    def chunked(peer):
        while peer.read_request() is not None:
            peer.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5;name=value\r\n{\"a\":\r\n")
            gevent.sleep(0.05)  # the rest comes later, cut inside a chunk and its size line
            peer.sock.sendall(b"4\r\n\"bc")
            gevent.sleep(0.05)
            peer.sock.sendall(b"\"\r\n1")
            peer.sock.sendall(b"\r\n}\r\n0\r\nTrailer: x\r\n\r\n")
    server = serve(chunked)
    pool = ConnectionPool(server.endpoint)
    assert pool.post("/", b"{}", {}, soon()) == (200, b'{"a":"bc"}')
    assert pool.post("/", b"{}", {}, soon()) == (200, b'{"a":"bc"}')
    assert server.connections == 1
    pool.close()


def test_an_answer_ended_by_closing_the_connection_is_read_to_its_end(serve):
    server = serve(send_and_close(
        b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n400 Bad"))
    pool = ConnectionPool(server.endpoint)
    assert pool.post("/", b"{}", {}, soon()) == (400, b"400 Bad")
    assert pool.post("/", b"{}", {}, soon()) == (400, b"400 Bad")
    assert server.connections == 2


def test_connection_close_is_honoured(serve):
    def one_answer_each(peer):
        peer.read_request()
        peer.answer(b"{}", headers="Connection: close\r\n")
        peer.read_request()  # the connection stays open: the client must not use it again
    server = serve(one_answer_each)
    pool = ConnectionPool(server.endpoint)
    for _ in range(2):
        assert pool.post("/", b"{}", {}, soon()) == (200, b"{}")
    assert server.connections == 2


def test_a_connection_the_server_closed_between_calls_is_replaced(serve):
    def one_answer_then_close(peer):
        peer.read_request()
        peer.answer(RANGE_ANSWER)  # keep-alive by HTTP/1.1's default, and yet:
        gevent.sleep(0.01)
        peer.sock.close()
    server = serve(one_answer_then_close)
    pool = ConnectionPool(server.endpoint)
    assert pool.post("/", b"{}", {}, soon()) == (200, RANGE_ANSWER)
    gevent.sleep(0.1)
    assert pool.post("/", b"{}", {}, soon()) == (200, RANGE_ANSWER)
    assert server.connections == 2
    pool.close()


def test_an_answer_cut_off_is_a_clear_error_and_its_connection_is_dropped(serve):
    def cut_off_once(peer):
        if peer.number == 1:
            send_and_close(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"head")(peer)
        else:
            peer.answers_until_closed()
    server = serve(cut_off_once)
    pool = ConnectionPool(server.endpoint)
    with pytest.raises(BrokenAnswer, match="closed the connection before the end of its answer"):
        pool.post("/", b"{}", {}, soon())
    assert pool.post("/", b"{}", {}, soon()) == (200, RANGE_ANSWER)
    assert server.connections == 2
    pool.close()


def test_a_timeout_closes_the_connection(serve):
    hung_up = gevent.event.Event()

    def silent_once(peer):
        if peer.number == 1:
            peer.read_request()
            if peer.sock.recv(1) == b"":  # the client closed its end
                hung_up.set()
            return
        peer.answers_until_closed()
    server = serve(silent_once)
    pool = ConnectionPool(server.endpoint)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        pool.post("/", b"{}", {}, soon(0.3))
    assert 0.25 < time.monotonic() - started < 2
    assert hung_up.wait(5)
    assert pool.post("/", b"{}", {}, soon()) == (200, RANGE_ANSWER)
    assert server.connections == 2
    pool.close()


@pytest.mark.parametrize("answer", [
    b"SSH-2.0-OpenSSH_9.2\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
def test_what_is_not_http_is_refused(serve, answer):
    def odd(peer):
        peer.read_request()
        peer.sock.sendall(answer)
        peer.read_request()
    server = serve(odd)
    with pytest.raises(BrokenAnswer):
        ConnectionPool(server.endpoint).post("/", b"{}", {}, soon())


def test_a_refused_connection_is_a_request_not_sent():
    with socket.create_server(("127.0.0.1", 0)) as reserved:
        endpoint = f"127.0.0.1:{reserved.getsockname()[1]}"
    with pytest.raises(RequestNotSent, match="cannot connect"):
        ConnectionPool(endpoint).post("/", b"{}", {}, soon())


def test_a_stream_yields_chunks_as_they_come_and_times_out_when_silent(serve):
    def watch(peer):
        peer.read_request()
        peer.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\none\n\r\n")
        gevent.sleep(0.2)
        peer.sock.sendall(b"4\r\ntwo\n\r\n")
        peer.read_request()  # then silence, until the client closes
    server = serve(watch)
    connection = ConnectionPool(server.endpoint).connect(soon())
    assert connection.request("/v3/watch", b"{}", {}, soon()) == 200
    chunks = connection.stream(idle_timeout_s=0.5)
    assert next(chunks) == b"one\n"
    assert next(chunks) == b"two\n"  # 0.2 s later: within the idle timeout
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        next(chunks)
    assert 0.4 < time.monotonic() - started < 2
    connection.close()


def test_etcd_kv_reads_again_after_a_cut_off_but_reports_a_cut_off_write(serve):
    cutting = serve(send_and_close(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"))
    answering = serve(Peer.answers_until_closed)
    with EtcdKV(endpoints=[cutting.endpoint, answering.endpoint]) as kv:
        assert kv.get("/k").value == b"v"
        assert kv.base_url == f"http://{answering.endpoint}"
    with EtcdKV(endpoints=[cutting.endpoint, answering.endpoint]) as kv:
        with pytest.raises(KVError, match="closed the connection before the end of its answer; "
                                          "the write may or may not have been applied"):
            kv.put("/k", b"v")
    assert [body for _, body in answering.requests] == [b'{"key":"L2s="}']  # compact JSON


@pytest.mark.parametrize("certificate", ["server", "client"])
def test_over_tls_etcd_s_certificate_must_name_the_address_connected_to(serve, pki, certificate):
    """As urllib3 did: the certificate is checked against the CA, and its names against the
    address (server.pem names 127.0.0.1; client.pem, from the same CA, names none)."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pki / f"{certificate}.pem", pki / f"{certificate}-key.pem")
    server = serve(Peer.answers_until_closed, tls)
    with EtcdKV("127.0.0.1", server.port, ssl=True, ca_file=str(pki / "ca.pem")) as kv:
        if certificate == "server":
            assert kv.get("/k").value == b"v"
        else:
            with pytest.raises(KVError, match="TLS handshake failed.*IP address mismatch"):
                kv.get("/k")
