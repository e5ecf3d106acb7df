"""``mr demo``: the first run. Starts mr in embedded mode, counts the words of mr's own
documentation through its HTTP API, prints the most frequent, and stops it again."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from mr.cli.errors import UserError

START_TIMEOUT_S = 60


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the word count demo in embedded mode")
    parser.add_argument("--top", type=int, default=15, help="how many words to print")
    parser.add_argument("--checkout", type=Path, default=Path.cwd(),
                        help="the mr checkout holding handlers/ and docs/ (default: here)")
    parser.set_defaults(run=run)


def _documents(checkout: Path) -> dict[str, str]:
    paths = [checkout / "README.rst", *sorted((checkout / "docs").glob("*.rst"))]
    return {path.name: path.read_text() for path in paths if path.is_file()}


def run(arguments) -> int:
    definition = arguments.checkout / "handlers" / "wordcount"
    documents = _documents(arguments.checkout)
    if not definition.is_dir() or not documents:
        raise UserError(f"{arguments.checkout} is not an mr checkout (no handlers/wordcount or "
                        f"docs/); pass --checkout")
    server = subprocess.Popen([sys.executable, "-m", "mr.cli.main", "run", str(definition),
                               "--port", "0"], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "MR_LOG_LEVEL": "warning"})
    try:
        address = _wait_for_address(server)
        print(f"mr started in embedded mode at {address}")
        print(f"counting the words of {len(documents)} documents: {', '.join(documents)}")
        body = json.dumps({"arguments": documents}).encode()
        request = urllib.request.Request(f"{address}/job/wordcount/wordcount", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            pairs = json.load(response)["result"]["pairs"]
            request_id = response.headers["X-MR-REQUEST-ID"]
        print(f"request {request_id}: {len(pairs)} distinct words; the most frequent:")
        for word, count in sorted(pairs, key=lambda pair: (-pair[1], pair[0]))[:arguments.top]:
            print(f"  {count:6d}  {word}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    print("mr stopped")
    return 0


def _wait_for_address(server: subprocess.Popen) -> str:
    for line in server.stdout:
        if "listening on " in line:
            return line.split("listening on ", 1)[1].split()[0]
    raise UserError(f"mr did not start (exit status {server.wait(timeout=START_TIMEOUT_S)}); "
                    f"see the messages above")
