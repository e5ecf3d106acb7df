"""Dataset files: the records of a byte range of a file as ``[key, value]`` pairs, and pairs
written to a file.

Input formats: ``text`` (one record per line), ``jsonl`` (one JSON ``[key, value]`` per line) and
``mr`` (the binary format of the shuffle and of outputs: :data:`MAGIC`, then one msgpack object
per pair, in :mod:`mr.codec`'s encoding). Output formats: ``jsonl``, ``tsv`` and ``mr``.

Line formats can be cut into splits anywhere: a split reads the records whose first byte lies in
it, the last one possibly running past its end (Hadoop's rule), so the splits of a file together
read every record of it exactly once, whatever the cut points. Compressed files and ``mr`` files
are read whole: neither can be entered in the middle.

Everything streams through buffered files: memory is a buffer and one record, whatever the file's
size.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import json
import math
import zlib
from typing import Any, Callable, Iterable, Iterator

import msgpack

from mr import codec

FORMATS = ("text", "jsonl", "mr")
OUTPUT_FORMATS = ("jsonl", "tsv", "mr")
#: The first bytes of every ``mr`` file: a file of another kind is refused, not misread.
MAGIC = b"MRDS\x01\n"
#: Read buffer of one file: large reads keep object stores' requests few and local reads cheap.
READ_BUFFER_BYTES = 1024 * 1024
#: Output is written in pieces of about this size, one ``write`` call each.
WRITE_BUFFER_BYTES = 256 * 1024

_BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark, which some editors put at a file's start
_UNPACK_READ_BYTES = 16 * 1024
_UNPACK_OPTIONS = {"raw": False, "strict_map_key": False}  # as mr.codec.decode
#: One encoder for every line: json.dumps with options builds a new one per call.
_JSON = json.JSONEncoder(ensure_ascii=False)


class DatasetError(ValueError):
    """A file that is not in its format, or a format or an option that does not exist."""


def require_format(fmt: str, formats: tuple[str, ...] = FORMATS) -> None:
    """Refuse a format name that is not one of ``formats``, naming those that are."""
    if fmt not in formats:
        raise DatasetError(f"unknown dataset format {fmt!r}: use one of {', '.join(formats)}")


def splittable(path: str, fmt: str) -> bool:
    """Whether a file can be read from the middle: gzip and ``mr`` files are read whole."""
    return fmt != "mr" and not path.endswith(".gz")


def read_pairs(fs, path: str, fmt: str, start: int = 0, end: int | None = None, *,
               buffer_bytes: int = READ_BUFFER_BYTES) -> Iterator[list]:
    """The pairs of the records whose first byte lies in ``[start, end)`` (``end`` None: to the
    end of the file): ``[[path, offset], line]`` per line of a text file, ``[key, value]`` per
    record of the others. The arguments are checked now; the file is opened at the first pair."""
    require_format(fmt)
    if start < 0 or (end is not None and end < start):
        raise DatasetError(f"{path}: not a byte range: {start} to {end}")
    if (start, end) != (0, None) and not splittable(path, fmt):
        raise DatasetError(f"{path}: a gzip or mr file is read whole, not from byte {start} "
                           f"to {end}")
    return _READERS[fmt](fs, path, start, end, buffer_bytes)


class InputUnavailable(Exception):
    """A file could not be opened or read: its store failed or it went away. Not an OSError, so
    that whoever reads through a handler (which may raise OSErrors of its own) can tell the
    two apart; reading again may work, unlike a DatasetError."""


class OutputUnavailable(Exception):
    """A file could not be written, as InputUnavailable for reading."""


def guarded(unavailable: type[Exception], what: str, operation: Callable, *args, **kwargs):
    """``operation(*args, **kwargs)``, its OSError raised as ``unavailable`` naming ``what``."""
    try:
        return operation(*args, **kwargs)
    except OSError as error:
        raise unavailable(f"cannot {what}: {error}") from error


class _Guarded(io.RawIOBase):
    """A file whose failures are InputUnavailable, naming it: checked per buffer refill, not per
    record."""

    def __init__(self, fs, path: str, buffer_bytes: int):
        self._path = path
        self._file = self._guard(fs.open, path, "rb", block_size=buffer_bytes)

    def _guard(self, operation, *args, **kwargs):
        return guarded(InputUnavailable, f"read {self._path}", operation, *args, **kwargs)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._guard(self._file.readinto, buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._guard(self._file.seek, offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


@contextlib.contextmanager
def _opened(fs, path: str, buffer_bytes: int) -> Iterator[io.BufferedIOBase]:
    """The file's (uncompressed) bytes through one buffer. fsspec's own files of remote stores
    find a line by reading a whole block per call; a BufferedReader over them reads each byte
    once. Failures to open or read are InputUnavailable."""
    with io.BufferedReader(_Guarded(fs, path, buffer_bytes), buffer_bytes) as file:
        if not path.endswith(".gz"):
            yield file
            return
        with gzip.open(file) as unzipped:
            try:
                yield unzipped
            except (gzip.BadGzipFile, EOFError, zlib.error) as error:
                raise DatasetError(f"{path}: not a complete gzip file: {error}") from None


def _text_pairs(fs, path: str, start: int, end: int | None,
                buffer_bytes: int) -> Iterator[list]:
    """``[[path, offset], line]`` for the lines whose first byte lies in ``[start, end)``,
    without their line end (``\n`` or ``\r\n``).

    Lines are cut from pieces of about ``buffer_bytes``, each decoded by one call: per line
    there is then only the pair to make, which keeps a split's reading well ahead of what a
    mapper does with its lines."""
    limit = math.inf if end is None else end
    with _opened(fs, path, buffer_bytes) as file:
        offset = _first_line_offset(file, start, buffer_bytes)
        while offset < limit:
            piece = file.read(buffer_bytes)
            if not piece:
                return
            if not piece.endswith(b"\n"):  # complete the piece's last line
                piece += file.readline()
            if piece.isascii() and b"\r" not in piece:  # most text: a line's size is its length
                texts = piece.decode("ascii").split("\n")
                if piece.endswith(b"\n"):
                    texts.pop()
                for text in texts:
                    if offset >= limit:
                        return
                    yield [[path, offset], text]
                    offset += len(text) + 1  # past the end of a last line without "\n": no matter
                continue
            for text, size in _decoded_lines(path, offset, piece):
                if offset >= limit:
                    return
                yield [[path, offset], text]
                offset += size


def _decoded_lines(path: str, offset: int, piece: bytes) -> Iterator[tuple[str, int]]:
    """``(text, size in bytes)`` of each line of ``piece``, which ends with a whole line."""
    lines = piece.split(b"\n")
    ended = piece.endswith(b"\n")  # else the last line is the file's, without "\n"
    if ended:
        lines.pop()
    sizes = [len(line) + 1 for line in lines]
    if not ended:
        sizes[-1] -= 1
    try:
        texts = piece.decode().split("\n")[:len(lines)]
    except UnicodeDecodeError:
        starts = itertools.accumulate(sizes, initial=offset)
        texts = [_decoded(path, line_start, line) for line_start, line in zip(starts, lines)]
    if b"\r\n" in piece:  # a "\r" before "\n" is part of the line end
        texts = [text[:-1] if text.endswith("\r") and (ended or number < len(texts) - 1)
                 else text for number, text in enumerate(texts)]
    return zip(texts, sizes)


def _decoded(path: str, offset: int, line: bytes) -> str:
    try:
        return line.decode()
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: the line at byte {offset} is not UTF-8: "
                           f"{error.reason} at byte {offset + error.start}") from None


def _first_line_offset(file: io.BufferedIOBase, start: int, buffer_bytes: int) -> int:
    """Position ``file`` at the first line that starts at or after ``start``: the line that
    crosses ``start`` belongs to the split before. At the file's start, skip a byte order mark."""
    if start == 0:
        if file.peek(len(_BOM))[:len(_BOM)] != _BOM:
            return 0
        return len(file.read(len(_BOM)))
    file.seek(start - 1)  # a "\n" just before start: the line at start is whole, and ours
    offset = start - 1
    while True:  # a long line is skipped a buffer at a time, never held whole
        piece = file.readline(buffer_bytes)
        offset += len(piece)
        if not piece or piece.endswith(b"\n"):
            return offset


