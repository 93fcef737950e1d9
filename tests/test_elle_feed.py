"""The columnar builder's compiled pass (checkers/elle/_feed.c) against its Python loop:
the same state, or the same Fallback, on every history fed the same way.

The state is everything the builder holds (columns, open invocations, key numbers,
longest reads, the per-transaction anomalies and lost-update groups), compared whole,
so the compiled loop cannot take an op differently, or skip one, unseen."""
from __future__ import annotations

import json
import random
import re

import pytest

from checkers.elle import columnar
from checkers.elle.columnar import Fallback, _Builder
from checkers.elle.lost_update import LostUpdates
from core.history import HistoryError
from core.history.jsonl import LineChunk
from testkit.txn_stores import STORES, simulate
from tests.conftest import conformance_files
from tests.test_elle_conformance import _history
from checkers.elle import check_path
from tests.test_elle_engines import PLANTS, _comparable, _odd_histories, _planted

needs_compiled = pytest.mark.skipif(columnar._compiled is None,
                                    reason="checkers/elle/_feed.c is not built (./setup.sh)")


class _Str(str):
    """Equal to the str it was made from, yet not a str: the C takes only exact ones."""


def _state(builder: _Builder) -> dict:
    return {name: vars(v) if isinstance(v, LostUpdates) else v for name, v in vars(builder).items()}


def _fed(history: list, chunks: list[int], compiled: bool, monkeypatch) -> object:
    """The builder's state after `feed` on the history cut at `chunks`, or "Fallback"."""
    with monkeypatch.context() as m:
        if not compiled:
            m.setattr(columnar, "_compiled", None)
        builder = _Builder()
        start = 0
        try:
            for end in chunks + [len(history)]:
                builder.feed(history[start:end])
                start = end
        except Fallback:
            return "Fallback"
        return _state(builder)


def _agree(history: list, monkeypatch, chunks: list[int] = ()) -> object:
    chunks = sorted(chunks)
    python = _fed(history, list(chunks), False, monkeypatch)
    compiled = _fed(history, list(chunks), True, monkeypatch)
    assert compiled == python
    return python


@needs_compiled
@pytest.mark.parametrize("store", STORES)
def test_the_same_state_on_simulated_stores(store, monkeypatch):
    for seed in range(3):
        history = simulate(store, 400, seed=seed, stale_rate=0.05, info_rate=0.1)
        state = _agree(history, monkeypatch)
        # a read of an aborted write is the reference engine's (read-uncommitted's)
        assert state != "Fallback" or store == "read-uncommitted"
        # invocations and completions in different calls: the events written back
        # into the builder's array, not the compiled loop's own
        cuts = random.Random(seed).sample(range(1, len(history)), 12)
        _agree(history, monkeypatch, cuts)


@needs_compiled
@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_the_same_state_on_planted_anomalies(kind, monkeypatch):
    _agree(_planted(kind, 0), monkeypatch)


def _with_stretches(history: list) -> list:
    """The history with long stretches of ops only the Python loop takes (nemesis ops,
    reads of another workload) between its transactions."""
    out = []
    for i, op in enumerate(history):
        out.append(op)
        if i % 40 == 39:
            for j in range(i % 3 * 300):
                out.append({"type": "info", "process": "nemesis", "f": "kill", "value": None}
                           if j % 2 else {"type": "invoke", "process": 99, "f": "read", "value": None})
                if not j % 2:
                    out.append({"type": "ok", "process": 99, "f": "read", "value": j})
    return out


@needs_compiled
@pytest.mark.parametrize("name,history", list(_odd_histories()), ids=[n for n, _ in _odd_histories()])
def test_the_same_state_or_fallback_on_odd_histories(name, history, monkeypatch):
    _agree(history, monkeypatch)


@needs_compiled
def test_the_same_state_across_stretches_the_python_loop_takes(monkeypatch):
    history = _with_stretches(simulate("snapshot-isolation", 400, seed=3, info_rate=0.1))
    assert _agree(history, monkeypatch) != "Fallback"


