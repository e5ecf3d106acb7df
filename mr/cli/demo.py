"""``mr demo``: the first run. Starts mr in embedded mode, counts the words of mr's own
documentation through its HTTP API, prints the most frequent, and stops it again.

With ``--files DIR`` the documentation is read by reference (the request names the files; mr
cuts them into splits) and the counts are written to DIR by the file writer, in partitions."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from mr.cli.errors import UserError

START_TIMEOUT_S = 60


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the word count demo in embedded mode")
    parser.add_argument("--top", type=int, default=15, help="how many words to print")
    parser.add_argument("--checkout", type=Path, default=Path.cwd(),
                        help="the mr checkout holding handlers/ and docs/ (default: here)")
    parser.add_argument("--files", type=Path, metavar="DIR",
                        help="read the documents by reference and write the counts to DIR "
                             "(which must not hold a committed result)")
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
        if arguments.files is None:
            print(f"counting the words of {len(documents)} documents: {', '.join(documents)}")
            answer, request_id = _post(f"{address}/job/wordcount/wordcount",
                                       {"arguments": documents})
            pairs = answer["result"]["pairs"]
        else:
            output = arguments.files.resolve()
            print("counting the words of docs/*.rst, read by reference")
            answer, request_id = _post(f"{address}/job/wordcount/wordcount_files", {
                "input": {"url": str(arguments.checkout.resolve() / "docs" / "*.rst")},
                "output": {"url": str(output), "format": "jsonl"}})
            parts = answer["result"]["output"]["parts"]
            print(f"request {request_id} wrote {len(parts)} parts to {output}:")
            for part in parts:
                print(f"  {part}")
            pairs = [json.loads(line) for part in parts
                     for line in Path(part.removeprefix("file://")).read_text().splitlines()]
        print(f"request {request_id}: {len(pairs)} distinct words; the most frequent:")
        for word, count in sorted(pairs, key=lambda pair: (-pair[1], pair[0]))[:arguments.top]:
            print(f"  {count:6d}  {word}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    print("mr stopped")
    return 0


def _post(url: str, body: dict) -> tuple[dict, str]:
    """The JSON answer to a blocking request, and the request's id."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response), response.headers["X-MR-REQUEST-ID"]
    except urllib.error.HTTPError as error:
        raise UserError(f"the request failed: {error.code} {error.read().decode()}") from None


def _wait_for_address(server: subprocess.Popen) -> str:
    for line in server.stdout:
        if "listening on " in line:
            return line.split("listening on ", 1)[1].split()[0]
    raise UserError(f"mr did not start (exit status {server.wait(timeout=START_TIMEOUT_S)}); "
                    f"see the messages above")
