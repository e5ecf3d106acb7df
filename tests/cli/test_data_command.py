"""``mr data``: datasets put into, listed, printed and removed from a file:// data store, with
``mr`` run as a user runs it. No KV: the data commands need only the data store."""
import gzip
import os
import subprocess
import sys
import uuid

import fsspec
import pytest

from mr.cli import data_command
from mr.data.fsspec_store import can_rename
from mr.datasets.formats import open_writer, read_pairs
from mr.datasets.splits import list_files
from tests.cli.conftest import REPOSITORY, Mr

BOOK = "the cat sat\non the mat\n"


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def mr(store):
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("MR_")}
    return Mr({**environment, "MR_DATA_STORE_URL": f"file://{store}"})


@pytest.fixture
def corpus(tmp_path):
    """A directory as a user has it: two books, one in a subdirectory, and hidden files."""
    directory = tmp_path / "corpus"
    (directory / "more").mkdir(parents=True)
    (directory / "a.txt").write_text(BOOK)
    (directory / "more" / "b.txt").write_text("a hat\n")
    (directory / ".DS_Store").write_text("editor state")
    (directory / "_SUCCESS").write_text("")
    return directory


def write_mr_dataset(path, pairs) -> None:
    fs, local = fsspec.core.url_to_fs(str(path))
    with open_writer(fs, local, "mr") as writer:
        writer.write_all(pairs)


def fails_with_status_1(mr, *arguments) -> str:
    finished = mr.run(*arguments)
    assert finished.returncode == 1, (finished.stdout, finished.stderr)
    lines = finished.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mr: error: "), finished.stderr
    return lines[0]


def test_a_file_put_is_an_input_url_that_reads_back(mr, tmp_path, store):
    (tmp_path / "book.txt").write_text(BOOK)

    url = mr.ok("data", "put", str(tmp_path / "book.txt"), "books/book.txt").strip()

    assert url == str(store / "datasets" / "books" / "book.txt")
    assert list_files(url) == [(url, len(BOOK))]
    fs, path = fsspec.core.url_to_fs(url)
    assert [line for _, line in read_pairs(fs, path, "text")] == ["the cat sat", "on the mat"]
    assert mr.ok("data", "ls") == f"books/book.txt\t{len(BOOK)}\n"
    assert mr.ok("data", "cat", "books/book.txt") == BOOK


def test_a_directory_is_put_recursively_without_its_dot_files(mr, corpus, store):
    url = mr.ok("data", "put", str(corpus), "corpus").strip()

    assert url == str(store / "datasets" / "corpus")
    assert sorted(path.name for path in (store / "datasets" / "corpus").iterdir()) == [
        "_SUCCESS", "a.txt", "more"]
    (store / "datasets" / "corpus" / ".a.txt.0f3c.partial").write_text("a put in progress")
    assert mr.ok("data", "ls", "corpus") == ("corpus/_SUCCESS\t0\ncorpus/a.txt\t23\n"
                                             "corpus/more/b.txt\t6\n")
    assert mr.ok("data", "ls", "corpus", "--url").splitlines() == [
        f"{url}/_SUCCESS\t0", f"{url}/a.txt\t23", f"{url}/more/b.txt\t6"]
    assert [os.path.basename(file) for file, _ in list_files(url)] == ["a.txt", "b.txt"]


def test_a_dataset_is_replaced_only_with_force(mr, corpus, tmp_path):
    mr.ok("data", "put", str(corpus), "corpus")
    (tmp_path / "book.txt").write_text("another book\n")

    assert mr.fails("data", "put", str(tmp_path / "book.txt"), "corpus") == (
        "dataset 'corpus' exists: --force replaces it")
    mr.ok("data", "put", "--force", str(tmp_path / "book.txt"), "corpus")

    assert mr.ok("data", "ls") == "corpus\t13\n"
    assert mr.ok("data", "cat", "corpus") == "another book\n"


@pytest.mark.parametrize("name", ["/etc/books", "../books", "books/../../x", ".books",
                                  "books/_tmp", "books//a", "books/*.txt", "b?", ""])
