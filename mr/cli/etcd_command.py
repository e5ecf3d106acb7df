"""``mr etcd maintain``: get the configured etcd to accept writes again after it ran out of space.

It compacts the history to the current revision, defragments the member it talks to (so that its
database file shrinks below the quota) and disarms the NOSPACE alarm. Nothing needs a restart:
the mr processes already running write again as soon as the alarm is gone.
"""
from __future__ import annotations

from mr.cli.errors import UserError
from mr.kv import create_kv
from mr.kv.base import KVError
from mr.kv.etcd import EtcdKV
from mr.settings import Settings


def register(subparsers) -> None:
    parser = subparsers.add_parser("etcd", help="maintain the etcd that mr uses")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    maintain = verbs.add_parser(
        "maintain", help="compact etcd's history, defragment it and disarm its NOSPACE alarm")
    maintain.set_defaults(run=run_maintain)


def run_maintain(arguments) -> int:
    settings = Settings.load()
    if settings.kv_backend != "etcd":
        raise UserError("mr etcd maintain works on etcd: set MR_KV_BACKEND=etcd, MR_ETCD_HOST "
                        "and MR_ETCD_PORT")
    with create_kv(settings) as kv:
        try:
            maintain(kv)
        except KVError as error:
            raise UserError(f"etcd maintenance failed: {error}") from None
    return 0


def maintain(kv: EtcdKV) -> None:
    """Compact, defragment, disarm: in this order, since only a defragmentation after the
    compaction shrinks the database below the quota, and an alarm disarmed before that would be
    raised again by the next write."""
    revision = kv.current_revision()
    kv.compact(revision, physical=True)
    print(f"compacted the history to revision {revision}")
    size_before = kv.database_size()
    kv.defragment()
    print(f"defragmented {kv.base_url}: database {_mib(size_before)} -> "
          f"{_mib(kv.database_size())}")
    disarmed = kv.disarm_alarms("NOSPACE")
    for alarm in disarmed:
        print(f"disarmed the NOSPACE alarm of member {alarm.member_id:x}")
    if not disarmed:
        print("no NOSPACE alarm was raised")


def _mib(size: int) -> str:
    return f"{size / 2 ** 20:.2f} MiB"