def _jsonl_pairs(fs, path: str, start: int, end: int | None,
                 buffer_bytes: int) -> Iterator[list]:
    for (_, offset), text in _text_pairs(fs, path, start, end, buffer_bytes):
        if not text or text.isspace():
            continue
        try:
            pair = json.loads(text)
        except ValueError as error:
            raise DatasetError(f"{path}: the line at byte {offset} is not JSON: {error}") from None
        if type(pair) is not list or len(pair) != 2:
            raise DatasetError(f"{path}: the line at byte {offset} is not a JSON [key, value] "
                               f"array: {text:.80}")
        yield pair


def _mr_pairs(fs, path: str, start: int, end: int | None,
              buffer_bytes: int) -> Iterator[list]:
    with _opened(fs, path, buffer_bytes) as file:
        if file.read(len(MAGIC)) != MAGIC:
            raise DatasetError(f"{path}: not an mr dataset: it does not start with {MAGIC!r}")
        unpacker = msgpack.Unpacker(file, read_size=min(buffer_bytes, _UNPACK_READ_BYTES),
                                    **_UNPACK_OPTIONS)
        # Where the last whole record ends: the unpacker's position also moves into a partial
        # one, and it stops quietly when the file ends inside a record.
        read_through = 0
        try:
            for pair in unpacker:
                if type(pair) is not list or len(pair) != 2:
                    raise DatasetError(f"{path}: the record at byte {len(MAGIC) + read_through} "
                                       f"is not a [key, value] pair")
                read_through = unpacker.tell()
                yield pair
        except DatasetError:
            raise
        except (ValueError, TypeError, msgpack.UnpackException) as error:
            raise DatasetError(f"{path}: the record at byte {len(MAGIC) + read_through} is "
                               f"corrupt: {error}") from None
        if file.tell() != len(MAGIC) + read_through:
            raise DatasetError(f"{path}: truncated: the record at byte "
                               f"{len(MAGIC) + read_through} ends after the file, at {file.tell()}")