def test_names_that_would_leave_datasets_or_be_hidden_are_refused(mr, tmp_path, store, name):
    (tmp_path / "book.txt").write_text(BOOK)

    message = mr.fails("data", "put", str(tmp_path / "book.txt"), name)

    assert message.startswith(f"invalid dataset name {name!r}: ")
    assert not store.exists() or not list(store.rglob("*.txt"))


def test_a_missing_local_source_is_a_user_error(mr, tmp_path):
    assert mr.fails("data", "put", str(tmp_path / "nothing"), "x") == (
        f"{tmp_path / 'nothing'}: no such file or directory")


def test_cat_prints_a_directory_of_mr_files_as_json_pairs_in_order(mr, tmp_path):
    output = tmp_path / "output"
    output.mkdir()
    write_mr_dataset(output / "part-00001", [["the", 3], ["ünï", {"n": [1, 2]}]])
    write_mr_dataset(output / "part-00000", [["cat", 1]])
    (output / "_SUCCESS").write_text("")
    (output / "empty").write_text("")

    printed = mr.ok("data", "cat", str(output))

    assert printed.splitlines() == ['["cat", 1]', '["the", 3]', '["ünï", {"n": [1, 2]}]']
    assert mr.ok("data", "cat", f"file://{output}", "--format", "mr") == printed


def test_cat_reads_a_dataset_put_in_the_store_in_the_format_asked(mr, tmp_path):
    (tmp_path / "pairs.jsonl").write_text('["a",1]\n\n[ "b" , [2, 3]]\n')
    write_mr_dataset(tmp_path / "pairs.mr", [["a", 1]])
    mr.ok("data", "put", str(tmp_path / "pairs.jsonl"), "pairs.jsonl")
    mr.ok("data", "put", str(tmp_path / "pairs.mr"), "pairs.mr")

    assert mr.ok("data", "cat", "pairs.jsonl") == '["a",1]\n\n[ "b" , [2, 3]]\n'
    assert mr.ok("data", "cat", "pairs.jsonl", "--format", "jsonl") == '["a", 1]\n["b", [2, 3]]\n'
    assert mr.ok("data", "cat", "pairs.mr") == '["a", 1]\n'


def test_cat_decompresses_gzip_files_by_their_name(mr, tmp_path):
    (tmp_path / "book.txt.gz").write_bytes(gzip.compress(BOOK.encode()))
    write_mr_dataset(tmp_path / "pairs.mr", [["a", 1]])
    (tmp_path / "pairs.mr.gz").write_bytes(gzip.compress((tmp_path / "pairs.mr").read_bytes()))
    mr.ok("data", "put", str(tmp_path / "book.txt.gz"), "book.txt.gz")

    assert mr.ok("data", "cat", "book.txt.gz") == BOOK
    assert mr.ok("data", "cat", str(tmp_path / "pairs.mr.gz")) == '["a", 1]\n'


def test_data_not_in_its_format_fails_with_status_1(mr, tmp_path):
    (tmp_path / "book.txt").write_text(BOOK)
    write_mr_dataset(tmp_path / "bytes.mr", [["key", b"\x00\x01"]])
    mr.ok("data", "put", str(tmp_path / "book.txt"), "book.txt")
    mr.ok("data", "put", str(tmp_path / "bytes.mr"), "bytes.mr")

    assert "book.txt: the line at byte 0 is not JSON" in fails_with_status_1(
        mr, "data", "cat", "book.txt", "--format", "jsonl")
    assert "book.txt: not an mr dataset" in fails_with_status_1(
        mr, "data", "cat", "book.txt", "--format", "mr")
    assert "bytes.mr: cannot print the pair of key 'key' as JSON" in fails_with_status_1(
        mr, "data", "cat", "bytes.mr")


