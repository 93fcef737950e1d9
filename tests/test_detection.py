"""Time to detection: the checkers name the ops they blame; the earliest invocation wins."""
from __future__ import annotations

from checkers.detection import first_blamed
from checkers.elle import ElleChecker
from checkers.linearizable import LinearizableChecker
from checkers.result import compose
from checkers.set import SetChecker

S = 1_000_000_000


def history(*ops):
    """(process, type, f, value, seconds) tuples -> ops with dense indices."""
    return [{"index": i, "time": int(t * S), "type": typ, "process": p, "f": f, "value": v}
            for i, (p, typ, f, v, t) in enumerate(ops)]


def test_a_stale_read_is_blamed_at_its_invocation():
    h = history((0, "invoke", "write", ["k", 1], 0.5), (0, "ok", "write", ["k", 1], 0.6),
                (1, "invoke", "read", ["k", None], 2.0), (1, "ok", "read", ["k", None], 2.1),
                (0, "invoke", "write", ["k", 2], 3.0), (0, "ok", "write", ["k", 2], 3.1),
                (1, "invoke", "read", ["k", None], 4.0), (1, "ok", "read", ["k", 1], 4.5))
    result = LinearizableChecker("cas-register", nil_read="absent", independent=True).check(h, {})
    assert result["valid"] is False
    assert result["blamed"] == [2]   # the read of nil after the write of 1 completed
    assert first_blamed(h, compose({"linearizable": result})) == {
        "index": 2, "time": 2 * S, "seconds": 2.0, "checker": "linearizable"}


def test_a_lost_add_is_blamed_and_the_earliest_of_several_wins():
    h = history((0, "invoke", "add", ["s", 1], 1.0), (0, "ok", "add", ["s", 1], 1.1),
                (1, "invoke", "add", ["s", 2], 0.5), (1, "ok", "add", ["s", 2], 1.5),
                (0, "invoke", "add", ["s", 3], 2.0), (0, "ok", "add", ["s", 3], 2.1),
                (0, "invoke", "read-list", ["s", None], 9.0), (0, "ok", "read-list", ["s", [3]], 9.1))
    result = SetChecker().check(h, {})
    assert result["valid"] is False and sorted(result["blamed"]) == [0, 2]
    assert first_blamed(h, compose({"set": result}))["seconds"] == 0.5


def test_an_elle_cycle_blames_its_transactions():
    # G1c: T1 appends x=1 and reads y=[1]; T2 appends y=1 and reads x=[1]: each saw the other.
    h = history((0, "invoke", "txn", [["append", "x", 1], ["r", "y", None]], 3.0),
                (1, "invoke", "txn", [["append", "y", 1], ["r", "x", None]], 1.0),
                (0, "ok", "txn", [["append", "x", 1], ["r", "y", [1]]], 4.0),
                (1, "ok", "txn", [["append", "y", 1], ["r", "x", [1]]], 4.5))
    h[1]["time"] = int(1.0 * S)
    result = ElleChecker("list-append", consistency_models=["serializable"]).check(h, {})
    assert result["valid"] is False
    assert set(result["blamed"]) == {2, 3}  # the completions of the cycle's transactions
    detection = first_blamed(h, compose({"elle": result}))
    assert detection["index"] == 1 and detection["seconds"] == 1.0  # T2's invocation


def test_valid_results_blame_nothing():
    h = history((0, "invoke", "add", ["s", 1], 1.0), (0, "ok", "add", ["s", 1], 1.1),
                (0, "invoke", "read-list", ["s", None], 2.0), (0, "ok", "read-list", ["s", [1]], 2.1))
    result = SetChecker().check(h, {})
    assert "blamed" not in result
    # A checker that blames ops but is not false (here: composed under a valid verdict) counts for nothing.
    assert first_blamed(h, compose({"set": result, "other": {"valid": True, "blamed": [0]}})) is None