@needs_compiled
def test_the_same_state_on_elle_cases(conformance, monkeypatch):
    cases = [json.loads(line) for path in conformance_files("elle/cases.jsonl")
             for line in path.read_text().splitlines() if line.strip()]
    fed = [_agree(_history(case, conformance), monkeypatch)
           for case in cases if case["workload"] == "list-append"]
    assert sum(state != "Fallback" for state in fed) >= 10


def _mutations(rng: random.Random):
    """Edits of one op, each something the Python loop rejects or treats specially."""
    def mop(op, fn):
        if isinstance(op.get("value"), list) and op["value"]:
            i = rng.randrange(len(op["value"]))
            if isinstance(op["value"][i], list):
                fn(op["value"], i)

    def read(op, v):
        mop(op, lambda ms, i: ms.__setitem__(i, ["r", ms[i][1], v]))

    return [
        lambda op: op.__setitem__("type", rng.choice(["fail", "info", "done", None, 3])),
        lambda op: op.__setitem__("process", rng.choice(["c1", True, 1.0, None, 2**70, -5, "nemesis"])),
        lambda op: op.pop("process"),
        lambda op: op.__setitem__("f", rng.choice(["read", None, "TXN", 7])),
        lambda op: op.pop("f", None),
        lambda op: op.__setitem__("index", rng.choice([None, "3", 2**64, -1, 1.5])),
        lambda op: op.pop("index", None),
        lambda op: op.__setitem__("value", rng.choice([None, 7, (), {"a": 1}, []])),
        lambda op: mop(op, lambda ms, i: ms.__setitem__(i, tuple(ms[i]))),
        lambda op: mop(op, lambda ms, i: ms.__setitem__(i, ms[i][:2])),
        lambda op: mop(op, lambda ms, i: ms.__setitem__(i, ["w", ms[i][1], 1])),
        lambda op: mop(op, lambda ms, i: ms.__setitem__(i, [ms[i][0], ["unhashable"], ms[i][2]])),
        lambda op: mop(op, lambda ms, i: ms.append(list(ms[i]))),   # a key twice
        lambda op: mop(op, lambda ms, i: ms.__setitem__(
            i, ["append", ms[i][1], rng.choice([1.5, -1, 2**31, 2**31 - 1, 2**31 - 2, True, "1"])])),
        lambda op: read(op, rng.choice([0, "", (), None, [], [1.5], [True], [2**40], [2**31 - 1], ["x", 1]])),
        lambda op: read(op, [rng.randrange(1, 9) for _ in range(rng.randrange(1, 4))]),
        lambda op: op.__setitem__("extra", 1),
        lambda op: mop(op, lambda ms, i: ms.__setitem__(i, [_Str(ms[i][0])] + ms[i][1:])),
        lambda op: op.__setitem__("type", _Str(op["type"])),
    ]



@needs_compiled
@pytest.mark.parametrize("failed", [
    [["append", "x", 1], ["append", "x", 2], ["r", "y", None], ["append", "y", 3]],
    [[_Str("append"), "x", 1]],
    [["append", "x", 1.0]],
    [["append", ["x"], 1]],
    [("append", "x", 1)],
    [["w", "x", 1], ["r", "x", 7]],
    None,
], ids=["a key twice", "str subclass", "float", "unhashable key", "tuple", "no append", "nil"])
def test_the_same_state_after_a_failed_transaction(failed, monkeypatch):
    history = [
        {"type": "invoke", "process": 1, "f": "txn", "value": [["append", "x", 5]]},
        {"type": "ok", "process": 1, "f": "txn", "value": [["append", "x", 5]]},
        {"type": "invoke", "process": 2, "f": "txn", "value": failed, "index": 7},
        {"type": "fail", "process": 2, "f": "txn", "value": failed, "index": 8},
        {"type": "invoke", "process": 2, "f": "txn", "value": [["r", "x", None]]},
        {"type": "ok", "process": 2, "f": "txn", "value": [["r", "x", [5]]]},
    ]
    _agree(history, monkeypatch)


