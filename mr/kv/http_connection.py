"""A lean keep-alive HTTP/1.1 client over gevent's sockets, for etcd's JSON gateway.

Why not urllib3: an etcd call is a small POST, and urllib3 spent 5× more CPU on it than the call
needs (URL and e-mail-style header parsing, header and body sent as two segments, which etcd
also pays for). Here a request goes out in one ``sendall``, and an answer is read with only what
HTTP/1.1 needs to find its end: Content-Length, chunked transfer coding, or the connection
closing. A connection carries one request at a time; one that failed in any way, or whose
answer was not read to its end, is closed and never used again.
"""
from __future__ import annotations

import socket
import ssl
import time
from typing import Iterator

from gevent import monkey

#: The unpatched select: a zero-timeout look at an idle socket never needs to wait.
_select = monkey.get_original("select", "select")

#: The most a server may send before the end of an answer's head.
MAX_HEAD_BYTES = 65536
_RECEIVE_BYTES = 65536


class RequestNotSent(ConnectionError):
    """The request never reached the server whole: sending it again is safe."""


class TlsError(ConnectionError):
    """TLS failed: a certificate was refused, by the server or by this side."""


class BrokenAnswer(ConnectionError):
    """The answer was cut off, or is not HTTP/1.x."""


def _is_tls_refusal(error: OSError) -> bool:
    """A TLS alert or a certificate check, as opposed to the connection ending (which is a
    network failure like any other)."""
    return isinstance(error, ssl.SSLError) and not isinstance(
        error, (ssl.SSLEOFError, ssl.SSLZeroReturnError))


def _header(head: bytes, name: bytes) -> bytes:
    """The value of header ``name`` in a lower-cased head, empty if it has none: three look-ups
    for the only headers that matter here, instead of parsing them all."""
    start = head.find(b"\r\n" + name + b":")
    if start < 0:
        return b""
    start += len(name) + 3
    return head[start:head.find(b"\r\n", start)].strip()


