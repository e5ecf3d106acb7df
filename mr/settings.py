"""The one settings object of mr.

Every setting has a field here, an ``MR_*`` environment variable (JobX's name where JobX had the
setting) and a key in the optional TOML file named by ``MR_CONFIG_FILE``. Precedence, lowest to
highest: the default, the file, the environment. ``docs/settings.rst`` is generated from the
table below by ``mr settings --doc``, so the documentation cannot drift from the code.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
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


def _parse_positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


def _parse_positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError(f"expected a positive number, got {text!r}")
    return value


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
    etcd_is_ssl: bool = _setting(False, "MR_ETCD_IS_SSL", _parse_bool, "Talk to etcd over HTTPS.")
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
    nsqlookupd_http_addresses: tuple = _setting(
        (), "MR_NSQLOOKUPD_HTTP_ADDRESSES", _parse_list,
        "Comma-separated ``host:port`` HTTP addresses of nsqlookupd servers; when set, consumers "
        "discover nsqd servers through them in addition to ``MR_NSQD_HOSTS``.")
    channel: str = _setting(
        "general_worker", "MR_CHANNEL", str,
        "NSQ channel every worker consumes on, so that each message goes to one worker.")
    nsq_max_in_flight: int = _setting(
        32, "MR_NSQ_MAX_IN_FLIGHT", _parse_positive_int,
        "Messages a worker holds at once per topic. A message is held until its work is "
        "committed, so this bounds a worker's concurrent invocations.")
    message_timeout_s: float = _setting(
        60.0, "MR_MESSAGE_TIMEOUT_S", _parse_positive_float,
        "Time a consumer may hold a message without touching it before it is delivered again. "
        "The embedded queue uses it directly; with nsq it is nsqd's ``--msg-timeout``, which "
        "``mr servers start`` sets from it.")
    workflow_names: tuple = _setting(
        ("test_workflow",), "MR_WORKFLOW_NAMES", _parse_list,
        "Comma-separated workflows this process serves (HTTP and queue).")
    system_capabilities: tuple = _setting(
        ("general",), "MR_SYSTEM_CAPABILITIES", _parse_list,
        "Comma-separated capabilities this worker offers; it consumes only the topics of these.")
    consume: bool = _setting(
        True, "MR_CONSUME", _parse_bool, "Start the queue consumer in this process.")

    @classmethod
    def specs(cls) -> list[tuple[dataclasses.Field, _Spec]]:
        return [(field, field.metadata["spec"]) for field in dataclasses.fields(cls)]

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Settings from the defaults, the file named by ``MR_CONFIG_FILE`` and ``MR_*`` variables."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        config_file = environ.get("MR_CONFIG_FILE")
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
