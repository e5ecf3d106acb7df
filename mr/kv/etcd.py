"""The KV store over a real etcd, through etcd's v3 JSON gateway (mr.kv.http_connection).

Why not gRPC: see docs/decisions.rst. Plain HTTP over gevent's sockets never blocks the event
loop, and this client owns its recovery: requests that could not reach etcd are retried until the
request deadline, and a watch whose stream breaks (etcd restarted, connection lost, server silent
for too long) reconnects by itself from the revision after the last one it delivered, so no event
is lost or repeated.

Gateway encoding: keys and values are base64, 64-bit integers are JSON strings, zero and false
fields are omitted.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import logging
import ssl
import time
from typing import Any, Sequence

import gevent

from mr.kv.base import (KV, CompactedError, Compare, Delete, DeleteResult, Get, KeyValue, KVError,
                        KVSpaceExceededError, LeaseNotFoundError, Operation, Put, PutResult,
                        QueuedWatch, RangeResult, TransactionTooLargeError, TxnResult,
                        WatchEvent, prefix_range_end)
from mr.kv.batching import TouchedKeys, TxnBatcher
from mr.kv.http_connection import ConnectionPool, RequestNotSent, TlsError

log = logging.getLogger(__name__)

#: The --max-txn-ops that mr's scripts start etcd with: a handler sync is one transaction of
#: two operations per handler, and etcd's default (128) would cap it near 60 handlers.
MAX_TXN_OPS = 10000

#: Deadline of a physical compaction or a defragmentation: they take a while on a large store
#: (defragmentation rewrites the whole database file, at disk speed).
MAINTENANCE_TIMEOUT_S = 600.0

#: A watch stream that says nothing for this long is presumed dead and reopened.
WATCH_IDLE_TIMEOUT_S = 30.0
#: A member that does not accept a connection within this is taken for down (it is on a
#: network: a live one accepts at once), so that the next member gets the rest of the deadline.
CONNECT_TIMEOUT_S = 1.0
_RETRY_INTERVAL_S = 0.1
_RETRY_INTERVAL_MAX_S = 1.0

_TARGETS = {"value": "VALUE", "version": "VERSION", "create_revision": "CREATE",
            "mod_revision": "MOD"}
_RESULTS = {"==": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}
_GRPC_INVALID_ARGUMENT = 3
_GRPC_NOT_FOUND = 5
_GRPC_PERMISSION_DENIED = 7
_GRPC_RESOURCE_EXHAUSTED = 8
_GRPC_UNAUTHENTICATED = 16
_PLAIN_HEADERS = {"Content-Type": "application/json"}
_TLS_FILES_HINT = "check MR_ETCD_CA_FILE, MR_ETCD_CERT_FILE and MR_ETCD_KEY_FILE"


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _tls_context(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    """Checks etcd's certificate and name against ``ca_file`` (else the system's CAs), and
    presents ``cert_file``/``key_file`` to an etcd that asks for a client certificate."""
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
        if cert_file:
            context.load_cert_chain(cert_file, key_file or None)
    except OSError as error:  # ssl.SSLError too: a file that is not PEM, a key that mismatches
        raise KVError(f"cannot load etcd's TLS files ({error}); {_TLS_FILES_HINT}") from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def _key_value(raw: dict) -> KeyValue:
    return KeyValue(key=_unb64(raw.get("key")).decode(), value=_unb64(raw.get("value")),
                    create_revision=int(raw.get("create_revision", 0)),
                    mod_revision=int(raw.get("mod_revision", 0)),
                    version=int(raw.get("version", 0)), lease=int(raw.get("lease", 0)))


def _key_range(key: str, prefix: bool) -> dict:
    request = {"key": _b64(key)}
    if prefix:
        request["range_end"] = _b64(prefix_range_end(key))
    return request


def _revision(response: dict) -> int:
    return int(response.get("header", {}).get("revision", 0))


def _range_result(response: dict) -> RangeResult:
    return RangeResult(kvs=[_key_value(kv) for kv in response.get("kvs", [])],
                       count=int(response.get("count", 0)), more=bool(response.get("more")),
                       revision=_revision(response))


class _EtcdError(KVError):
    def __init__(self, status: int, body: dict):
        super().__init__(f"etcd answered {status}: {body.get('error') or body.get('message')}")
        self.code = body.get("code")
        self.text = str(body.get("error") or body.get("message") or "")


@dataclasses.dataclass(frozen=True)
class Alarm:
    """An alarm raised by one etcd member: ``NOSPACE`` (over its quota) or ``CORRUPT``."""
    member_id: int
    alarm: str


class _EtcdWatch(QueuedWatch):
    """A watch over one gateway stream, reopened from the next revision whenever it breaks: on
    the next member of the cluster if it broke because its member failed."""

    def __init__(self, kv: "EtcdKV", key: str, prefix: bool, start_revision: int, prev_kv: bool,
                 puts_only: bool):
        self._kv = kv
        self._request = _key_range(key, prefix)
        if prev_kv:
            self._request["prev_kv"] = True
        if puts_only:
            self._request["filters"] = ["NODELETE"]
        # "From now" is pinned to a revision at once, so that a write made after watch()
        # returns is seen even if the stream connects later.
        self._next_revision = start_revision or kv.current_revision() + 1
        super().__init__()
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        interval = _RETRY_INTERVAL_S
        while not self._cancelled:
            try:
                self._stream()
                interval = _RETRY_INTERVAL_S
            except CompactedError as error:
                self.push(error)
                return
            except TimeoutError:
                log.debug("watch stream silent for %.0f s; reopening from revision %d",
                          WATCH_IDLE_TIMEOUT_S, self._next_revision)
            except (OSError, ValueError, KVError) as error:
                if self._cancelled:
                    return
                if _is_unauthenticated(error):
                    self._kv.authenticate()  # the token expired: a new one, same member
                    continue
                self._kv.fail_over(self._url)
                log.info("watch stream on %s broke (%s); reopening on %s from revision %d",
                         self._url, error, self._kv.base_url, self._next_revision)
            if self._cancelled:
                return
            gevent.sleep(interval)
            interval = min(interval * 2, _RETRY_INTERVAL_MAX_S)

    def _stream(self) -> None:
        request = dict(self._request, start_revision=str(self._next_revision))
        self._url = self._kv.base_url
        deadline = time.monotonic() + WATCH_IDLE_TIMEOUT_S
        # A stream holds its connection for as long as it lives: it gets one of its own.
        connection = self._kv.members[self._url].connect(deadline)
        try:
            status = connection.request("/v3/watch", _json({"create_request": request}),
                                        self._kv.headers(), deadline)
            if status != 200:
                raise _EtcdError(status, _json_or_text(connection.read_body()))
            buffer = b""
            for chunk in connection.stream(WATCH_IDLE_TIMEOUT_S):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._handle(json.loads(line))
            raise ConnectionError("watch stream ended")
        finally:
            connection.close()  # a half-read stream cannot carry another request

    def _handle(self, message: dict) -> None:
        result = message.get("result", message)
        if "error" in message:
            raise _EtcdError(200, message["error"])
        if result.get("compact_revision") and result.get("canceled"):
            raise CompactedError(int(result["compact_revision"]))
        for raw in result.get("events", []):
            kv = _key_value(raw["kv"])
            prev = _key_value(raw["prev_kv"]) if raw.get("prev_kv") else None
            self.push(WatchEvent("delete" if raw.get("type") == "DELETE" else "put",
                                       kv, prev))
            self._next_revision = kv.mod_revision + 1

    def _stop(self) -> None:
        self._greenlet.kill(block=False)  # unwinds _stream, which closes the stream


def _is_unauthenticated(error: Exception) -> bool:
    """etcd refused a request for its missing or expired auth token."""
    return isinstance(error, _EtcdError) and (
        error.code == _GRPC_UNAUTHENTICATED or "invalid auth token" in error.text
        or "user name is empty" in error.text)


def _writes(request: dict) -> bool:
    """A transaction request with an operation that is not a read."""
    return any("request_range" not in operation
               for operation in (*request["success"], *request["failure"]))


def _txn_result(response: dict, revision: int) -> TxnResult:
    """A transaction's answer; ``revision``: the call's (a nested one's header is empty)."""
    responses = []
    for item in response.get("responses", []):
        if "response_range" in item:
            responses.append(_range_result(item["response_range"]))
        elif "response_put" in item:
            put = item["response_put"]
            previous = put.get("prev_kv")
            responses.append(PutResult(_revision(put) or revision,
                                       _key_value(previous) if previous else None))
        else:
            deleted = item.get("response_delete_range", {})
            responses.append(DeleteResult(int(deleted.get("deleted", 0)),
                                          _revision(deleted) or revision))
    return TxnResult(bool(response.get("succeeded")), revision, responses)


def _json(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _json_or_text(data: bytes) -> dict:
    try:
        decoded = json.loads(data)
        return decoded if isinstance(decoded, dict) else {"error": str(decoded)}
    except ValueError:
        return {"error": data.decode(errors="replace")[:500]}


class EtcdKV(KV):
    """A client of one etcd, or of the members of a cluster.

    ``endpoints`` (``host:port`` of each member, in order of preference) name a cluster;
    without them, ``host`` and ``port`` name the one etcd. Every request goes to one member
    until it fails to answer; then that request and the following ones go to the next.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 2379, *,
                 endpoints: Sequence[str] = (), ssl: bool = False, timeout_s: float = 5.0,
                 ca_file: str = "", cert_file: str = "", key_file: str = "",
                 user: str = "", password: str = ""):
        """``ssl``: HTTPS, checking etcd's certificate against ``ca_file`` (else the system's
        CAs) and presenting ``cert_file``/``key_file`` when etcd asks for a client
        certificate. ``user``/``password``: etcd's authentication, when it is enabled; a
        refused one is a KVError here, at once."""
        scheme = "https" if ssl else "http"
        tls = _tls_context(ca_file, cert_file, key_file) if ssl else None
        #: The connections to each member, by its URL. Each pool keeps up to a worker's
        #: concurrency (max-in-flight per topic) of idle ones, so that connections are reused
        #: rather than opened and discarded under load.
        self.members = {f"{scheme}://{endpoint}": ConnectionPool(endpoint, tls,
                                                                 CONNECT_TIMEOUT_S)
                        for endpoint in endpoints or [f"{host}:{port}"]}
        self.endpoint_urls = list(self.members)
        self._endpoint = 0
        self.timeout_s = timeout_s
        self._watches: list[_EtcdWatch] = []
        self._credentials = (user, password) if user else None
        self._token: str | None = None
        self._transactions = TxnBatcher(self._send_txn, self._send_txns,
                                        refused=(_EtcdError, ValueError, KVSpaceExceededError,
                                                 LeaseNotFoundError))
        if self._credentials:
            self.authenticate()

    def enable_authentication(self, root_user: str, password: str) -> None:
        """Create ``root_user`` with the root role and turn etcd's authentication on (etcd
        requires a user named root to have that role first)."""
        for path, body in [("/v3/auth/user/add", {"name": root_user, "password": password}),
                           ("/v3/auth/role/add", {"name": "root"}),
                           ("/v3/auth/user/grant", {"user": root_user, "role": "root"}),
                           ("/v3/auth/enable", {})]:
            self._call(path, body, writes=True)

    def headers(self) -> dict[str, str]:
        """The headers of a gateway request: its body type, and the auth token if any."""
        if self._token is None:
            return _PLAIN_HEADERS
        return {**_PLAIN_HEADERS, "Authorization": self._token}

    def authenticate(self) -> None:
        """Get a token for the user (etcd's tokens expire; a request refused for that gets a
        new one and goes again)."""
        if self._credentials is None:
            raise KVError("etcd asks for authentication: set MR_ETCD_USER and MR_ETCD_PASSWORD")
        user, password = self._credentials
        try:
            answer = self._call("/v3/auth/authenticate", {"name": user, "password": password},
                                writes=False, authenticated=False)
        except (_EtcdError, ValueError) as error:  # etcd's "invalid argument": a bad password
            raise KVError(f"etcd refused user {user!r} (MR_ETCD_USER, MR_ETCD_PASSWORD): "
                          f"{getattr(error, 'text', error)}") from None
        self._token = answer["token"]

    @property
    def base_url(self) -> str:
        """The member requests go to now."""
        return self.endpoint_urls[self._endpoint]

    def fail_over(self, failed_url: str) -> None:
        """The member at ``failed_url`` did not answer: move on to the next one, unless another
        request has moved on already (it may have found one that answers)."""
        if self.base_url == failed_url:
            self._endpoint = (self._endpoint + 1) % len(self.endpoint_urls)

    def _call(self, path: str, payload: dict, *, writes: bool,
              timeout_s: float | None = None, authenticated: bool = True) -> dict:
        """One gateway request within the deadline (``timeout_s``, default the client's).

        A request that never reached etcd whole (connection refused: restarting, or down; or
        cut off while being sent, so etcd cannot have run it) is retried on the next member, and
        after a round of them all, after a pause, until the deadline; a read that failed in any
        way is too. A write whose connection broke after it was sent may have been applied, so it
        is not retried blindly: the caller gets a KVError and decides (the next request goes to
        the next member).
        """
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        body = _json(payload)
        interval = _RETRY_INTERVAL_S
        failures = 0
        while True:
            base_url = self.base_url
            try:
                status, data = self.members[base_url].post(
                    path, body, self.headers() if authenticated else _PLAIN_HEADERS,
                    max(deadline, time.monotonic() + 0.05))
            except TlsError as error:
                raise KVError(f"etcd at {base_url}: the TLS handshake failed ({error}); "
                              f"{_TLS_FILES_HINT}") from None
            except OSError as error:
                self.fail_over(base_url)
                failures += 1
                sure_not_sent = isinstance(error, RequestNotSent)
                pause = interval if failures % len(self.endpoint_urls) == 0 else 0.0
                if (writes and not sure_not_sent) or time.monotonic() + pause >= deadline:
                    raise KVError(f"etcd at {base_url} failed on {path}: {error}"
                                  + ("; the write may or may not have been applied"
                                     if writes and not sure_not_sent else "")) from None
                if pause:
                    gevent.sleep(pause)
                    interval = min(interval * 2, _RETRY_INTERVAL_MAX_S)
                continue
            decoded = _json_or_text(data)
            if status == 200:
                return decoded
            error = self._error(path, status, decoded)
            if authenticated and _is_unauthenticated(error) and not failures:
                self.authenticate()  # the token expired (or none yet): once more with one
                failures += 1
                continue
            raise error

    def _error(self, path: str, status: int, body: dict) -> Exception:
        error = _EtcdError(status, body)
        if error.code == _GRPC_PERMISSION_DENIED and self._credentials is None:
            return KVError(f"etcd denied {path} ({error.text}): its authentication is on; set "
                           f"MR_ETCD_USER and MR_ETCD_PASSWORD")
        if error.code == _GRPC_NOT_FOUND and "lease" in error.text:
            return LeaseNotFoundError(error.text)
        if error.code == _GRPC_INVALID_ARGUMENT and "too many operations" in error.text:
            return TransactionTooLargeError(
                f"etcd refused a transaction as too large ({error.text}); start etcd with a "
                f"larger --max-txn-ops (mr's scripts use {MAX_TXN_OPS})")
        if error.code == _GRPC_RESOURCE_EXHAUSTED and "space exceeded" in error.text:
            return KVSpaceExceededError(
                f"etcd is out of space ({error.text}): its database reached "
                f"--quota-backend-bytes and it raised its NOSPACE alarm, so it refuses every "
                f"write until an operator frees space; reads still work. To recover without "
                f"restarting anything, run `mr etcd maintain`: it compacts etcd's history, "
                f"defragments it and disarms the alarm (docs/deploy.rst)")
        if error.code == _GRPC_INVALID_ARGUMENT:
            return ValueError(f"{path}: {error.text}")
        return error

    def range(self, key, *, prefix=False, limit=0, count_only=False, keys_only=False,
              start=None):
        request = _key_range(key, prefix)
        if prefix and start is not None and start > key:
            request["key"] = _b64(start)
        if limit:
            request["limit"] = limit
        if count_only:
            request["count_only"] = True
        if keys_only:
            request["keys_only"] = True
        return _range_result(self._call("/v3/kv/range", request, writes=False))

    def put(self, key, value, *, lease=0, prev_kv=False):
        if not isinstance(value, bytes):
            raise TypeError(f"values are bytes, got {type(value).__name__}")
        response = self._call("/v3/kv/put", self._put_request(key, value, lease, prev_kv),
                              writes=True)
        previous = response.get("prev_kv")
        return PutResult(_revision(response), _key_value(previous) if previous else None)

    @staticmethod
    def _put_request(key: str, value: bytes, lease: int, prev_kv: bool = False) -> dict:
        request: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            request["lease"] = str(lease)
        if prev_kv:
            request["prev_kv"] = True
        return request

    def delete(self, key, *, prefix=False, prev_kv=False):
        request = _key_range(key, prefix)
        if prev_kv:
            request["prev_kv"] = True
        response = self._call("/v3/kv/deleterange", request, writes=True)
        return DeleteResult(int(response.get("deleted", 0)), _revision(response),
                            [_key_value(kv) for kv in response.get("prev_kvs", [])])

    def txn(self, compare: Sequence[Compare], success: Sequence[Operation] = (),
            failure: Sequence[Operation] = ()) -> TxnResult:
        """Made while another transaction of this client is in flight, it may go to etcd with
        others, when none of them writes a key another one touches (mr.kv.batching)."""
        request = {"compare": [self._compare(c) for c in compare],
                   "success": [self._operation(o) for o in success],
                   "failure": [self._operation(o) for o in failure]}
        size = sum(len(value) for op in (*success, *failure)
                   if isinstance(op, Put) for value in (op.key, op.value))
        return self._transactions.run(request, TouchedKeys.of(compare, (*success, *failure)),
                                      size)

    def _send_txn(self, request: dict) -> TxnResult:
        response = self._call("/v3/kv/txn", request, writes=_writes(request))
        return _txn_result(response, _revision(response))

    def _send_txns(self, requests: list[dict]) -> list[TxnResult]:
        """Several transactions in one call, each nested in it."""
        response = self._call("/v3/kv/txn",
                              {"success": [{"request_txn": request} for request in requests]},
                              writes=any(_writes(request) for request in requests))
        revision = _revision(response)
        return [_txn_result(item.get("response_txn", {}), revision)
                for item in response.get("responses", [])]

    @staticmethod
    def _compare(condition: Compare) -> dict:
        operand = (_b64(condition.operand) if condition.target == "value"
                   else str(condition.operand))
        return {"key": _b64(condition.key), "target": _TARGETS[condition.target],
                "result": _RESULTS[condition.operator], condition.target: operand}

    def _operation(self, operation: Operation) -> dict:
        if isinstance(operation, Get):
            request = _key_range(operation.key, operation.prefix)
            if operation.count_only:
                request["count_only"] = True
            return {"request_range": request}
        if isinstance(operation, Put):
            return {"request_put": self._put_request(operation.key, operation.value,
                                                     operation.lease, operation.prev_kv)}
        if isinstance(operation, Delete):
            return {"request_delete_range": _key_range(operation.key, operation.prefix)}
        raise TypeError(f"not a transaction operation: {operation!r}")

    def watch(self, key, *, prefix=False, start_revision=0, prev_kv=False, puts_only=False):
        watch = _EtcdWatch(self, key, prefix, start_revision, prev_kv, puts_only)
        self._watches = [w for w in self._watches if not w.cancelled] + [watch]
        return watch

    def compact(self, revision: int, *, physical: bool = False) -> None:
        """``physical``: return only once the compacted revisions are removed from the
        database, so that a defragmentation after it gets their space back."""
        request: dict[str, Any] = {"revision": str(revision)}
        if physical:
            request["physical"] = True
        try:
            self._call("/v3/kv/compaction", request, writes=True,
                       timeout_s=MAINTENANCE_TIMEOUT_S if physical else None)
        except _EtcdError as error:
            if "compacted" not in error.text:  # compacting twice to one revision is no error
                raise ValueError(f"cannot compact to {revision}: {error.text}") from None

    def grant_lease(self, ttl: int) -> int:
        if ttl <= 0:
            raise ValueError("a lease needs a positive ttl")
        return int(self._call("/v3/lease/grant", {"TTL": ttl}, writes=True)["ID"])

    def refresh_lease(self, lease_id: int) -> int:
        response = self._call("/v3/lease/keepalive", {"ID": str(lease_id)}, writes=False)
        ttl = int(response.get("result", response).get("TTL", 0))
        if ttl <= 0:
            raise LeaseNotFoundError(f"lease {lease_id:x} not found")
        return ttl

    def revoke_lease(self, lease_id: int) -> None:
        try:
            self._call("/v3/lease/revoke", {"ID": str(lease_id)}, writes=True)
        except LeaseNotFoundError:
            pass

    def lease_time_to_live(self, lease_id: int) -> int:
        response = self._call("/v3/lease/timetolive", {"ID": str(lease_id)}, writes=False)
        return int(response.get("TTL", -1))

    # Maintenance: how an operator gets an etcd that ran out of space to accept writes again,
    # without restarting it or anything that talks to it.

    def database_size(self) -> int:
        """Bytes of the database file of the member this client talks to: what etcd compares
        with its --quota-backend-bytes. Only a defragmentation makes it smaller."""
        return int(self._call("/v3/maintenance/status", {}, writes=False).get("dbSize", 0))

    def defragment(self) -> None:
        """Rewrite the database of the member this client talks to without the space that
        compaction freed. The member answers nothing else while it runs; in a cluster, each
        member is defragmented on its own, one at a time."""
        self._call("/v3/maintenance/defragment", {}, writes=False,
                   timeout_s=MAINTENANCE_TIMEOUT_S)

    def alarms(self) -> list[Alarm]:
        """The alarms raised in the cluster."""
        response = self._call("/v3/maintenance/alarm", {"action": "GET"}, writes=False)
        return [Alarm(int(raw.get("memberID", 0)), raw.get("alarm", "NONE"))
                for raw in response.get("alarms", [])]

    def disarm_alarms(self, alarm: str = "NOSPACE") -> list[Alarm]:
        """Deactivate every raised alarm of that kind; returns those that were raised.

        etcd deactivates an alarm by the id of the member that raised it (member 0 matches
        none), so each raised one is named. A NOSPACE alarm disarmed while the database is
        still over its quota is raised again by the next write.
        """
        disarmed = [raised for raised in self.alarms() if raised.alarm == alarm]
        for raised in disarmed:  # deactivating twice is harmless: it may be retried
            self._call("/v3/maintenance/alarm",
                       {"action": "DEACTIVATE", "memberID": str(raised.member_id),
                        "alarm": alarm}, writes=False)
        return disarmed

    def close(self) -> None:
        for watch in self._watches:
            watch.cancel()
        self._watches = []
        for pool in self.members.values():
            pool.close()