class HttpConnection:
    """One connection to a server, carrying one request at a time."""

    def __init__(self, sock: socket.socket, host: str):
        self._sock = sock
        self._host = host
        self._buffer = bytearray()
        self._deadline = 0.0
        self._length: int | None = None
        self._chunked = False
        #: The server keeps the connection open after this answer.
        self.keep_alive = False

    def request(self, path: str, body: bytes, headers: dict[str, str], deadline: float) -> int:
        """POST ``body`` and read the answer's head by ``deadline`` (``time.monotonic()``);
        returns its status. The body is read next, with ``read_body`` or ``stream``."""
        head = "".join([f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\n"
                        f"Content-Length: {len(body)}\r\n",
                        *[f"{name}: {value}\r\n" for name, value in headers.items()], "\r\n"])
        self._deadline = deadline
        try:
            self._sock.settimeout(max(deadline - time.monotonic(), 0.001))
            self._sock.sendall(head.encode("latin-1") + body)
        except OSError as error:  # a server that has not all of a request cannot have run it
            raise RequestNotSent(f"cannot send to {self._host}: {error}") from None
        return self._read_head()

    def read_body(self) -> bytes:
        """The whole body of the answer whose head ``request`` read."""
        if self._chunked:
            return b"".join(self._chunks())
        if self._length is None:  # delimited by the connection's end
            while self._receive(end_allowed=True):
                pass
            self.keep_alive = False
            return self._take(len(self._buffer))
        return self._take(self._length)

    def stream(self, idle_timeout_s: float) -> Iterator[bytes]:
        """The chunks of a chunked body as they come, each within ``idle_timeout_s``."""
        chunks = self._chunks()
        while True:
            self._deadline = time.monotonic() + idle_timeout_s
            chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk

    @property
    def reusable(self) -> bool:
        """The answer was read to its end, nothing more came, and the server keeps the
        connection open."""
        return self.keep_alive and not self._buffer

    def dropped(self) -> bool:
        """An idle connection with something to read has been closed by the server (or sent
        what no request asked for): it cannot carry another request."""
        return bool(_select([self._sock], [], [], 0)[0])

    def close(self) -> None:
        self._sock.close()

    def _read_head(self) -> int:
        end = self._buffer.find(b"\r\n\r\n")
        while end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise BrokenAnswer(f"{self._host} sent a head longer than {MAX_HEAD_BYTES} bytes")
            self._receive()
            end = self._buffer.find(b"\r\n\r\n")
        head = bytes(self._buffer[:end + 2]).lower()  # each line ends with CRLF
        del self._buffer[:end + 4]
        version, _, status = head[:head.find(b"\r\n")].partition(b" ")
        length = _header(head, b"content-length")
        self._chunked = b"chunked" in _header(head, b"transfer-encoding")
        self.keep_alive = version == b"http/1.1" and b"close" not in _header(head, b"connection")
        try:
            if not version.startswith(b"http/1."):
                raise ValueError(version)
            self._length = int(length) if length else None
            return int(status[:3])
        except ValueError:
            raise BrokenAnswer(f"{self._host} answered what is not HTTP/1.x: "
                               f"{head[:100]!r}") from None

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size_line = self._take_line()
            try:
                size = int(size_line.split(b";", 1)[0], 16)
            except ValueError:
                message = f"{self._host} sent a bad chunk size {size_line[:20]!r}"
                raise BrokenAnswer(message) from None
            if size == 0:
                while self._take_line():  # trailers, up to the empty line
                    pass
                return
            chunk = self._take(size + 2)
            if chunk[-2:] != b"\r\n":
                raise BrokenAnswer(f"{self._host} sent a chunk longer than its size")
            yield chunk[:-2]

    def _take_line(self) -> bytes:
        end = self._buffer.find(b"\r\n")
        while end < 0:
            self._receive()
            end = self._buffer.find(b"\r\n")
        return self._take(end + 2)[:-2]

    def _take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._receive()
        taken = bytes(self._buffer[:size])
        del self._buffer[:size]
        return taken

    def _receive(self, end_allowed: bool = False) -> bool:
        """Read what has come, waiting until the deadline; False at the connection's end."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{self._host} did not answer in time")
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(_RECEIVE_BYTES)
        except OSError as error:
            if _is_tls_refusal(error):  # TLS 1.3: the server refuses a certificate here
                raise TlsError(str(error)) from None
            raise
        if not data and not end_allowed:
            raise BrokenAnswer(f"{self._host} closed the connection before the end of its answer")
        self._buffer += data
        return bool(data)


class ConnectionPool:
    """Keep-alive connections to one server (``host:port``), over TLS with ``tls``.

    Greenlets call it concurrently: each request takes an idle connection, or opens one, and
    gives it back only if its answer was read whole and the server keeps it open.
    """

    def __init__(self, endpoint: str, tls: ssl.SSLContext | None = None,
                 connect_timeout_s: float = 1.0, max_idle: int = 256):
        host, _, port = endpoint.rpartition(":")
        self._address = (host.strip("[]"), int(port))
        self._endpoint = endpoint
        self._tls = tls
        self._connect_timeout_s = connect_timeout_s
        self._max_idle = max_idle
        self._idle: list[HttpConnection] = []

    def post(self, path: str, body: bytes, headers: dict[str, str],
             deadline: float) -> tuple[int, bytes]:
        """The status and body of the answer to one POST, by ``deadline``."""
        connection = self._reuse() or self.connect(deadline)
        try:
            status = connection.request(path, body, headers, deadline)
            data = connection.read_body()
        except BaseException:  # a timeout or a kill too: the answer may still be coming
            connection.close()
            raise
        if connection.reusable and len(self._idle) < self._max_idle:
            self._idle.append(connection)
        else:
            connection.close()
        return status, data

    def connect(self, deadline: float) -> HttpConnection:
        """A new connection of its own (a stream holds one for as long as it lives)."""
        timeout = max(min(deadline - time.monotonic(), self._connect_timeout_s), 0.001)
        try:
            sock = socket.create_connection(self._address, timeout=timeout)
        except OSError as error:
            raise RequestNotSent(f"cannot connect to {self._endpoint}: {error}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is None:
            return HttpConnection(sock, self._endpoint)
        try:
            return HttpConnection(self._tls.wrap_socket(sock, server_hostname=self._address[0]),
                                  self._endpoint)
        except OSError as error:
            sock.close()
            if _is_tls_refusal(error):
                raise TlsError(str(error)) from None
            raise RequestNotSent(f"cannot connect to {self._endpoint}: {error}") from None

    def close(self) -> None:
        """Close the idle connections (the pool still serves: it opens new ones)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _reuse(self) -> HttpConnection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.dropped():
                return connection
            connection.close()
        return None
