"""history.jsonl read whole (read_jsonl) and streamed (iter_jsonl): the same ops, the same
line numbers and offsets, the same one-line errors, on clean files and on every odd one.

Both decode clean lines on a fast path; these files exercise where it must give way to
the exact line-by-line rules (blank lines, whitespace, a BOM, a torn or malformed line,
and lines that are not one object each even though the whole file would parse as a list
of as many objects as it has lines)."""
import gc
import json

import pytest

from core.history import HistoryError, iter_jsonl, read_jsonl

OP = '{"index": %d, "type": "invoke", "f": "read", "value": null, "process": 0}'
CLEAN = "".join(OP % i + "\n" for i in range(50))

FILES = {
    "clean": CLEAN,
    "no final newline": CLEAN.rstrip("\n"),
    "blank lines": "\n" + OP % 0 + "\n\n   \n" + OP % 1 + "\n\n",
    "crlf": CLEAN.replace("\n", "\r\n"),
    "leading and trailing spaces": " " + OP % 0 + "\t\n" + OP % 1 + "  \n",
    "torn last line": CLEAN + '{"index": 50, "ty',
    "torn last line then blanks": CLEAN + '{"index": 50, "ty\n\n',
    "bom": "\ufeff" + CLEAN,
    # Split across lines and two on one line: as a list it is 3 objects from 3 lines.
    "an object over two lines": '{"a": [1\n2]}\n{"b": 1}, {"c": 2}\n',
    "two objects on a line": OP % 0 + ", " + OP % 1 + "\n",
    "a list line": OP % 0 + "\n[1, 2]\n",
    "a number line": OP % 0 + "\n7\n" + OP % 1 + "\n",
    "a string line": '"x"\n',
    "not json mid-file": OP % 0 + "\n{nope}\n" + OP % 1 + "\n",
    "a torn line mid-file": OP % 0 + '\n{"index": 1\n' + OP % 2 + "\n",
    "odd whitespace": OP % 0 + "\x0b\n",
    "nested values": '{"index": 0, "value": [[1, {"k": [2, 3]}], "s\\u00e9"], "f": "txn"}\n',
}


def _whole(path):
    try:
        h = read_jsonl(str(path))
    except HistoryError as e:
        return "error", str(e)
    return list(h), list(h.lines)


def _streamed(path, chunk_bytes):
    try:
        offsets, ops = [], []
        for starts, chunk in iter_jsonl(str(path), chunk_bytes):
            offsets.extend(starts)
            ops.extend(chunk)
    except HistoryError as e:
        return "error", str(e)
    return ops, offsets


def _line_numbers(data: bytes, offsets):
    """1-based line number of each byte offset."""
    return [data.count(b"\n", 0, o) + 1 for o in offsets]


def _reference(text):
    """The rules, line by line, with nothing fast: what both readers must agree with."""
    lines = text.split("\n")
    last = max((i for i, s in enumerate(lines) if s.strip()), default=-1)
    ops = []
    for i, s in enumerate(lines):
        if not s.strip():
            continue
        try:
            op = json.loads(s)
        except json.JSONDecodeError:
            if i == last and not s.rstrip().endswith("}"):
                break
            return "error"
        if not isinstance(op, dict):
            return "error"
        ops.append(op)
    return ops


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("chunk_bytes", [1 << 20, 64])
def test_read_whole_and_streamed_agree_with_the_line_rules(name, chunk_bytes, tmp_path):
    path = tmp_path / "history.jsonl"
    data = FILES[name].encode("utf-8")
    path.write_bytes(data)
    whole, streamed = _whole(path), _streamed(path, chunk_bytes)
    expected = _reference(FILES[name])
    if expected == "error":
        assert whole[0] == "error" and streamed == whole, (whole, streamed)
        assert "\n" not in whole[1] and str(path) in whole[1]
    else:
        assert whole[0] == expected and streamed[0] == expected
        assert whole[1] == _line_numbers(data, streamed[1])


def test_a_line_that_is_two_objects_is_named_even_when_the_counts_would_match(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text(FILES["an object over two lines"])
    with pytest.raises(HistoryError, match=r"history.jsonl:1: not valid JSON"):
        read_jsonl(str(path))
    with pytest.raises(HistoryError, match=r"history.jsonl:1: not valid JSON"):
        list(iter_jsonl(str(path)))


def test_invalid_utf8_is_one_error_from_both(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_bytes((OP % 0 + "\n").encode() + b'{"f": "\xff"}\n')
    with pytest.raises(HistoryError, match="not a text file"):
        list(iter_jsonl(str(path)))
    with pytest.raises(UnicodeDecodeError):   # load_history turns this one into its line
        read_jsonl(str(path))


@pytest.mark.parametrize("name", ["clean", "not json mid-file"])
def test_reading_leaves_the_garbage_collector_as_it_found_it(name, tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text(FILES[name])
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            for read in (lambda: read_jsonl(str(path)), lambda: list(iter_jsonl(str(path)))):
                try:
                    read()
                except HistoryError:
                    pass
                assert gc.isenabled() is enabled
        finally:
            gc.enable()
