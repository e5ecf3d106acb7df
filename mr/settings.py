"""The one settings object of mr.

Every setting has a field here, an ``MR_*`` environment variable (JobX's name where JobX had the
setting) and a key in the optional TOML settings file (``MR_CONFIG_FILE``, else
``~/.config/mr/config.toml`` when it exists). Precedence, lowest to highest: the default, the
file, the environment. ``docs/settings.rst`` is generated from the
table below by ``mr settings --doc``, so the documentation cannot drift from the code.
"""
from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Callable, Mapping


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting."""


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected a boolean (1/0, true/false, yes/no, on/off), got {text!r}")


def _parse_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _number(cast: Callable[[str], Any], allow_zero: bool) -> Callable[[str], Any]:
    """A parser of positive numbers (or >= 0, with ``allow_zero``) of type ``cast``."""
    noun = "an integer" if cast is int else "a number"

    def parse(text: str) -> Any:
        value = cast(text)
        if value < 0 or (value == 0 and not allow_zero):
            raise ValueError(f"expected {noun} {'>= 0' if allow_zero else '> 0'}, got {text!r}")
        return value
    return parse


_parse_positive_int = _number(int, allow_zero=False)
_parse_non_negative_int = _number(int, allow_zero=True)
_parse_positive_float = _number(float, allow_zero=False)
_parse_non_negative_float = _number(float, allow_zero=True)


def _parse_optional_port(text: str) -> int:
    """A TCP port (0: any free one), or -1 (also written empty) for none."""
    port = int(text) if text.strip() else -1
    if not -1 <= port <= 65535:
        raise ValueError(f"expected a port from 0 to 65535, or -1 for none, got {text!r}")
    return port


def _parse_non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("expected a value, got nothing")
    return text


def _parse_dotted_path(text: str) -> str:
    """A ``package.module.Class`` path, or the empty string (none)."""
    if text and not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", text):
        raise ValueError(f"expected a dotted path such as package.module.Class, got {text!r}")
    return text


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {text!r}")
        return text
    return parse


@dataclasses.dataclass(frozen=True)
class _Spec:
    env: str
    parse: Callable[[str], Any]
    doc: str


def _setting(default: Any, env: str, parse: Callable[[str], Any], doc: str) -> Any:
    return dataclasses.field(default=default, metadata={"spec": _Spec(env, parse, doc)})


@dataclasses.dataclass(frozen=True)
class Settings:
    kv_backend: str = _setting(
        "memory", "MR_KV_BACKEND", _choice("memory", "etcd"),
        "Where coordination state lives: ``memory`` (embedded, one process) or ``etcd``.")
    kv_prefix: str = _setting(
        "/mr", "MR_KV_PREFIX", str,
        "Key prefix of everything mr stores, so that several installations can share one etcd.")
    etcd_host: str = _setting("127.0.0.1", "MR_ETCD_HOST", str, "etcd client host.")
    etcd_port: int = _setting(2379, "MR_ETCD_PORT", _parse_positive_int, "etcd client port.")
    etcd_endpoints: tuple = _setting(
        (), "MR_ETCD_ENDPOINTS", _parse_list,
        "Comma-separated ``host:port`` client addresses of the members of an etcd cluster, in "
        "order of preference; when set, it replaces ``MR_ETCD_HOST`` and ``MR_ETCD_PORT``. A "
        "client talks to one member and moves on to the next when that one does not answer.")
    etcd_is_ssl: bool = _setting(False, "MR_ETCD_IS_SSL", _parse_bool, "Talk to etcd over HTTPS.")
    etcd_ca_file: str = _setting(
        "", "MR_ETCD_CA_FILE", str,
        "With MR_ETCD_IS_SSL: the CA certificate (PEM) etcd's certificate must be signed by. "
        "Empty: the system's CAs.")
    etcd_cert_file: str = _setting(
        "", "MR_ETCD_CERT_FILE", str,
        "With MR_ETCD_IS_SSL: the client certificate (PEM) to present to an etcd started with "
        "``--client-cert-auth``.")
    etcd_key_file: str = _setting(
        "", "MR_ETCD_KEY_FILE", str, "The private key (PEM) of MR_ETCD_CERT_FILE.")
    etcd_user: str = _setting(
        "", "MR_ETCD_USER", str,
        "The etcd user mr authenticates as, when etcd's authentication is enabled.")
    etcd_password: str = _setting(
        "", "MR_ETCD_PASSWORD", str, "The password of MR_ETCD_USER.")
    etcd_timeout_s: float = _setting(
        5.0, "MR_ETCD_TIMEOUT_S", _parse_positive_float,
        "Deadline of one etcd request; an unreachable etcd is retried until this passes.")
    queue_backend: str = _setting(
        "memory", "MR_QUEUE_BACKEND", _choice("memory", "nsq"),
        "How invocations are delivered: ``memory`` (embedded, one process) or ``nsq``.")
    nsqd_hosts: tuple = _setting(
        ("127.0.0.1:4150",), "MR_NSQD_HOSTS", _parse_list,
        "Comma-separated ``host:port`` TCP addresses of the nsqd servers to publish to and "
        "consume from.")
    nsqd_http_addresses: tuple = _setting(
        (), "MR_NSQD_HTTP_ADDRESSES", _parse_list,
        "Comma-separated ``host:port`` addresses of the same nsqd servers' HTTP API (nsqd's "
        "``--http-address``), whose ``/stats`` a worker reads, when scraped, for the "
        "``mr_queue_depth`` metric of its topics. Empty: that metric is not reported.")
    nsqd_tls: bool = _setting(
        False, "MR_NSQD_TLS", _parse_bool,
        "Talk to nsqd over TLS (nsqd started with ``--tls-cert``, ``--tls-key`` and "
        "``--tls-required``).")
    nsqd_ca_file: str = _setting(
        "", "MR_NSQD_CA_FILE", str,
        "With MR_NSQD_TLS: the CA certificate (PEM) nsqd's certificate must be signed by; "
        "empty: nsqd's certificate is not checked.")
    nsqd_cert_file: str = _setting(
        "", "MR_NSQD_CERT_FILE", str,
        "With MR_NSQD_TLS: the client certificate (PEM) to present to an nsqd that requires "
        "one (``--tls-client-auth-policy``).")
    nsqd_key_file: str = _setting(
        "", "MR_NSQD_KEY_FILE", str, "The private key (PEM) of MR_NSQD_CERT_FILE.")
    nsqlookupd_http_addresses: tuple = _setting(
        (), "MR_NSQLOOKUPD_HTTP_ADDRESSES", _parse_list,
        "Comma-separated ``host:port`` HTTP addresses of nsqlookupd servers; when set, consumers "
        "discover nsqd servers through them in addition to ``MR_NSQD_HOSTS``.")
    channel: str = _setting(
        "general_worker", "MR_CHANNEL", str,
        "NSQ channel every worker consumes on, so that each message goes to one worker.")
    nsq_max_in_flight: int = _setting(
        0, "MR_NSQ_MAX_IN_FLIGHT", _parse_non_negative_int,
        "Messages a worker holds at once per topic; 0 means its concurrency "
        "(``MR_WORKER_CONCURRENCY``). A message is held until its work is committed.")
    message_timeout_s: float = _setting(
        60.0, "MR_MESSAGE_TIMEOUT_S", _parse_positive_float,
        "Time a consumer may hold a message without touching it before it is delivered again. "
        "The embedded queue uses it directly; with nsq it is nsqd's ``--msg-timeout``, which "
        "``mr servers start`` sets from it.")
    data_store_url: str = _setting(
        "memory", "MR_DATA_STORE_URL", _parse_non_empty,
        "Where the bulk data of requests lives (arguments, mapper output, combined and reduced "
        "datasets; never etcd): ``memory`` (embedded, one process), a directory path, or any "
        "fsspec URL (``file:///srv/mr``, ``s3://bucket/prefix``). In distributed mode every worker "
        "and the front end must see the same store: a directory shared by all nodes (e.g. NFS) or "
        "an object store URL.")
    shuffle_url: str = _setting(
        "", "MR_SHUFFLE_URL", str,
        "Where input splits' map output is spilled and partitions' output is written, read and "
        "written by the executor children themselves: an fsspec URL every worker sees. Empty: "
        "the data store, or, when the data store is ``memory``, a temporary directory of the "
        "process (removed when it stops).")
    split_bytes: int = _setting(
        64 << 20, "MR_SPLIT_BYTES", _parse_positive_int,
        "The most input by reference one map invocation reads: larger files are cut into "
        "splits, smaller ones share an invocation (compressed files and ``mr`` datasets are "
        "one split whatever their size). See ``docs/data.rst`` for the measurement behind the "
        "default.")
    split_parallelism: int = _setting(
        0, "MR_SPLIT_PARALLELISM", _parse_non_negative_int,
        "How many map invocations an input is dealt out to at least (or a multiple of it), so "
        "that every executor child maps a part of about equal size; 0 means the executor "
        "children of the worker that plans the splits. Set it to the cluster's children.")
    sort_buffer_mb: int = _setting(
        16, "MR_SORT_BUFFER_MB", _parse_positive_int,
        "How much map output (encoded) an executor child holds before it sorts it and spills "
        "it as runs to the shuffle store. The Python objects of small pairs take up to about 15 "
        "times their encoded size: keep 15 times this well under MR_EXECUTOR_MEMORY_MB.")
    inline_result_max_bytes: int = _setting(
        64 << 20, "MR_INLINE_RESULT_MAX_BYTES", _parse_positive_int,
        "The largest result (encoded) kept for the client (the inline writer) or posted by the "
        "HTTP writer; a larger one fails its request with ``ResultTooLarge``: use the file "
        "writer.")
    workflow_names: tuple = _setting(
        (), "MR_WORKFLOW_NAMES", _parse_list,
        "Comma-separated workflows this process may serve (HTTP and queue). Empty: every "
        "workflow in the KV, including those created while it runs; a name that does not exist "
        "is served once it is created.")
    system_capabilities: tuple = _setting(
        ("general",), "MR_SYSTEM_CAPABILITIES", _parse_list,
        "Comma-separated capabilities this worker offers; it consumes only the topics of these.")
    consume: bool = _setting(
        True, "MR_CONSUME", _parse_bool, "Start the queue consumer in this process.")
    executor_processes: int = _setting(
        0, "MR_EXECUTOR_PROCESSES", _parse_non_negative_int,
        "Child processes that run handler code in a worker; 0 means one per core.")
    executor_memory_mb: int = _setting(
        0, "MR_EXECUTOR_MEMORY_MB", _parse_non_negative_int,
        "Memory (MiB) each executor child, and each process a handler starts, may allocate; a "
        "handler that needs more fails with ``HandlerMemoryExceeded``. 0 means an equal share "
        "of the machine's memory (or its cgroup limit) for every child and one more for the "
        "worker: memory / (children + 1).")
    executor_max_output_mb: int = _setting(
        64, "MR_EXECUTOR_MAX_OUTPUT_MB", _parse_positive_int,
        "Output (MiB) one invocation may write to stdout and stderr together before it is "
        "stopped with ``HandlerOutputExceeded``; the first MiB of each is kept either way.")
    invocation_log_bytes: int = _setting(
        64 * 1024, "MR_INVOCATION_LOG_BYTES", _parse_non_negative_int,
        "Of what an invocation's handlers print (stdout and stderr), how many bytes are kept "
        "with it in the data store, failed or not, for ``mr invocation logs`` "
        "(``docs/tracing.rst``); longer output is cut, and the cut is said in the text. 0: "
        "none is kept (a failure's error still holds its output).")
    workflow_scope_factory_fq_class: str = _setting(
        "", "MR_WORKFLOW_SCOPE_FACTORY_FQ_CLASS", _parse_dotted_path,
        "Dotted path (``package.module.Class``) of the scope factory: made once per workflow in "
        "each executor child, it gives Python handlers extra globals (clients, secrets); see "
        "``handlers.rst``. Empty: none.")
    fs_root_url: str = _setting(
        "~/.local/share/mr/fs", "MR_FS_ROOT_URL", str,
        "Root of the shared filesystem handlers use as ``FS``; each workflow's files are under "
        "``<root>/<workflow>``, created on first use. A directory path or any fsspec URL; in "
        "distributed mode every worker must see the same one (a shared directory or an object "
        "store). Empty: no shared filesystem (``FS`` is None).")
    invocation_timeout_s: float = _setting(
        300.0, "MR_INVOCATION_TIMEOUT_S", _parse_positive_float,
        "A handler running longer than this is killed and its request fails.")
    invocation_max_attempts: int = _setting(
        5, "MR_INVOCATION_MAX_ATTEMPTS", _parse_positive_int,
        "Attempts of one invocation that failed for a reason outside its handler (a backend "
        "unreachable, lost data, any unexpected error) before its request fails with that "
        "error. A handler's own error fails it at once.")
    request_deadline_s: float = _setting(
        3600.0, "MR_REQUEST_DEADLINE_S", _parse_positive_float,
        "How long a request may run before it fails with ``DeadlineExceeded``, unless its job "
        "(``deadline_s``) or its body (``\"deadline_s\"``) says otherwise.")
    sweep_interval_s: float = _setting(
        5.0, "MR_SWEEP_INTERVAL_S", _parse_positive_float,
        "How often the sweeper (one worker of the cluster at a time) looks for requests past "
        "their deadline and requests whose work was lost.")
    request_stall_s: float = _setting(
        60.0, "MR_REQUEST_STALL_S", _parse_positive_float,
        "A running request none of whose invocations committed anything for this long, and "
        "with none running, has its unfinished invocations published again by the sweeper "
        "(then again after twice as long, and so on).")
    worker_concurrency: int = _setting(
        0, "MR_WORKER_CONCURRENCY", _parse_non_negative_int,
        "Invocations one worker runs at once, over all its topics; 0 means four per executor "
        "child. A message that finds no free slot within half the message timeout goes back to "
        "the queue for another worker, so held messages never wait without bound.")
    worker_metrics_port: int = _setting(
        -1, "MR_WORKER_METRICS_PORT", _parse_optional_port,
        "Port on which a worker serves its Prometheus metrics (``/metrics``, "
        "``docs/operations.rst``), on MR_HTTP_HOST. 0: a free port, logged at start; -1 or "
        "empty: none. ``mr cluster start`` gives each worker one and prints it.")
    request_wait_timeout_s: float = _setting(
        60.0, "MR_REQUEST_WAIT_TIMEOUT_S", _parse_positive_float,
        "How long a blocking request waits for its result before the answer is 504; the "
        "request keeps running and can be fetched by its id.")
    message_secret: str = _setting(
        "", "MR_MESSAGE_SECRET", str,
        "The cluster's shared secret: every invocation message is signed with it (HMAC-SHA256) "
        "and workers drop, and log, any message whose signature does not match, so nobody "
        "who can reach nsqd can make a worker run anything. The same on every front end and "
        "worker; ``mr cluster start`` makes one. Empty: messages are neither signed nor "
        "checked (embedded mode, whose queue is in-process).")
    ui_secret_key: str = _setting(
        "", "MR_UI_SECRET_KEY", str,
        "The key that signs the web UI's session cookie, which holds the token a browser "
        "logged in with (``docs/ui.rst``): the same on every front end. Empty: derived from "
        "MR_MESSAGE_SECRET; both empty: a random key per process, so that logins do not "
        "survive a restart or span gunicorn's workers (logged at start).")
    max_running_requests: int = _setting(
        1000, "MR_MAX_RUNNING_REQUESTS", _parse_non_negative_int,
        "Requests one workflow may have running at once; one more is answered 429 with "
        "``Retry-After``. Each front end counts what its watch of the requests shows, so "
        "front ends accepting at the same instant may go a few over. 0: no limit.")
    max_request_bytes: int = _setting(
        128 * 1024 * 1024, "MR_MAX_REQUEST_BYTES", _parse_positive_int,
        "Largest request body accepted; a larger one is answered 413.")
    max_upload_bytes: int = _setting(
        16 << 30, "MR_MAX_UPLOAD_BYTES", _parse_positive_int,
        "Largest input a request may upload as its body (``text/plain`` or "
        "``application/x-ndjson``): streamed to the shuffle store, never held, so it may be "
        "far larger than ``MR_MAX_REQUEST_BYTES``; a larger one is answered 413.")
    auth: str = _setting(
        "auto", "MR_AUTH", _choice("auto", "on", "off"),
        "Whether the front end asks for a bearer token (``mr token create``) on every endpoint "
        "but ``/health``. ``auto``: yes, but for an embedded mr (``MR_KV_BACKEND=memory``) "
        "listening on a loopback address. ``off`` lets anyone who reaches the front end run, "
        "read and cancel anything; it is logged at start.")
    remote_addr_header: str = _setting(
        "X-Forwarded-For", "MR_REMOTE_ADDR_HEADER", str,
        "Header naming the client's address behind a proxy; the peer address when absent.")
    do_cleanup_requests: bool = _setting(
        True, "MR_DO_CLEANUP_REQUESTS", _parse_bool,
        "Remove finished requests (records, run state, data) after their retention; 0 keeps "
        "them for tracing.")
    result_retention_s: float = _setting(
        3600.0, "MR_RESULT_RETENTION_S", _parse_non_negative_float,
        "How long a finished request's result is kept for fetching. A blocking request whose "
        "result was delivered in its response is removed at once.")
    failure_retention_s: float = _setting(
        6 * 3600.0, "MR_FAILURE_RETENTION_S", _parse_non_negative_float,
        "How long a failed request is kept, with its error and run state, for inspection.")
    log_level: str = _setting(
        "info", "MR_LOG_LEVEL", _choice("debug", "info", "warning", "error"),
        "Least severe log messages that mr's long-running processes write to stderr.")
    http_host: str = _setting(
        "127.0.0.1", "MR_HTTP_HOST", str,
        "Address the HTTP front end listens on (``mr run``, and gunicorn's dev config).")
    http_port: int = _setting(
        8080, "MR_HTTP_PORT", _parse_non_negative_int,
        "Port the HTTP front end listens on (``mr run``, and gunicorn's dev config; 0: any "
        "free port, for ``mr run``).")
    metrics_dir: str = _setting(
        "", "MR_METRICS_DIR", str,
        "Directory where the gunicorn workers of a front end keep their metrics, which any of "
        "them serves summed at ``/metrics`` (prometheus_client's multiprocess mode); its "
        "``*.db`` files are removed when gunicorn starts. Empty: a new temporary directory at "
        "each start, removed when gunicorn stops.")
    url: str = _setting(
        "", "MR_URL", str,
        "The front end that ``mr submit``, ``mr request wait|cancel`` and ``mr pipeline run`` "
        "talk to (``mr cluster start`` writes its own). Empty: ``http://127.0.0.1:MR_HTTP_PORT``, "
        "where ``mr run`` listens, and ``mr pipeline run`` starts a private ``mr run``.")
    token: str = _setting(
        "", "MR_TOKEN", str,
        "Bearer token those commands send to the front end, for deployments that check one.")
    smtp_host: str = _setting(
        "", "MR_SMTP_HOST", str,
        "The SMTP server that sends email notifications (``docs/notifications.rst``). Empty: "
        "none, and a request or job asking for email is refused.")
    smtp_port: int = _setting(25, "MR_SMTP_PORT", _parse_positive_int, "The SMTP server's port.")
    smtp_from: str = _setting(
        "mr@localhost", "MR_SMTP_FROM", _parse_non_empty,
        "The sender address of email notifications.")
    smtp_user: str = _setting(
        "", "MR_SMTP_USER", str, "The user to log in to the SMTP server as; empty: no login.")
    smtp_password: str = _setting("", "MR_SMTP_PASSWORD", str, "The password of MR_SMTP_USER.")
    smtp_starttls: bool = _setting(
        False, "MR_SMTP_STARTTLS", _parse_bool,
        "Switch the SMTP connection to TLS (STARTTLS, the server's certificate checked against "
        "the system's CAs) before logging in and sending.")

    @classmethod
    def specs(cls) -> list[tuple[dataclasses.Field, _Spec]]:
        return [(field, field.metadata["spec"]) for field in dataclasses.fields(cls)]

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Settings from the defaults, the settings file (``config_file_path``) and ``MR_*``
        variables."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        config_file = config_file_path(environ)
        if config_file:
            values.update(cls._read_file(config_file))
        for field, spec in cls.specs():
            if spec.env in environ:
                values[field.name] = _parse(spec, environ[spec.env], spec.env)
        return cls(**values)

    @classmethod
    def _read_file(cls, path: str) -> dict[str, Any]:
        try:
            with open(path, "rb") as handle:
                document = tomllib.load(handle)
        except OSError as error:
            raise SettingsError(f"MR_CONFIG_FILE: cannot read {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"MR_CONFIG_FILE: {path} is not valid TOML: {error}") from None
        specs = {field.name: spec for field, spec in cls.specs()}
        unknown = sorted(set(document) - set(specs))
        if unknown:
            raise SettingsError(f"{path}: unknown settings {', '.join(unknown)}; "
                                f"known: {', '.join(sorted(specs))}")
        values = {}
        for name, raw in document.items():
            text = ",".join(map(str, raw)) if isinstance(raw, list) else str(raw)
            values[name] = _parse(specs[name], text, f"{path}: {name}")
        return values

    def with_overrides(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


def default_config_file(environ: Mapping[str, str]) -> Path | None:
    """``$XDG_CONFIG_HOME/mr/config.toml``, else ``$HOME/.config/mr/config.toml``; None when
    ``environ`` names neither directory (a mapping built by hand reads no file by surprise)."""
    base = environ.get("XDG_CONFIG_HOME") or (
        environ.get("HOME") and os.path.join(environ["HOME"], ".config"))
    return Path(base, "mr", "config.toml") if base else None


def config_file_path(environ: Mapping[str, str]) -> str | None:
    """The settings file to read: ``MR_CONFIG_FILE`` when set (set empty: none), else the
    default file when it exists, which ``mr cluster start`` writes so that every ``mr`` command
    finds the cluster with no exports."""
    if "MR_CONFIG_FILE" in environ:
        return environ["MR_CONFIG_FILE"] or None
    default = default_config_file(environ)
    return str(default) if default is not None and default.is_file() else None


def _parse(spec: _Spec, text: str, origin: str) -> Any:
    try:
        return spec.parse(text)
    except ValueError as error:
        raise SettingsError(f"{origin}: {error}") from None


def settings_table_rst() -> str:
    """The reStructuredText table of every setting, for ``docs/settings.rst``."""
    rows = [("Variable", "File key", "Default", "Meaning")]
    for field, spec in Settings.specs():
        default = field.default
        if isinstance(default, tuple):
            default = ",".join(default)
        elif isinstance(default, bool):
            default = "1" if default else "0"
        rows.append((f"``{spec.env}``", f"``{field.name}``",
                     f"``{default}``" if default != "" else "(empty)", spec.doc))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    rule = " ".join("=" * width for width in widths)
    lines = [rule, _row(rows[0], widths), rule]
    lines += [_row(row, widths) for row in rows[1:]]
    lines.append(rule)
    return "\n".join(lines) + "\n"


def _row(row: tuple[str, ...], widths: list[int]) -> str:
    return " ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