_READERS = {"text": _text_pairs, "jsonl": _jsonl_pairs, "mr": _mr_pairs}


def pair_encoder() -> Callable[[Any, Any], bytes]:
    """A function encoding ``[key, value]`` exactly as ``mr.codec.encode`` does, faster for many
    small pairs: one msgpack packer serves every call. What the codec refuses raises its
    ``CodecError``."""
    pack = msgpack.Packer(use_bin_type=True).pack  # mr.codec's options

    def encoded(key: Any, value: Any) -> bytes:
        try:
            return pack([key, value])
        except (TypeError, ValueError, OverflowError):
            codec.encode([key, value])  # the same rules: raises the error naming what is refused
            raise
    return encoded


def open_writer(fs, path: str, fmt: str) -> DatasetWriter:
    """A writer of pairs to ``path`` in ``fmt`` (one of OUTPUT_FORMATS), a context manager."""
    return DatasetWriter(fs, path, fmt)


class DatasetWriter:
    """Pairs written to one file, streaming: records are gathered into pieces of about
    WRITE_BUFFER_BYTES, so that a record costs no call on the file. The caller picks a temporary
    name and renames the file once it is complete."""

    def __init__(self, fs, path: str, fmt: str):
        require_format(fmt, OUTPUT_FORMATS)
        self.path = path
        self.count = 0
        self._encode = pair_encoder() if fmt == "mr" else _json_encoder(path, _JSON_LINES[fmt])
        self._pending = bytearray(MAGIC if fmt == "mr" else b"")  # records' bytes, no objects
        self._closed = False
        self._file = guarded(OutputUnavailable, f"write {path}", fs.open, path, "wb")

    def write(self, key: Any, value: Any) -> None:
        self._pending += self._encode(key, value)
        self.count += 1
        if len(self._pending) >= WRITE_BUFFER_BYTES:
            self._flush()

    def write_all(self, pairs: Iterable[Any]) -> None:
        for key, value in pairs:
            self.write(key, value)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._flush()
        finally:
            guarded(OutputUnavailable, f"write {self.path}", self._file.close)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _flush(self) -> None:
        guarded(OutputUnavailable, f"write {self.path}", self._file.write, self._pending)
        self._pending = bytearray()


#: The line of a pair, without its line end, in each JSON output format.
_JSON_LINES: dict[str, Callable[[Any, Any], str]] = {
    "jsonl": lambda key, value: _JSON.encode([key, value]),
    "tsv": lambda key, value: f"{_JSON.encode(key)}\t{_JSON.encode(value)}",
}


def _json_encoder(path: str, line: Callable[[Any, Any], str]) -> Callable[[Any, Any], bytes]:
    """``line`` as UTF-8 bytes ending in "\\n"; a pair JSON cannot hold (bytes, sets, lone
    surrogates) is a DatasetError naming its key."""
    def encoded(key: Any, value: Any) -> bytes:
        try:
            return (line(key, value) + "\n").encode()
        except (TypeError, ValueError) as error:
            raise DatasetError(f"{path}: cannot write the pair of key {key!r:.80} as JSON: "
                               f"{error}") from None
    return encoded
