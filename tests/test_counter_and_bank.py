"""The counter and bank checkers on planted histories (each failure explained), the raftkv
micro-op behind the counter, and both workloads valid on a real raftkv cluster."""
import os

import pytest

from checkers.bank import BankChecker
from checkers.counter import CounterChecker
from harness.run import run_test
from targets.raftkv.statemachine import KVStore, TxnAborted, validate


def history(*ops):
    """Ops as (process, type, f, value) tuples, indexed in order."""
    return [{"index": i, "time": i, "process": p, "type": t, "f": f, "value": v}
            for i, (p, t, f, v) in enumerate(ops)]


# ------------------------------------------------------------------------ counter

def test_counter_reads_within_the_bounds_are_valid():
    h = history((0, "invoke", "increment", [0, 2]), (0, "ok", "increment", [0, 2]),
                (1, "invoke", "read", [0, None]),
                (0, "invoke", "increment", [0, 3]),   # concurrent with the read: may count
                (1, "ok", "read", [0, 5]),
                (0, "info", "increment", [0, 3]),
                (1, "invoke", "read", [0, None]), (1, "ok", "read", [0, 2]))  # the info one need not
    result = CounterChecker().check(h, {})
    assert result["valid"] is True and result["keys"]["0"]["reads"] == 2


def test_counter_read_missing_an_acknowledged_increment_is_invalid_and_says_why():
    h = history((0, "invoke", "increment", [0, 4]), (0, "ok", "increment", [0, 4]),
                (1, "invoke", "read", [0, None]), (1, "ok", "read", [0, 1]))
    result = CounterChecker().check(h, {})
    assert result["valid"] is False
    assert result["explanation"] == (
        "key 0: 1 of 1 reads impossible; op 3 read 1, below the bounds [4, 4]: at least 4 was "
        "acknowledged before the read began and at most 4 could have been added before it ended")


def test_counter_read_counting_a_failed_or_uninvoked_increment_is_invalid():
    failed = history((0, "invoke", "increment", [0, 4]), (0, "fail", "increment", [0, 4]),
                     (1, "invoke", "read", [0, None]), (1, "ok", "read", [0, 4]))
    assert CounterChecker().check(failed, {})["valid"] is False
    future = history((1, "invoke", "read", [0, None]), (1, "ok", "read", [0, 1]),
                     (0, "invoke", "increment", [0, 1]), (0, "ok", "increment", [0, 1]))
    result = CounterChecker().check(future, {})
    assert result["valid"] is False and "above the bounds [0, 0]" in result["explanation"]


def test_counter_never_read_is_unknown_and_a_never_incremented_counter_reads_none_or_zero():
    assert CounterChecker().check(history((0, "invoke", "increment", [0, 1])), {})["valid"] == "unknown"
    h = history((1, "invoke", "read", [0, None]), (1, "ok", "read", [0, None]),
                (1, "invoke", "read", [0, None]), (1, "ok", "read", [0, 0]))
    assert CounterChecker().check(h, {})["valid"] is True


# ------------------------------------------------------------------------ bank

OPEN = (0, "ok", "open-accounts", [[0, 10], [1, 10], [2, 10]])


def test_bank_reads_of_the_constant_total_are_valid():
    h = history((0, "invoke", "open-accounts", [[0, 10], [1, 10], [2, 10]]), OPEN,
                (1, "invoke", "transfer", {"from": 0, "to": 2, "amount": 4}),
                (1, "ok", "transfer", {"from": 0, "to": 2, "amount": 4}),
                (2, "invoke", "read-balances", [[0, None], [1, None], [2, None]]),
                (2, "ok", "read-balances", [[0, 6], [1, 10], [2, 14]]))
    result = BankChecker().check(h, {})
    assert result["valid"] is True and result["total"] == 30 and result["reads"] == 1


@pytest.mark.parametrize("balances, kind, words", [
    ([[0, 6], [1, 10], [2, 10]], "wrong-total", "op 3 read balances summing to 26, not 30 (0: 6, 1: 10, 2: 10)"),
    ([[0, -2], [1, 18], [2, 14]], "negative-balance", "op 3 read negative balance(s) (0: -2, 1: 18, 2: 14)"),
    ([[0, 10], [1, None], [2, 20]], "missing-account", "op 3 read no balance for account(s) [1]"),
    ([[0, 10], [1, 10], [2, 5], [3, 5]], "unexpected-account", "op 3 read account(s) [3] that were never opened"),
])
def test_bank_impossible_reads_are_invalid_and_explained(balances, kind, words):
    h = history((0, "invoke", "open-accounts", OPEN[3]), OPEN,
                (2, "invoke", "read-balances", [[a, None] for a, _ in balances]),
                (2, "ok", "read-balances", balances))
    result = BankChecker().check(h, {})
    assert result["valid"] is False
    assert result["errors"][0]["kind"] == kind
    assert result["explanation"] == f"1 of 1 reads impossible ({kind}); first: {words}"


def test_bank_allows_negative_balances_when_told_and_is_unknown_without_open_accounts():
    h = history(OPEN, (2, "ok", "read-balances", [[0, -2], [1, 18], [2, 14]]))
    assert BankChecker(negative_balances=True).check(h, {})["valid"] is True
    unopened = BankChecker().check(history((2, "ok", "read-balances", [[0, 1]])), {})
    assert unopened["valid"] == "unknown" and "never opened" in unopened["error"]


# ------------------------------------------------------------------------ raftkv's incr

def test_raftkv_incr_adds_to_a_counter_and_refuses_a_list():
    store = KVStore()
    assert store.apply([["incr", "c", 2], ["incr", "c", 3], ["r", "c", None]])[-1] == ["r", "c", 5]
    store.apply([["append", "l", 1]])
    with pytest.raises(TxnAborted, match="not-a-number"):
        store.apply([["incr", "c", 1], ["incr", "l", 1]])
    assert store.read([["r", "c", None]]) == [["r", "c", 5]]  # the aborted txn changed nothing
    with pytest.raises(ValueError, match="must be an int"):
        validate([["incr", "c", "1"]])


# ------------------------------------------------------------------------ on a real cluster

@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and iptables")
@pytest.mark.parametrize("workload", ["counter", "bank"])
def test_raftkv_is_valid_for_counter_and_bank_under_partitions(tmp_path, workload):
    out = run_test({"target": "raftkv", "workload": workload, "node_count": 3, "concurrency": 6,
                    "rate": 100, "time_limit": 10, "seed": 5, "nemesis": ["partition"],
                    "nemesis_interval": 2, "recovery_time": 3, "op_timeout": 1,
                    "store": str(tmp_path / "store")})
    result = out.results["checkers"][workload]
    assert out.valid is True, result
    reads = result["reads"] if workload == "bank" else result["keys"]["0"]["reads"]
    assert reads > 20
