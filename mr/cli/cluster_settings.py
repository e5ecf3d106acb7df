"""The settings file ``mr cluster start`` writes, so that every ``mr`` command finds the cluster
with nothing exported: the KV, the queue, the data store and the front end's URL, in the file
``Settings.load`` reads (``MR_CONFIG_FILE``, else ``~/.config/mr/config.toml``).

The file's first line names the cluster's data directory. ``mr cluster stop`` removes the file
only when it names the cluster being stopped, and ``start`` overwrites only a file that a
cluster wrote, never settings a user wrote by hand.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

from mr.cli.errors import UserError
from mr.settings import Settings, default_config_file

MARKER = "# Written by mr cluster start for the cluster running from "
#: The settings of a cluster's connections, by variable; not its processes' own (MR_HTTP_PORT
#: would send ``mr run`` to the cluster's port, MR_WORKFLOW_NAMES narrow what it serves).
CONNECTIONS = ("MR_KV_BACKEND", "MR_KV_PREFIX", "MR_ETCD_HOST", "MR_ETCD_PORT",
               "MR_QUEUE_BACKEND", "MR_NSQD_HOSTS", "MR_DATA_STORE_URL", "MR_URL",
               "MR_TOKEN",  # the admin token made at start, when authentication is on
               # those of a cluster started with --secure
               "MR_ETCD_IS_SSL", "MR_ETCD_CA_FILE", "MR_ETCD_CERT_FILE", "MR_ETCD_KEY_FILE",
               "MR_ETCD_USER", "MR_ETCD_PASSWORD", "MR_NSQD_TLS", "MR_NSQD_CA_FILE",
               "MR_NSQD_CERT_FILE", "MR_NSQD_KEY_FILE")


def target(environ: Mapping[str, str] = os.environ) -> Path | None:
    """Where the file goes: ``MR_CONFIG_FILE`` (set empty: nowhere), else the default file."""
    if "MR_CONFIG_FILE" in environ:
        return Path(environ["MR_CONFIG_FILE"]) if environ["MR_CONFIG_FILE"] else None
    return default_config_file(environ)


def writer(path: Path) -> Path | None:
    """The data directory of the cluster that wrote ``path``; None when no cluster did."""
    try:
        with path.open() as handle:
            first = handle.readline().rstrip("\n")
    except FileNotFoundError:
        return None
    return Path(first[len(MARKER):]) if first.startswith(MARKER) else None


def check_writable(path: Path) -> None:
    """Refuse, before anything starts, to overwrite settings no cluster wrote."""
    if path.exists() and writer(path) is None:
        raise UserError(f"{path} holds settings mr cluster start did not write; move it away, or "
                        f"start with MR_CONFIG_FILE naming another file (empty: none)")


def write(path: Path, data_dir: Path, env: Mapping[str, str]) -> None:
    """The connection settings among ``env`` (variables), as file keys; written whole under a
    temporary name and renamed, so that no command reads half of it."""
    keys = {spec.env: field.name for field, spec in Settings.specs()}
    lines = [f"{MARKER}{data_dir}", "# mr cluster stop removes it.", ""]
    lines += [f"{keys[name]} = {json.dumps(env[name])}" for name in CONNECTIONS if name in env]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.touch(mode=0o600)  # it holds a token, maybe etcd's password: its owner's alone
    partial.write_text("\n".join(lines) + "\n")
    partial.replace(path)


def remove(path: Path | None, data_dir: Path) -> bool:
    """Remove the file if the cluster of ``data_dir`` wrote it."""
    if path is None or writer(path) != data_dir:
        return False
    path.unlink()
    return True
