"""``mr settings``: the effective settings, or their documentation table."""
from __future__ import annotations

import dataclasses
import json

from mr.settings import Settings, settings_table_rst


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "settings", help="show the effective settings (defaults, MR_CONFIG_FILE, MR_* variables)")
    parser.add_argument("--doc", action="store_true",
                        help="print the reStructuredText table of every setting instead")
    parser.set_defaults(run=run)


#: Settings whose values are secrets: shown only as set or not.
SECRETS = ("message_secret", "etcd_password", "token", "ui_secret_key", "smtp_password")


def masked(values: dict) -> dict:
    return {name: ("(set)" if value else "") if name in SECRETS else value
            for name, value in values.items()}


def run(arguments) -> int:
    if arguments.doc:
        print(settings_table_rst(), end="")
    else:
        print(json.dumps(masked(dataclasses.asdict(Settings.load())), indent=2))
    return 0
