"""``mr notifications listen``: print the webhook notifications a cluster sends
(docs/notifications.rst)."""
from __future__ import annotations

import sys

from mr.cli.errors import UserError
from mr.notify.listener import DEFAULT_PORT, NotificationListener


def register(subparsers) -> None:
    parser = subparsers.add_parser("notifications", help="receive webhook notifications")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    listen = verbs.add_parser(
        "listen", help="serve a webhook that prints every notification it receives, one JSON "
                       "line each (JobX's mr_http_notification_listen)")
    listen.add_argument("--host", default="127.0.0.1", help="address to listen on "
                                                            "(default: 127.0.0.1)")
    listen.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to listen on (default: {DEFAULT_PORT}; 0: any free port)")
    listen.set_defaults(run=run_listen)


def run_listen(arguments) -> int:
    try:
        listener = NotificationListener(arguments.host, arguments.port)
    except OSError as error:
        raise UserError(f"cannot listen on {arguments.host}:{arguments.port}: "
                        f"{error.strerror or error}") from None
    print(f"listening on {listener.url}", file=sys.stderr, flush=True)
    try:
        listener.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        listener.server_close()
    return 0