def test_cat_stops_quietly_when_its_reader_does(mr, tmp_path):
    (tmp_path / "big.txt").write_text("".join(f"line {n}\n" for n in range(100_000)))
    mr.ok("data", "put", str(tmp_path / "big.txt"), "big.txt")

    with subprocess.Popen([sys.executable, "-m", "mr.cli.main", "data", "cat", "big.txt"],
                          env=mr.env, cwd=REPOSITORY, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as process:
        assert process.stdout.readline() == b"line 0\n"
        process.stdout.close()
        assert process.wait(timeout=60) == 0
        assert process.stderr.read() == b""


def test_rm_removes_a_file_and_a_directory_only_when_recursive(mr, corpus, tmp_path):
    (tmp_path / "book.txt").write_text(BOOK)
    mr.ok("data", "put", str(corpus), "shelf/corpus")
    mr.ok("data", "put", str(tmp_path / "book.txt"), "book.txt")

    assert mr.ok("data", "rm", "book.txt") == "removed datasets/book.txt (1 file(s))\n"
    assert mr.fails("data", "rm", "shelf/corpus") == (
        "dataset 'shelf/corpus' is a directory: --recursive removes it with every file under it")
    assert mr.ok("data", "rm", "--recursive", "shelf/corpus") == (
        "removed datasets/shelf/corpus (3 file(s))\n")

    assert mr.ok("data", "ls") == ""
    mr.ok("data", "put", str(tmp_path / "book.txt"), "shelf")  # nothing left in its way


@pytest.mark.parametrize("arguments", [("ls", "books"), ("cat", "books"), ("rm", "books")])
def test_a_missing_dataset_is_a_user_error(mr, arguments):
    message = mr.fails("data", *arguments)

    assert "'books'" in message or "datasets/books" in message


@pytest.mark.parametrize("url", ["nope://bucket/x", "/no/such/directory"])
def test_a_url_that_cannot_be_read_is_a_user_error(mr, url):
    assert url in mr.fails("data", "cat", url)


@pytest.mark.parametrize("arguments", [("put", "README.rst", "readme"), ("ls",),
                                       ("cat", "books"), ("rm", "books")])
def test_every_store_command_refuses_the_embedded_store(mr, arguments):
    mr.env["MR_DATA_STORE_URL"] = "memory"

    assert mr.fails("data", *arguments) == data_command.EMBEDDED_STORE


def test_cat_of_a_path_needs_no_store(mr, tmp_path):
    mr.env["MR_DATA_STORE_URL"] = "memory"
    (tmp_path / "book.txt").write_text(BOOK)

    assert mr.ok("data", "cat", str(tmp_path / "book.txt")) == BOOK


@pytest.fixture(params=["memory", "local"])
def filesystem(request, tmp_path):
    """A store without rename (fsspec's memory://) and one with it (a local directory)."""
    if request.param == "local":
        yield fsspec.core.url_to_fs(str(tmp_path / "root"))
        return
    fs, root = fsspec.core.url_to_fs(f"memory://put-test-{uuid.uuid4().hex}")
    yield fs, root
    fs.rm(root, recursive=True)


def test_a_copy_that_fails_leaves_nothing_behind(tmp_path, monkeypatch, filesystem):
    fs, root = filesystem
    renamed = can_rename(fs)
    source = tmp_path / "book.txt"
    source.write_text(BOOK)

    target_seen_half_written = []

    def copy_half_then_fail(reader, writer, length):
        writer.write(reader.read(5))
        writer.flush()
        target_seen_half_written.append(fs.exists(f"{root}/failed/book.txt"))
        raise OSError("disk full")

    assert renamed is (fs.protocol != "memory")
    assert data_command._copy(source, fs, f"{root}/ok/book.txt") == len(BOOK)
    monkeypatch.setattr(data_command.shutil, "copyfileobj", copy_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        data_command._copy(source, fs, f"{root}/failed/book.txt")

    assert fs.cat_file(f"{root}/ok/book.txt") == BOOK.encode()
    assert fs.find(f"{root}/failed") == []
    assert target_seen_half_written == [not renamed]  # readers see nothing until it is whole
