"""history.jsonl: one op per line, written as the test runs, read back with line numbers."""
from __future__ import annotations

import json
import os
import threading
from array import array
from itertools import accumulate

from ..gc_pause import paused_gc
from .op import History, HistoryError


class HistoryWriter:
    """Appends ops to a JSON Lines file, assigning dense indices.

    Every op reaches the OS as soon as the writer's owner calls `flush`. The runner does
    before it waits, and every 10 ms while ops stream in: a controller that dies, even by
    SIGKILL, leaves on disk all it recorded but at most the last 10 ms of a full-speed
    stream. With `autoflush` every append flushes. Thread-safe; `append` returns the op with
    its index set. The writer keeps no copy of the ops: the file is the record, and the
    checkers read it back (`read_jsonl`), so a live check sees exactly what `tectonic
    analyze` sees later (tuples as lists, sets as lists, odd objects as their repr).
    """

    def __init__(self, path: str, autoflush: bool = True):
        self.path = path
        self.autoflush = autoflush
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8", buffering=1 << 16)
        self._next = 0

    def append(self, op: dict) -> dict:
        with self._lock:
            op["index"] = self._next
            self._next += 1
            self._file.write(_encode(op) + "\n")
            if self.autoflush:
                self._file.flush()
            return op

    def __len__(self) -> int:
        """How many ops were appended."""
        return self._next

    def flush(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _jsonable(x):
    """What JSON lacks: sets and tuples become lists, bytes text, anything else its repr."""
    if isinstance(x, (set, frozenset, tuple)):
        return list(x)
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    return repr(x)


# One encoder for the whole process: json.dumps with options builds a new one per call,
# and the C encoder called directly skips two layers of Python wrappers (the runner
# encodes every op on its hot path).
_ENCODER = json.JSONEncoder(default=_jsonable)
try:
    from json.encoder import c_make_encoder as _c_make_encoder
    _C_ENCODE = _c_make_encoder(None, _jsonable, json.encoder.encode_basestring_ascii, None,
                                ": ", ", ", False, False, True)

    def _encode(op) -> str:
        return "".join(_C_ENCODE(op, 0))
except (ImportError, TypeError):  # a Python without the C accelerator
    _encode = _ENCODER.encode


def read_jsonl(path: str) -> History:
    """Read a history.jsonl; a line that is not a JSON object is an error naming the line.

    A torn last line (a controller killed mid-write) is dropped, not an error: everything
    before it is still the record."""
    # newline="": lines end at "\n" only, as iter_jsonl's (a "\r" is JSON whitespace, not
    # a line break, so both engines read the same lines with the same numbers)
    with open(path, encoding="utf-8", newline="") as f:
        raw = f.read().split("\n")
    with paused_gc():
        ops = _objects(raw[:-1] if raw[-1] == "" else raw)
        if ops is not None:
            return History(ops, source=path, lines=range(1, len(ops) + 1))
        return _read_lines(path, raw)


def _read_lines(path: str, raw: list[str]) -> History:
    """read_jsonl's rules line by line: blank lines skipped, a torn last line dropped."""
    ops, lines = [], []
    last = max((i for i, s in enumerate(raw) if s.strip()), default=-1)
    for n, text in enumerate(raw, 1):
        if not text.strip():
            continue
        try:
            op = json.loads(text)
        except json.JSONDecodeError as e:
            if n - 1 == last and not text.rstrip().endswith("}"):
                break
            raise HistoryError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(op, dict):
            raise HistoryError(f"{path}:{n}: expected a JSON object (one op per line), got {type(op).__name__}")
        ops.append(op)
        lines.append(n)
    return History(ops, source=path, lines=lines)


_RAW_DECODE = json.JSONDecoder().raw_decode


def _objects(texts: list[str]) -> list[dict] | None:
    """Each text decoded as exactly one JSON object, which json.loads would give too; None
    as soon as one is anything else (blank, padded, torn, not an object, two objects): the
    line-by-line rules then decide, and name the line. A decode per line, not one over
    the lines joined as a list: split and doubled lines could make that a list of as many
    objects as there are lines, and read a malformed file as a history."""
    ops = []
    append = ops.append
    try:
        for text in texts:
            op, end = _RAW_DECODE(text)
            if end != len(text) or type(op) is not dict:
                return None
            append(op)
    except json.JSONDecodeError:
        return None
    return ops


def write_jsonl(ops, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for op in ops:
            f.write(_encode(op) + "\n")


def iter_jsonl(path: str, chunk_bytes: int = 1 << 20):
    """Stream a history.jsonl as (offsets, ops) chunks: `ops` the next ops in file order,
    `offsets[i]` the byte offset of op i's line (for `read_op_at`). Same rules and errors
    as `read_jsonl` (blank lines skipped, a torn last line dropped), so a reader that
    keeps only what it needs of each op holds a history far larger than its dicts would
    fill. A chunk of clean lines is decoded on read_jsonl's fast path (`_objects`); any
    other chunk line by line."""
    for chunk in iter_jsonl_lines(path, chunk_bytes):
        # Paused while this chunk is decoded, not while the reader holds it.
        with paused_gc():
            ops = _chunk_objects(chunk.lines)
            parsed = (chunk.starts, ops) if ops is not None else chunk.parse(0, len(chunk.lines))
        yield parsed


def _chunk_objects(lines: list[bytes]) -> list[dict] | None:
    """_objects of a chunk's lines, decoded as one text; None where that does not hold."""
    try:
        texts = b"".join(lines).decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return None
    if texts[-1] == "":
        texts.pop()
    return _objects(texts) if len(texts) == len(lines) else None


class LineChunk:
    """Lines of a history.jsonl as bytes, as `iter_jsonl_lines` reads them: `starts[i]`
    is line i's byte offset, `line_no` the number of the line before the first, `final`
    whether the file ends with this chunk (its last line may be torn)."""

    def __init__(self, path: str, lines: list[bytes], starts: array, line_no: int, final: bool):
        self.path, self.lines, self.starts, self.line_no, self.final = path, lines, starts, line_no, final
        self._last = None

    def parse(self, i: int, j: int) -> tuple[list[int], list[dict]]:
        """Lines i..j-1 as `iter_jsonl` parses them: (offsets, ops), blank lines skipped,
        the torn last line of the file dropped, anything else not an op an error naming
        its line."""
        if self._last is None:   # the file's last line that is not blank, if it is here
            self._last = -1 if not self.final else max(
                (k for k, s in enumerate(self.lines) if s.strip()), default=-1)
        return _parse_lines(self.path, self.lines[i:j], self.starts[i:j], self.line_no + i,
                            self._last - i if i <= self._last < j else -1)


def iter_jsonl_lines(path: str, chunk_bytes: int = 1 << 20):
    """Stream a history.jsonl as LineChunks of about `chunk_bytes`, unparsed (for a
    reader that parses most lines itself, and the rest with `LineChunk.parse`)."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        f.seek(0)
        offset, line_no = 0, 0
        while True:
            lines = f.readlines(chunk_bytes)
            if not lines:
                return
            sizes = list(map(len, lines))
            starts = array("q", accumulate(sizes[:-1], initial=offset))
            offset += sum(sizes)
            yield LineChunk(path, lines, starts, line_no, offset == end)
            line_no += len(lines)


def _parse_lines(path: str, lines: list[bytes], starts: list[int], line_no: int,
                 torn_at: int) -> tuple[list[int], list[dict]]:
    """Lines by line, with read_jsonl's rules and messages; line `torn_at` (-1: none) is
    the file's last that is not blank, and may be torn."""
    offsets, ops = [], []
    for i, raw in enumerate(lines):
        try:
            text = raw.decode("utf-8").removesuffix("\n")   # as read_jsonl's (its errors too)
        except UnicodeDecodeError as e:
            raise HistoryError(f"{path}: not a text file ({e.reason})") from None
        if not text.strip():
            continue
        n = line_no + i + 1
        try:
            op = json.loads(text)
        except json.JSONDecodeError as e:
            if i == torn_at and not text.rstrip().endswith("}"):
                break
            raise HistoryError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(op, dict):
            raise HistoryError(f"{path}:{n}: expected a JSON object (one op per line), got {type(op).__name__}")
        offsets.append(starts[i])
        ops.append(op)
    return offsets, ops


def read_op_at(path: str, offset: int) -> dict:
    """The op whose line starts at byte `offset` (an offset `iter_jsonl` gave)."""
    with open(path, "rb") as f:
        f.seek(offset)
        return json.loads(f.readline())
