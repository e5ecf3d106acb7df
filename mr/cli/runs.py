"""``mr request``, ``mr invocation`` and ``mr session``: the run state of requests, for looking
into a request (JobX's ``mr_get_request_sessions``) and for removing one by hand. ``mr request
wait|cancel`` go through the front end instead (``mr.cli.submit``).

Invocation records are kept only for map invocations that branched (``mr request tree`` shows
every invocation, ``mr.cli.trace_command``), and everything of a request goes when it is
removed: after its retention, or by ``mr request cleanup``.
"""
from __future__ import annotations

import collections

from mr import codec
from mr.cli import submit, trace_command
from mr.cli.entities import (add_get, add_json_option, add_list, open_store,
                             shared_kv_settings, to_json, user_errors)
from mr.models import Invocation, Request, Session
from mr.service import Service


def register(subparsers) -> None:
    request = subparsers.add_parser("request",
                                    help="show, list, wait for, cancel and remove requests")
    verbs = request.add_subparsers(dest="verb", required=True, metavar="VERB")
    trace_command.add_request_verbs(verbs)
    add_list(verbs, Request, lambda request: "\t".join(
        [request["request_id"], request["job_name"], request["state"]]))
    cleanup = verbs.add_parser(
        "cleanup", help="remove a request now: its record, its run state and its data")
    cleanup.add_argument("workflow", metavar="WORKFLOW")
    cleanup.add_argument("request_id", metavar="REQUEST_ID")
    cleanup.add_argument("-s", "--simulate", action="store_true",
                         help="show what would be removed, remove nothing")
    cleanup.set_defaults(run=run_cleanup)
    submit.add_request_verbs(verbs)

    invocation = subparsers.add_parser(
        "invocation", help="show the branching map invocations of a request, and the output "
                           "of any invocation")
    verbs = invocation.add_subparsers(dest="verb", required=True, metavar="VERB")
    add_get(verbs, Invocation)
    add_list(verbs, Invocation, lambda invocation: "\t".join(
        [invocation["invocation_id"], invocation["step_name"], invocation["state"],
         f"{invocation['mapped_count']} -> {invocation['mapped_step']}"]))
    trace_command.add_invocation_verbs(verbs)

    session = subparsers.add_parser("session", help="show the sessions of a request")
    verbs = session.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser(
        "list", help="every session of a request (or of one invocation), by invocation")
    listing.add_argument("workflow", metavar="WORKFLOW")
    listing.add_argument("request_id", metavar="REQUEST_ID")
    listing.add_argument("invocation_id", nargs="?", metavar="INVOCATION_ID")
    add_json_option(listing)
    listing.set_defaults(run=run_sessions)


def run_cleanup(arguments) -> int:
    """The removal is the engine's own (``Engine.remove``), on the configured backends."""
    service = Service(shared_kv_settings(), worker=False, serve=False)
    try:
        with user_errors():
            engine = service.engine
            request = engine.store.get(Request, arguments.workflow, arguments.request_id)
            what = (f"request {request.request_id} of workflow {request.workflow!r} (job "
                    f"{request.job_name!r}, {request.state})")
            if arguments.simulate:
                print(f"would remove {what}: its record, {_run_state(engine, request)} and its "
                      f"data")
                return 0
            engine.cleaner.remove(request.workflow, request.request_id)
            print(f"removed {what}")
            return 0
    finally:
        service.stop()


def _run_state(engine, request: Request) -> str:
    """How many run-state keys the request has, by kind (``done: 3, invocation: 1``)."""
    prefix = engine.keys.run(request.workflow, request.request_id)
    kinds = collections.Counter(
        stored.key[len(prefix):].split("/", 1)[0]
        for stored in engine.kv.range(prefix, prefix=True, keys_only=True).kvs)
    counts = ", ".join(f"{kind}: {count}" for kind, count in sorted(kinds.items()))
    return f"its run-state keys ({counts})" if counts else "no run state"


def run_sessions(arguments) -> int:
    with open_store() as store:
        store.get(Request, arguments.workflow, arguments.request_id)
        if arguments.invocation_id is None:
            sessions = _request_sessions(store, arguments.workflow, arguments.request_id)
        else:
            values = Session(store.kv, arguments.workflow, arguments.request_id,
                             arguments.invocation_id, store.keys.prefix).list()
            sessions = {arguments.invocation_id: values} if values else {}
    if arguments.json:
        print(to_json(sessions))
        return 0
    for invocation_id, values in sessions.items():
        print(f"Invocation: {invocation_id}")
        for key, value in values.items():
            print(f"  {key}: {to_json(value, indent=None)}")
    return 0


def _request_sessions(store, workflow: str, request_id: str) -> dict[str, dict]:
    """Invocation id -> its session, in one range read of the request's sessions."""
    prefix = store.keys.sessions(workflow, request_id)
    sessions: dict[str, dict] = {}
    for stored in store.kv.range(prefix, prefix=True).kvs:
        invocation_id, key = stored.key[len(prefix):].split("/", 1)
        sessions.setdefault(invocation_id, {})[key] = codec.decode(stored.value)
    return sessions