@needs_compiled
def test_the_same_state_or_fallback_on_mutated_histories(monkeypatch):
    """Hundreds of small histories, each with a few ops edited at random."""
    outcomes = set()
    for seed in range(300):
        rng = random.Random(seed)
        history = json.loads(json.dumps(simulate(rng.choice(STORES), 30, seed=seed,
                                                 info_rate=0.1, stale_rate=0.1)))
        mutations = _mutations(rng)
        for _ in range(rng.randrange(1, 4)):
            rng.choice(mutations)(rng.choice(history))
        if rng.random() < 0.3:
            history.insert(rng.randrange(len(history)), rng.choice(
                [["not", "a", "dict"], {"type": "info", "process": "nemesis", "f": "kill"}]))
        state = _agree(history, monkeypatch, rng.sample(range(1, len(history)), 3))
        outcomes.add(state == "Fallback")
    assert outcomes == {True, False}   # both kinds were met


@needs_compiled
def test_the_compiled_loop_takes_the_usual_transaction(monkeypatch):
    """No op of a store's history goes to the Python loop: failed transactions and keys
    named twice included, all are the compiled loop's."""
    history = simulate("snapshot-isolation", 2000, seed=1, info_rate=0.1)
    assert any(op["type"] == "fail" for op in history)
    assert any(len({m[1] for m in op["value"]}) < len(op["value"]) for op in history)
    given = []
    python_feed = _Builder._feed
    monkeypatch.setattr(_Builder, "_feed", lambda self, ops: (given.extend(ops), python_feed(self, ops)))
    _Builder().feed(history)
    assert given == []


def test_the_compiled_feed_is_built():
    """setup.sh builds it; without it the columnar engine is the Python loop's speed."""
    assert columnar._compiled is not None


# -- lines read from their bytes (_jsonline.h) ---------------------------------------------

def _analysed(path: str, compiled: bool, monkeypatch) -> object:
    """analyse_file's builder state and line offsets, or the error it raised."""
    with monkeypatch.context() as m:
        if not compiled:
            m.setattr(columnar, "_compiled", None)
        m.setattr(columnar, "_analysis", lambda builder, source: (_state(builder), source.offsets))
        try:
            return columnar.analyse_file(path)
        except Fallback:
            return "Fallback"
        except HistoryError as e:
            return "HistoryError", str(e)


def _checked(path: str, compiled: bool, monkeypatch) -> object:
    """check_path's result (or error), as the user gets it."""
    with monkeypatch.context() as m:
        if not compiled:
            m.setattr(columnar, "_compiled", None)
        try:
            return _comparable(check_path(path, "list-append", consistency_models=["serializable"]))
        except HistoryError as e:
            return "HistoryError", str(e)


def _file_agrees(tmp_path, text: bytes, monkeypatch) -> object:
    path = str(tmp_path / "history.jsonl")
    (tmp_path / "history.jsonl").write_bytes(text)
    python = _analysed(path, False, monkeypatch)
    compiled = _analysed(path, True, monkeypatch)
    if "Fallback" in (python, compiled) and compiled != python:
        # A line the reference engine must check, and a bad line after it: the Python
        # path parses a whole chunk before it feeds any, the compiled one line by line,
        # so either may be met first. The user gets the bad line's error either way.
        assert {python, compiled} - {"Fallback"} and compiled[0] != "state"
        assert _checked(path, True, monkeypatch) == _checked(path, False, monkeypatch)
        assert _checked(path, True, monkeypatch)[0] == "HistoryError"
    else:
        assert compiled == python
    return python


def _lines(history: list) -> list[bytes]:
    return [(json.dumps(op) + "\n").encode() for op in history]


@needs_compiled
@pytest.mark.parametrize("store", STORES)
def test_the_same_state_from_the_lines_of_simulated_stores(store, tmp_path, monkeypatch):
    for seed in range(2):
        history = simulate(store, 400, seed=seed, stale_rate=0.05, info_rate=0.1)
        _file_agrees(tmp_path, b"".join(_lines(history)), monkeypatch)


