"""The shared filesystem: its path rules and operations, on a local directory and memory://."""
import os
import uuid

import pytest

from mr.fs import FsspecFilesystem, PathOutsideRootError
from mr.fs.base import relative_path
from mr.models.names import InvalidNameError


@pytest.fixture(params=["local", "memory"])
def root_url(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "root")
    return f"memory://mr-test-{uuid.uuid4().hex}"


@pytest.fixture
def fs(root_url):
    return FsspecFilesystem(root_url, "wf")


def write(fs, path: str, text: str) -> None:
    with fs.open(path, "w") as file:
        file.write(text)


def read(fs, path: str) -> str:
    with fs.open(path) as file:
        return file.read()


# --- paths ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, error, message", [
    ("/etc/passwd", PathOutsideRootError, "is absolute"),
    ("file:///etc/passwd", PathOutsideRootError, "is absolute"),
    ("..", PathOutsideRootError, "leaves the workflow's root"),
    ("../other/x", PathOutsideRootError, "leaves the workflow's root"),
    ("a/../../x", PathOutsideRootError, "leaves the workflow's root"),
    ("a\0b", ValueError, "contains a NUL character"),
    (b"a", TypeError, "must be a str, got bytes"),
    ("", ValueError, "names the workflow's root itself"),
    ("a/..", ValueError, "names the workflow's root itself"),
])
def test_paths_that_would_leave_the_root_are_refused(fs, path, error, message):
    with pytest.raises(error, match=message):
        fs.open(path, "w")
    assert issubclass(PathOutsideRootError, PermissionError)


def test_nothing_is_written_outside_the_root(tmp_path):
    fs = FsspecFilesystem(str(tmp_path / "root"), "wf")
    for path in ("../escaped.txt", "a/../../escaped.txt", str(tmp_path / "escaped.txt")):
        with pytest.raises(PathOutsideRootError):
            write(fs, path, "x")
    assert os.listdir(tmp_path) == []  # refused before anything, even the root, is made


@pytest.mark.parametrize("path, normalized", [
    ("a/./b//c", "a/b/c"), ("a/../b", "b"), (".hidden", ".hidden"), ("", ""), (".", ""),
])
def test_paths_inside_the_root_are_normalized(path, normalized):
    assert relative_path(path, allow_root=True) == normalized


def test_a_workflow_name_cannot_move_the_root(tmp_path):
    with pytest.raises(InvalidNameError):
        FsspecFilesystem(str(tmp_path), "../wf")


def test_the_root_is_the_workflows_directory_created_on_first_use(tmp_path):
    fs = FsspecFilesystem(str(tmp_path / "root"), "wf")
    assert not (tmp_path / "root").exists()
    assert fs.ls() == []
    write(fs, "a/b.txt", "text")
    assert (tmp_path / "root" / "wf" / "a" / "b.txt").read_text() == "text"


def test_a_home_relative_root_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write(FsspecFilesystem("~/shared", "wf"), "x.txt", "x")
    assert (tmp_path / "shared" / "wf" / "x.txt").read_text() == "x"


def test_workflows_do_not_see_each_others_files(root_url):
    first, second = FsspecFilesystem(root_url, "first"), FsspecFilesystem(root_url, "second")
    write(first, "x.txt", "first's")
    assert (first.exists("x.txt"), second.exists("x.txt"), second.ls()) == (True, False, [])


# --- symbolic links (local directories) ----------------------------------------------------------

