"""``mr token create|list|revoke``: the API tokens the front end asks for (docs/security.rst)."""
from __future__ import annotations

from mr.auth.tokens import ROLES, TokenStore
from mr.cli.entities import add_json_option, open_store, show_all


def register(subparsers) -> None:
    parser = subparsers.add_parser("token", help="create, list and revoke API tokens")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    create = verbs.add_parser(
        "create", help="make a token and print it (the only time it is shown)")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--role", required=True, choices=ROLES,
                        help="submit: run jobs and follow its own requests; read: follow any "
                             "request; admin: everything")
    create.add_argument("--workflow", action="append", default=[], metavar="WF",
                        help="a workflow it may be used for (repeat for several; default: "
                             "every workflow)")
    create.set_defaults(run=run_create)
    listing = verbs.add_parser("list", help="every token: name, role, workflows (no secrets)")
    add_json_option(listing)
    listing.set_defaults(run=run_list)
    revoke = verbs.add_parser("revoke", help="remove a token; it stops working at once")
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(run=run_revoke)


def run_create(arguments) -> int:
    with open_store() as store:
        _, presented = TokenStore(store.kv, store.keys).create(
            arguments.name, arguments.role, tuple(arguments.workflow))
    print(presented)
    return 0


def run_list(arguments) -> int:
    with open_store() as store:
        tokens = TokenStore(store.kv, store.keys).list()
    show_all([token.describe() for token in tokens], arguments.json, lambda token: "\t".join(
        [token["name"], token["role"], ",".join(token["workflows"])]))
    return 0


def run_revoke(arguments) -> int:
    with open_store() as store:
        TokenStore(store.kv, store.keys).revoke(arguments.name)
    print(f"revoked {arguments.name}")
    return 0
