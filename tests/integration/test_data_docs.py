"""docs/data.rst's word count over files works as written, against ``mr run``, and
``mr demo --files`` (the README's third command) counts by reference into files."""
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from mr.handlers.format import compile_handler, parse_handler_source
from tests.integration.test_cluster import call

REPOSITORY = Path(__file__).resolve().parents[2]
DATA_DOC = (REPOSITORY / "docs" / "data.rst").read_text()


def test_the_documented_request_reads_files_and_writes_parts(tmp_path):
    body = json.loads(re.search(r"-d '(.*?)'", DATA_DOC).group(1))
    documented_output = body["output"]["url"]
    body["output"]["url"] = str(tmp_path / "counts")
    server = subprocess.Popen([sys.executable, "-m", "mr.cli.main", "run", "handlers/wordcount",
                               "--port", "0"], cwd=REPOSITORY, stdout=subprocess.PIPE, text=True)
    try:
        address = next(line for line in server.stdout if "listening on" in line).split()[4]
        status, answer = call(f"{address}/job/wordcount/wordcount_files", body)
        again, refused = call(f"{address}/job/wordcount/wordcount_files", body)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert status == 200, answer
    output = answer["result"]["output"]
    shown = DATA_DOC[DATA_DOC.index('{"result": {"output"'):]
    assert f'"url": "{documented_output}", "format": "jsonl"' in shown
    assert (output["url"], output["format"]) == (body["output"]["url"], "jsonl")
    assert [Path(part).name for part in output["parts"]] == [f"part-0000{n}" for n in range(4)]
    counts = dict(json.loads(line) for part in sorted((tmp_path / "counts").glob("part-*"))
                  for line in part.read_text().splitlines())
    documents = "".join(path.read_text() for path in sorted((REPOSITORY / "docs").glob("*.rst")))
    assert counts["partitions"] == len(re.findall(r"\bpartitions\b", documents.lower()))
    assert (again, refused["error"]["type"]) == (400, "ValidationError")
    assert "_SUCCESS" in refused["error"]["message"]


def test_the_demo_counts_files_by_reference(tmp_path):
    finished = subprocess.run([sys.executable, "-m", "mr.cli.main", "demo", "--files",
                               str(tmp_path / "counts"), "--top", "3"], cwd=REPOSITORY,
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert "wrote 4 parts to" in finished.stdout
    assert sorted(path.name for path in (tmp_path / "counts").iterdir()) == [
        "_SUCCESS", "part-00000", "part-00001", "part-00002", "part-00003"]
    assert finished.stdout.splitlines()[-1] == "mr stopped"


def test_the_documented_partitioner_is_a_valid_partitioner():
    block = DATA_DOC[DATA_DOC.index("For example, words before"):]
    block = block[block.index("::\n\n") + 4:block.index("\nIt runs in the executor child")]
    text = "\n".join(line[4:] for line in block.splitlines()) + "\n"
    source = parse_handler_source(text, "by_letter.py")
    assert (source.handler_type, source.argument_spec) == ("partitioner", [["key", None]])
    partition = compile_handler(source.source_code, "partitioner", "by_letter")
    assert (partition("apple"), partition("mango"), partition("zebra")) == (0, 1, 1)


def test_the_documented_upload_counts_the_words_of_its_body(tmp_path):
    http_doc = (REPOSITORY / "docs" / "http.rst").read_text()
    command = re.search(r"(curl -H 'Content-Type: text/plain'.*?_files')", http_doc, re.S)[1]
    (tmp_path / "book.txt").write_text("To be, or not to be\nthat is the question\n")
    server = subprocess.Popen([sys.executable, "-m", "mr.cli.main", "run", "handlers/wordcount",
                               "--port", "0"], cwd=REPOSITORY, stdout=subprocess.PIPE, text=True)
    try:
        address = next(line for line in server.stdout if "listening on" in line).split()[4]
        finished = subprocess.run(
            ["bash", "-c", command.replace("http://127.0.0.1:8080", address)], cwd=tmp_path,
            capture_output=True, text=True, timeout=60)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert finished.returncode == 0, finished.stderr
    counts = dict(json.loads(finished.stdout)["result"]["pairs"])
    assert counts == {"to": 2, "be": 2, "or": 1, "not": 1, "that": 1, "is": 1, "the": 1,
                      "question": 1}