@needs_compiled
@pytest.mark.parametrize("name,history", list(_odd_histories()), ids=[n for n, _ in _odd_histories()])
def test_the_same_state_from_the_lines_of_odd_histories(name, history, tmp_path, monkeypatch):
    _file_agrees(tmp_path, b"".join(_lines(history)), monkeypatch)


@needs_compiled
def test_the_same_state_from_lines_across_stretches_the_python_path_takes(tmp_path, monkeypatch):
    history = _with_stretches(simulate("snapshot-isolation", 400, seed=3, info_rate=0.1))
    assert _file_agrees(tmp_path, b"".join(_lines(history)), monkeypatch) != "Fallback"


# Rewrites of a line's text: the same op in JSON the subset does not hold (escapes,
# floats, big numbers, repeated fields, other spacing), or no longer the same op, or
# no JSON at all. Each is either taken exactly as json.loads reads it, or left to it.
_REWRITES = [
    lambda t, r: t.replace('"type"', '"t\\u0079pe"'),
    lambda t, r: t.replace('"txn"', '"t\\u0078n"'),
    lambda t, r: t.replace(", ", ",", 1).replace(": ", ":"),
    lambda t, r: t.replace(", ", " ,\t\r "),
    lambda t, r: t.replace("{", "{ ", 1).replace("}\n", " }\r\n"),
    lambda t, r: t.replace("}\n", ', "type": "ok"}\n'),
    lambda t, r: t.replace("}\n", ', "process": 1}\n'),
    lambda t, r: t.replace("}\n", ', "index": 3}\n'),
    lambda t, r: t.replace("}\n", ', "value": null}\n'),
    lambda t, r: t.replace("}\n", ', "f": null}\n'),
    lambda t, r: t.replace("}\n", ', "time": 1}\n'),
    lambda t, r: t.replace("}\n", ', "extra": {"a": [1, "b", null, true, false, {}], "c": []}}\n'),
    lambda t, r: t.replace("}\n", ', "extra": ' + "[" * 40 + "]" * 40 + "}\n"),
    lambda t, r: t.replace("}\n", ', "extra": 1.5}\n'),
    lambda t, r: t.replace("}\n", ', "extra": "caf\u00e9"}\n'),
    lambda t, r: t.replace("}\n", ', "extra": 123456789012345678901234}\n'),
    lambda t, r: t.replace("}\n", ', "extra": NaN}\n'),
    lambda t, r: t.replace("}\n", ', "extra": "a\\"b"}\n'),
    lambda t, r: t.replace("}\n", ', "extra": "tab\there"}\n'),
    lambda t, r: t.replace("}\n", "}"),
    lambda t, r: t.replace("}\n", "} x\n"),
    lambda t, r: t.replace("}\n", ",}\n"),
    lambda t, r: t[:r.randrange(1, len(t))] + "\n",
    lambda t, r: "\n" + t,
    lambda t, r: "   \n",
    lambda t, r: "[1, 2]\n",
    lambda t, r: t.replace('"process": ', '"process": -', 1),
    lambda t, r: t.replace('"process": ', '"process": 0', 1),
    lambda t, r: t.replace('"process": ', '"process": 1e1 + ', 1).replace("1e1 + ", "1e1, \"y\": "),
    lambda t, r: t.replace('"process": ', '"process": 99999999999999999999 , "z": ', 1),
    lambda t, r: t.replace('"process": ', '"process": "c', 1).replace(', "f"', '", "f"', 1),
    lambda t, r: t.replace('"process": ', '"process": true, "z": ', 1),
    lambda t, r: t.replace('"index": ', '"index": 1.0, "z": ', 1),
    lambda t, r: t.replace('"type": "', '"type": "x', 1),
    lambda t, r: t.replace('"f": "txn"', '"f": "read"'),
    lambda t, r: t.replace('"f": "txn"', '"f": 7'),
    lambda t, r: t.replace('"append", ', '"append", "k', 1).replace(", ", '", ', 1) if '"append"' in t else t,
    lambda t, r: t.replace('["append", ', '["append", [1], ', 1),
    lambda t, r: t.replace('["append", ', '["append", 1.0, ', 1),
    lambda t, r: t.replace('["append", ', '["append", -0, ', 1),
    lambda t, r: t.replace('["r", ', '["r", 5, ', 1),
    lambda t, r: t.replace('["r", ', '["r", "5", ', 1),
    lambda t, r: t.replace('["r", ', '["w", ', 1),
    lambda t, r: t.replace('null]', '[]]', 1),
    lambda t, r: t.replace('null]', '[1, 2, 3]]', 1),
    lambda t, r: t.replace('null]', '[2147483647]]', 1),
    lambda t, r: t.replace('null]', '[1.5]]', 1),
    lambda t, r: t.replace('null]', '0]', 1),
    lambda t, r: t.replace('[[', '[[\"r\", 0, null], [', 1),
    lambda t, r: t.replace('"value": [', '"value": [[], ', 1),
    lambda t, r: t.replace('"value": [', '"value": {"a": ', 1).replace("]}\n", "}}\n"),
    lambda t, r: t.replace('"value": [[', '"value": [["append", 1, 2, 3], [', 1),
    lambda t, r: re.sub(r'"index": \d+, ', "", t),
    lambda t, r: re.sub(r'\["(append|r)", (\d+)', lambda m: f'["{m[1]}", "\\u006b{m[2]}"', t),
    lambda t, r: re.sub(r'\["(append|r)", (\d+)', lambda m: f'["{m[1]}", "k{m[2]}"', t),
    lambda t, r: t.rstrip("\n"),
    lambda t, r: re.sub(r'\["append", (\d+), \d+\]', r'["append", \1, 2147483647]', t, count=1),
    lambda t, r: re.sub(r'\["append", (\d+), \d+\]', r'["append", \1, 2147483646]', t, count=1),
    lambda t, r: t.encode("latin-1", "replace").decode("latin-1").replace("}\n", ', "\xe9": 1}\n'),
]


