"""The columnar builder's compiled pass (checkers/elle/_feed.c) against its Python loop:
the same state, or the same Fallback, on every history fed the same way.

The state is everything the builder holds (columns, open invocations, key numbers,
longest reads, the per-transaction anomalies and lost-update groups), compared whole,
so the compiled loop cannot take an op differently, or skip one, unseen."""
from __future__ import annotations

import json
import random

import pytest

from checkers.elle import columnar
from checkers.elle.columnar import Fallback, _Builder
from checkers.elle.lost_update import LostUpdates
from testkit.txn_stores import STORES, simulate
from tests.conftest import conformance_files
from tests.test_elle_conformance import _history
from tests.test_elle_engines import _odd_histories, _planted, PLANTS

needs_compiled = pytest.mark.skipif(columnar._compiled is None,
                                    reason="checkers/elle/_feed.c is not built (./setup.sh)")


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


@needs_compiled
@pytest.mark.parametrize("name,history", list(_odd_histories()), ids=[n for n, _ in _odd_histories()])
def test_the_same_state_or_fallback_on_odd_histories(name, history, monkeypatch):
    _agree(history, monkeypatch)


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
    ]


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
    """Only failed transactions go to the Python loop on a store's history; the rest,
    keys named twice included, are the compiled loop's."""
    history = simulate("snapshot-isolation", 2000, seed=1, info_rate=0.1)
    assert any(op["type"] == "fail" for op in history)
    assert any(len({m[1] for m in op["value"]}) < len(op["value"]) for op in history)
    given = []
    python_feed = _Builder._feed
    monkeypatch.setattr(_Builder, "_feed", lambda self, ops: (given.extend(ops), python_feed(self, ops)))
    _Builder().feed(history)
    assert given == [op for op in history if op["type"] == "fail"]


def test_the_compiled_feed_is_built():
    """setup.sh builds it; without it the columnar engine is the Python loop's speed."""
    assert columnar._compiled is not None