@pytest.fixture
def planted(tmp_path):
    """A root holding links that lead outside it, and one that stays inside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    fs = FsspecFilesystem(str(tmp_path / "root"), "wf")
    write(fs, "inside/data.txt", "data")
    workflow_root = tmp_path / "root" / "wf"
    (workflow_root / "to_outside").symlink_to(outside)
    (workflow_root / "secret_link.txt").symlink_to(outside / "secret.txt")
    (workflow_root / "up").symlink_to("..")
    (workflow_root / "to_inside").symlink_to("inside")
    return fs, outside


ESCAPES = {
    "read through a linked directory": lambda fs: read(fs, "to_outside/secret.txt"),
    "read a linked file": lambda fs: read(fs, "secret_link.txt"),
    "write through a linked directory": lambda fs: write(fs, "to_outside/planted.txt", "x"),
    "write through a link to the parent": lambda fs: write(fs, "up/planted.txt", "x"),
    "ls": lambda fs: fs.ls("to_outside"),
    "stat": lambda fs: fs.stat("secret_link.txt"),
    "exists": lambda fs: fs.exists("to_outside/secret.txt"),
    "mkdir": lambda fs: fs.mkdir("to_outside/new"),
    "cp from": lambda fs: fs.cp("to_outside/secret.txt", "copied.txt"),
    "cp to": lambda fs: fs.cp("inside/data.txt", "to_outside/data.txt"),
    "mv to": lambda fs: fs.mv("inside/data.txt", "up/data.txt"),
    "rm": lambda fs: fs.rm("to_outside", recursive=True),
}


@pytest.mark.parametrize("operation", ESCAPES.values(), ids=ESCAPES.keys())
def test_links_that_lead_out_of_the_root_are_refused(planted, operation):
    fs, outside = planted
    with pytest.raises(PathOutsideRootError, match="leads out of the workflow's root through a "
                                                   "symbolic link"):
        operation(fs)
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret"
    assert not fs.exists("copied.txt")


def test_links_that_stay_inside_the_root_work(planted):
    fs, _ = planted
    assert read(fs, "to_inside/data.txt") == "data"


def test_a_root_reached_through_a_link_works(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    fs = FsspecFilesystem(str(tmp_path / "linked"), "wf")
    write(fs, "x.txt", "x")
    assert fs.ls() == ["x.txt"] and (tmp_path / "real" / "wf" / "x.txt").exists()


# --- operations ----------------------------------------------------------------------------------

def test_text_and_binary_files_read_write_and_append(fs):
    write(fs, "deep/dir/text.txt", "héllo")
    with fs.open("deep/dir/text.txt", "a") as file:
        file.write(" wörld")
    with fs.open("deep/dir/blob.bin", "wb") as file:
        file.write(b"\x00\xff")
    with fs.open("deep/dir/blob.bin", "ab") as file:
        file.write(b"\x01")
    assert read(fs, "deep/dir/text.txt") == "héllo wörld"
    with fs.open("deep/dir/text.txt", "rb") as file:
        assert file.read() == "héllo wörld".encode()
    with fs.open("deep/dir/blob.bin", "rb") as file:
        assert file.read() == b"\x00\xff\x01"
    with pytest.raises(ValueError, match="mode must be one of r, w, a, rb, wb, ab, got 'x'"):
        fs.open("deep/dir/text.txt", "x")
    with pytest.raises(FileNotFoundError):
        read(fs, "missing.txt")


def test_mkdir_ls_stat_and_exists(fs):
    fs.mkdir("a/b/c")
    fs.mkdir("a/b/c")  # an existing directory is fine
    write(fs, "a/file.txt", "12345")
    assert fs.ls() == ["a"] and fs.ls("a") == ["b", "file.txt"]
    stat = fs.stat("a/file.txt")
    assert (stat.path, stat.type, stat.size) == ("a/file.txt", "file", 5)
    assert isinstance(stat.modified, float)
    assert fs.stat("a/b").type == "directory" and fs.stat("").type == "directory"
    assert (fs.exists("a/b/c"), fs.exists("a/file.txt"), fs.exists("a/nothing")) == (
        True, True, False)
    with pytest.raises(FileNotFoundError, match="no such FS path: 'nothing'"):
        fs.stat("nothing")
    with pytest.raises(NotADirectoryError, match="'a/file.txt' is not a directory"):
        fs.ls("a/file.txt")


def test_cp_copies_files_and_directories(fs):
    write(fs, "src/one.txt", "1")
    write(fs, "src/sub/two.txt", "2")
    fs.cp("src/one.txt", "copies/one.txt")
    fs.cp("src", "tree")
    assert read(fs, "copies/one.txt") == "1"
    assert fs.ls("tree") == ["one.txt", "sub"] and read(fs, "tree/sub/two.txt") == "2"
    write(fs, "other.txt", "other")
    fs.cp("other.txt", "copies/one.txt")  # a file replaces a file
    assert read(fs, "copies/one.txt") == "other"
    assert read(fs, "src/one.txt") == "1"


@pytest.mark.parametrize("operation", ["cp", "mv"])
def test_cp_and_mv_refuse_to_merge_or_nest(fs, operation):
    write(fs, "src/one.txt", "1")
    write(fs, "file.txt", "f")
    fs.mkdir("existing")
    transfer = getattr(fs, operation)
    with pytest.raises(FileExistsError, match="'existing' exists; only a file may replace"):
        transfer("src", "existing")
    with pytest.raises(FileExistsError):
        transfer("file.txt", "existing")
    with pytest.raises(ValueError, match="inside itself"):
        transfer("src", "src/nested")
    with pytest.raises(ValueError, match="root itself"):
        transfer("src", "")
    assert fs.ls("existing") == [] and fs.ls("src") == ["one.txt"]


def test_mv_moves_files_and_directories(fs):
    write(fs, "a/one.txt", "1")
    fs.mv("a/one.txt", "b/renamed.txt")
    fs.mv("b", "c")
    assert (fs.exists("a/one.txt"), fs.exists("b")) == (False, False)
    assert read(fs, "c/renamed.txt") == "1"


def test_rm_removes_files_empty_directories_or_trees(fs):
    write(fs, "tree/sub/x.txt", "x")
    fs.mkdir("empty")
    write(fs, "file.txt", "f")
    fs.rm("file.txt")
    fs.rm("empty")
    with pytest.raises(OSError):
        fs.rm("tree")
    assert fs.exists("tree/sub/x.txt")
    fs.rm("tree", recursive=True)
    assert fs.ls() == []
    with pytest.raises(ValueError, match="root itself"):
        fs.rm("", recursive=True)
    with pytest.raises(FileNotFoundError, match="no such FS path: 'gone'"):
        fs.rm("gone")