@needs_compiled
def test_the_same_state_or_error_from_rewritten_lines(tmp_path, monkeypatch):
    """Hundreds of small files, a few lines of each rewritten at random: the state, the
    Fallback, or the error (its message naming the line) is json.loads' own."""
    outcomes = set()
    for seed in range(400):
        rng = random.Random(seed)
        history = simulate(rng.choice(STORES), 25, seed=seed, info_rate=0.1, stale_rate=0.1)
        lines = [line.decode() for line in _lines(history)]
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(lines))
            lines[i] = rng.choice(_REWRITES)(lines[i], rng)
        outcome = _file_agrees(tmp_path, "".join(lines).encode("utf-8"), monkeypatch)
        outcomes.add(outcome[0] if isinstance(outcome, tuple) and isinstance(outcome[0], str)
                     else "Fallback" if outcome == "Fallback" else "state")
    assert outcomes == {"state", "Fallback", "HistoryError"}


@needs_compiled
def test_most_lines_are_read_from_their_bytes(tmp_path, monkeypatch):
    """Only completions naming a key twice (repeated_keys needs the dict) and failed
    transactions are parsed as dicts, by the compiled loop; none goes to the Python path."""
    history = simulate("snapshot-isolation", 2000, seed=1, info_rate=0.1)
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"".join(_lines(history)))
    to_python, loaded = [], []
    real_parse, real_loads = LineChunk.parse, json.loads
    monkeypatch.setattr(LineChunk, "parse", lambda self, i, j: to_python.append(real_loads(self.lines[i]))
                        or real_parse(self, i, j))
    monkeypatch.setattr(json, "loads", lambda text: loaded.append(real_loads(text)) or real_loads(text))
    columnar.analyse_file(str(path))
    failed = [op for op in history if op["type"] == "fail"]
    twice = [op for op in history if op["type"] in ("ok", "info")
             and len({m[1] for m in op["value"]}) < len(op["value"])]
    assert failed and twice
    assert to_python == []
    assert sorted(loaded, key=lambda op: op["index"]) == sorted(twice + failed, key=lambda op: op["index"])
