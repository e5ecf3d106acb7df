"""Memory is bounded by configuration, never by the input, against a real ``mr run``: a 1 GB
input by reference under a per-executor-child memory limit, and a large input uploaded as the
request's body, which the front end streams to the shuffle store instead of holding it."""
import collections
import contextlib
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, urlsplit

import pytest

from benchmarks.word_count_mr import peak_memory

REPOSITORY = Path(__file__).resolve().parents[2]
MIB = 1 << 20
#: Each executor child may allocate this much; a map or reduce whose memory grew with its input
#: would fail its request with HandlerMemoryExceeded.
EXECUTOR_MEMORY_MB = 200


@contextlib.contextmanager
def mr_run(**settings: str) -> Iterator[tuple[str, int]]:
    """``mr run handlers/wordcount`` on a free port with these MR_* settings: (URL, pid)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "mr.cli.main", "run", "handlers/wordcount", "--port", "0"],
        cwd=REPOSITORY, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "MR_REQUEST_WAIT_TIMEOUT_S": "600", **settings})
    try:
        address = next(line for line in server.stdout if "listening on" in line).split()[4]
        yield address, server.pid
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def text_of(megabytes: int, seed: int) -> bytes:
    """Lines of words drawn from a vocabulary of 20,000 (a bounded set of keys, as a language's
    words are), about ``megabytes`` MiB. Long words: fewer of them to count per byte."""
    rng = random.Random(seed)
    vocabulary = [f"vocabulary{number:05d}word" for number in range(20_000)]
    line_count = megabytes * MIB // 200
    return "".join(" ".join(rng.choices(vocabulary, k=10)) + "\n"
                   for _ in range(line_count)).encode()


def counts_of(text: bytes) -> collections.Counter:
    return collections.Counter(re.findall(r"\w+", text.decode().lower()))


def post(url: str, body, content_type: str, timeout_s: float = 600) -> tuple[int, dict]:
    """POST ``body`` (bytes, or an iterable of chunks sent with chunked encoding)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        chunked = not isinstance(body, bytes)
        connection.request("POST", f"{parts.path}?{parts.query}", body=body,
                           headers={"Content-Type": content_type}, encode_chunked=chunked)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def read_counts(output: dict) -> dict:
    return dict(json.loads(line) for part in output["parts"]
                for line in Path(part.removeprefix("file://")).read_text().splitlines())


def test_a_1_gb_input_is_counted_within_each_childs_memory_limit(tmp_path):
    """Ten hard links to one 100 MiB file: 1 GB of input, in the page cache once."""
    text = text_of(100, seed=1)
    (tmp_path / "source.txt").write_bytes(text)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for number in range(10):
        os.link(tmp_path / "source.txt", inputs / f"part-{number:02d}.txt")
    assert sum(path.stat().st_size for path in inputs.iterdir()) > 10 ** 9
    with mr_run(MR_EXECUTOR_MEMORY_MB=str(EXECUTOR_MEMORY_MB)) as (address, pid):
        with peak_memory({"mr run": pid}) as peaks:
            status, answer = post(
                f"{address}/job/wordcount/wordcount_files",
                json.dumps({"input": {"url": str(inputs)},
                            "output": {"url": str(tmp_path / "counts")}}).encode(),
                "application/json")
    assert status == 200, answer
    expected = {word: count * 10 for word, count in counts_of(text).items()}
    assert read_counts(answer["result"]["output"]) == expected
    executors = {name: peak for name, peak in peaks.items() if " executor " in name}
    assert len(executors) == os.cpu_count(), peaks
    assert max(executors.values()) < EXECUTOR_MEMORY_MB * MIB, peaks
    assert peaks["mr run"] < 150 * MIB, peaks


def test_an_uploaded_input_is_streamed_not_held(tmp_path):
    """240 MiB sent chunked as the body: held whole, the front end's memory would grow by more
    than the body; streamed, it stays where an idle mr run is."""
    block = text_of(8, seed=2)
    blocks = 30
    output = json.dumps({"url": str(tmp_path / "counts")})
    shuffle = tmp_path / "shuffle"
    with mr_run(MR_SHUFFLE_URL=str(shuffle)) as (address, pid):
        with peak_memory({"mr run": pid}) as peaks:
            status, answer = post(
                f"{address}/job/wordcount/wordcount_files?output={quote(output)}",
                (block for _ in range(blocks)), "text/plain")
        left = files_left_in(shuffle)
    assert status == 200, answer
    expected = {word: count * blocks for word, count in counts_of(block).items()}
    assert read_counts(answer["result"]["output"]) == expected
    assert peaks["mr run"] < 150 * MIB, peaks
    assert left == []  # the uploaded file went with its request, once its result was delivered


def files_left_in(directory: Path, timeout_s: float = 10.0) -> list[Path]:
    """The files still under ``directory`` once none is left, or when ``timeout_s`` has passed:
    a delivered request is removed right after its answer is sent."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(FileNotFoundError):  # a directory removed while it was walked
            left = [path for path in directory.rglob("*") if path.is_file()]
            if not left or time.monotonic() > deadline:
                return left
        time.sleep(0.05)


@pytest.mark.parametrize("chunked", [False, True])
def test_an_upload_over_the_limit_is_a_413_and_leaves_nothing(tmp_path, chunked):
    shuffle = tmp_path / "shuffle"
    body = b"word\n" * 10_000
    with mr_run(MR_MAX_UPLOAD_BYTES="20000", MR_SHUFFLE_URL=str(shuffle)) as (address, _):
        status, answer = post(f"{address}/job/wordcount/wordcount_files",
                              iter([body]) if chunked else body, "text/plain")
        files = [path for path in shuffle.rglob("*") if path.is_file()]
    assert (status, answer["error"]["type"]) == (413, "RequestEntityTooLarge"), answer
    assert "MR_MAX_UPLOAD_BYTES (20000 bytes)" in answer["error"]["message"]
    assert files == []
