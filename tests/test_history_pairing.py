"""One pairing rule (core.history.pairing), seen the same by every reader of a history:
validation, the report's intervals, the linearizability checker and Elle."""
import pytest

from checkers.elle import check_elle
from checkers.elle.txns import TxnHistory
from checkers.linearizable import LinearizableChecker
from checkers.linearizable.calls import prepare
from checkers.linearizable.models import MODELS
from core.history import NO_PARTNER, HistoryError, pair, read_jsonl, retire, validate, write_jsonl
from harness.report.ops import intervals


def _register():
    return MODELS["cas-register"]()


DOUBLE_INVOKE = [
    {"type": "invoke", "process": 0, "f": "write", "value": 1},
    {"type": "invoke", "process": 0, "f": "read", "value": None},
    {"type": "ok", "process": 0, "f": "read", "value": 1},
]
DOUBLE_TXN = [
    {"type": "invoke", "process": 0, "f": "txn", "value": [["append", "x", 1]]},
    {"type": "invoke", "process": 0, "f": "txn", "value": [["r", "x", None]]},
    {"type": "ok", "process": 0, "f": "txn", "value": [["r", "x", [1]]]},
]


@pytest.mark.parametrize("read", [
    pytest.param(validate, id="validate"),
    pytest.param(intervals, id="report"),
    pytest.param(lambda h: prepare(h, _register()), id="linearizable"),
    pytest.param(lambda h: TxnHistory(DOUBLE_TXN), id="elle"),
])
def test_a_second_invocation_while_one_is_open_is_an_error_for_every_reader(read):
    """Which completion belongs to which invocation would be a guess: every reader refuses,
    naming both ops (before the fix, Elle silently dropped the first invocation)."""
    with pytest.raises(HistoryError, match=r"op 1: process 0 invokes .* while its op at op 0 is still open"):
        read(DOUBLE_INVOKE)


def test_the_checkers_refuse_a_double_invocation_rather_than_guess():
    with pytest.raises(HistoryError):
        LinearizableChecker("cas-register").check(DOUBLE_INVOKE, {})
    with pytest.raises(HistoryError):
        check_elle(DOUBLE_TXN, "list-append", {})


def test_partners_point_both_ways_and_unpaired_ops_have_none():
    h = [{"type": "invoke", "process": 0, "f": "write", "value": 1},
         {"type": "ok", "process": 1, "f": "read", "value": 1},        # lone completion
         {"type": "info", "process": "nemesis", "f": "kill"},            # lone nemesis report
         {"type": "ok", "process": 0, "f": "write", "value": 1},
         {"type": "invoke", "process": 2, "f": "read", "value": None}]   # never completed
    assert list(pair(h).partner) == [3, NO_PARTNER, NO_PARTNER, 0, NO_PARTNER]


def test_a_lone_completion_was_invoked_before_everything():
    """Elle's own histories are often completions only; a lone ok is taken as invoked at an
    unknown earlier time: the widest interval, which cannot invent an anomaly. Here the
    lone read of 1 must then linearize after the write of 1, which it may (the write was
    invoked at position 0, and the read's interval reaches back before it)."""
    h = [{"type": "invoke", "process": 0, "f": "write", "value": 1},
         {"type": "ok", "process": 0, "f": "write", "value": 1},
         {"type": "ok", "process": 1, "f": "read", "value": 1}]
    calls = prepare(h, _register()).keys["all"]
    lone = next(c for c in calls if c.f == "read")
    assert lone.inv == NO_PARTNER and lone.ret == 2 and lone.invoke_index is None
    assert LinearizableChecker("cas-register", initial=0).check(h, {})["valid"] is True
    # the same read, completed before the write was invoked, is not linearizable
    late = [h[2], h[0], h[1]]
    assert LinearizableChecker("cas-register", initial=0).check(late, {})["valid"] is False


def test_elle_sees_lone_and_paired_completions_with_the_same_positions():
    h = [{"type": "ok", "process": 1, "f": "txn", "value": [["append", "x", 1]]},
         {"type": "invoke", "process": 0, "f": "txn", "value": [["r", "x", None]]},
         {"type": "ok", "process": 0, "f": "txn", "value": [["r", "x", [1]]]},
         {"type": "invoke", "process": 2, "f": "txn", "value": [["append", "x", 2]]}]
    txns = TxnHistory(h)
    assert list(txns.invoke_position) == [NO_PARTNER, 1]
    assert list(txns.position) == [0, 2]
    assert txns.invocations == [None, h[1]]
    # node 0 (lone) completes at 0, before node 1 is invoked at 1: real-time order
    assert txns.precedes(0, 1, realtime=True) and not txns.precedes(1, 0, realtime=True)


def test_retirement_gives_the_thread_a_fresh_process():
    assert retire(3, 10) == 13 and retire(retire(3, 10), 10) == 23


def test_the_encoder_is_what_the_checkers_see(tmp_path):
    """Tuples, sets and bytes do not survive JSON as themselves: what the file holds
    (lists and text) is what a checker must judge, live or later."""
    path = tmp_path / "h.jsonl"
    write_jsonl([{"type": "ok", "process": 0, "f": "read", "value": ("k", frozenset({1})),
                  "node": b"n1"}], str(path))
    (op,) = read_jsonl(str(path))
    assert op["value"] == ["k", [1]] and op["node"] == "n1"
