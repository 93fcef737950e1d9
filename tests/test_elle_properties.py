"""The Elle checker against simulated databases of known isolation levels: a store is never
blamed for more than its level allows, and shows the anomalies its level lets through.
Plus the explanations: text a person can follow, and the Graphviz drawing."""
import json
import shutil

import pytest
from hypothesis import given, settings, strategies as st

from checkers.elle import ElleChecker, check, check_elle
from checkers.elle import models
from testkit.txn_stores import simulate

WORKLOADS = ("list-append", "rw-register")
seeds = st.integers(min_value=0, max_value=2**20)
workloads = st.sampled_from(WORKLOADS)
SETTINGS = settings(max_examples=12, deadline=None)


def _types(result) -> set:
    return set(result["anomaly-types"])


def _rules_out(result, model: str) -> bool:
    return model in models.impossible_models(result["anomaly-types"])


@SETTINGS
@given(seed=seeds, workload=workloads, concurrency=st.integers(1, 10))
def test_serial_store_is_strict_serializable(seed, workload, concurrency):
    history = simulate("serializable", 250, workload=workload, seed=seed,
                       concurrency=concurrency, info_rate=0.05, keys=8)
    extra = ({"wfr_keys": True, "sequential_keys": True, "linearizable_keys": True}
             if workload == "rw-register" else {})
    result = check(history, workload, consistency_models=["strict-serializable"], **extra)
    assert result["valid"] is True, result["anomaly-types"]


@SETTINGS
@given(seed=seeds, workload=workloads)
def test_snapshot_isolation_store_never_shows_g0_g1_or_lost_update(seed, workload):
    history = simulate("snapshot-isolation", 250, workload=workload, seed=seed, keys=8)
    assert check(history, workload, consistency_models=["snapshot-isolation"])["valid"] is True
    everything = check(history, workload, consistency_models=["strict-serializable"])
    assert not _types(everything) & {"G0", "G1a", "G1b", "G1c", "lost-update", "internal",
                                     "dirty-update", "incompatible-order", "future-read"}
    assert not _rules_out(everything, "snapshot-isolation")


@pytest.mark.parametrize("workload", WORKLOADS)
def test_snapshot_isolation_store_shows_write_skew(workload):
    """Transactions that read two keys and write one: under first-committer-wins both
    writers of a pair commit, each missing the other's write (G2-item)."""
    skewed = 0
    for seed in range(5):
        history = simulate("snapshot-isolation", 300, workload=workload, seed=seed,
                           write_skew=True, keys=6)
        result = check(history, workload, consistency_models=["serializable"])
        assert result["valid"] is False or result["anomaly-types"] == []
        if "G2-item" in result["anomaly-types"]:
            skewed += 1
            assert result["not"] == ["repeatable-read"]
            cycle = result["anomalies"]["G2-item"][0]
            assert [s["type"] for s in cycle["steps"]].count("rw") >= 2
    assert skewed >= 4


@SETTINGS
@given(seed=seeds, workload=workloads)
def test_read_committed_store(seed, workload):
    history = simulate("read-committed", 250, workload=workload, seed=seed, keys=8)
    assert check(history, workload, consistency_models=["read-committed"])["valid"] is True
    everything = check(history, workload, consistency_models=["strict-serializable"])
    assert not _types(everything) & {"G0", "G1a", "G1b", "G1c", "dirty-update",
                                     "incompatible-order"}
    assert not _rules_out(everything, "read-committed")


@pytest.mark.parametrize("workload", WORKLOADS)
def test_read_committed_store_shows_weaker_anomalies(workload):
    shown = set()
    for seed in range(3):
        history = simulate("read-committed", 300, workload=workload, seed=seed, keys=10)
        result = check(history, workload, consistency_models=["serializable"])
        assert result["valid"] is False
        shown |= _types(result)
    assert shown & {"G-single-item", "G2-item", "lost-update"}


@SETTINGS
@given(seed=seeds, workload=workloads)
def test_dirty_read_store(seed, workload):
    history = simulate("read-uncommitted", 250, workload=workload, seed=seed, keys=8)
    assert check(history, workload, consistency_models=["read-uncommitted"])["valid"] is True
    result = check(history, workload, consistency_models=["read-committed"])
    assert not _rules_out(result, "read-uncommitted")
    assert "G0" not in _types(result)


@pytest.mark.parametrize("workload", WORKLOADS)
def test_dirty_read_store_shows_aborted_and_intermediate_reads(workload):
    for seed in range(3):
        history = simulate("read-uncommitted", 300, workload=workload, seed=seed, keys=10)
        result = check(history, workload, consistency_models=["read-committed"])
        assert result["valid"] is False
        assert _types(result) & {"G1a", "G1b"}
        assert result["not"] == ["read-committed"]


@pytest.mark.parametrize("workload", WORKLOADS)
def test_planted_stale_reads_are_found(workload):
    """Reads that miss the last committed write: committed data only (read committed
    holds), but no order explains them all; a stale second read of a key inside one
    transaction is also `internal`, and a stale read before a write a `lost-update`."""
    for seed in range(3):
        history = simulate("serializable", 400, workload=workload, seed=seed, stale_rate=0.05,
                           keys=8)
        assert check(history, workload, consistency_models=["read-committed"])["valid"] is True
        result = check(history, workload, consistency_models=["strict-serializable"])
        assert result["valid"] is False
        assert _types(result) <= {"internal", "lost-update"} | {
            f"{base}{suffix}" for suffix in ("", "-realtime")
            for base in ("G-single-item", "G-nonadjacent-item", "G2-item")}


# A G1c history: T0 read y=[1] written by T1, and T1's append to x follows T0's.
G1C = [{"index": 0, "type": "ok", "process": 0, "value": [["append", "x", 1], ["r", "y", [1]]]},
       {"index": 1, "type": "ok", "process": 1, "value": [["append", "x", 2], ["append", "y", 1]]},
       {"index": 2, "type": "ok", "process": 2, "value": [["r", "x", [1, 2]], ["r", "y", [1]]]}]


def test_explanation_text_and_dot(tmp_path):
    result = ElleChecker("list-append", consistency_models=["serializable"]).check(
        G1C, {"out_dir": str(tmp_path)})
    assert result["valid"] is False and result["anomaly-types"] == ["G1c"]
    text = result["explanations"]["G1c"][0]
    assert text.startswith("G1c #1: a cycle of write-write and write-read dependencies")
    assert "T1 = op 1 by process 1 (ok): [append x 2, append y 1]" in text
    assert "T2 = op 0 by process 0 (ok): [append x 1, r y [1]]" in text
    assert ("1. T1 < T2 (wr): T2 read y = [1], which ends with T1's append of 1, "
            "so T2 saw T1's write.") in text
    assert ("2. T2 < T1 (ww): T2 appended 1 to x, and T1 appended 2 right after it "
            "in x's version order.") in text
    assert "T1 would have to precede itself" in text
    assert (tmp_path / "elle" / "G1c.txt").read_text().strip() == text
    dot = (tmp_path / "elle" / "G1c" / "1.dot").read_text()
    assert dot.startswith('digraph "G1c #1"')
    assert 'T1 -> T2 [label="wr y"' in dot and 'T2 -> T1 [label="ww x"' in dot
    if shutil.which("dot"):
        assert (tmp_path / "elle" / "G1c" / "1.svg").read_text().lstrip().startswith("<?xml")


def test_realtime_and_register_explanations():
    history = [{"index": 0, "type": "invoke", "process": 0, "value": [["w", "x", 1]]},
               {"index": 1, "type": "ok", "process": 0, "value": [["w", "x", 1]]},
               {"index": 2, "type": "invoke", "process": 1, "value": [["r", "x", None]]},
               {"index": 3, "type": "ok", "process": 1, "value": [["r", "x", None]]}]
    result = check(history, "rw-register")
    assert result["anomaly-types"] == ["G-single-item-realtime"]
    text = result["explanations"]["G-single-item-realtime"][0]
    assert "T1 read x = nil, and T2 wrote x = 1, the version after nil" in text
    assert "version order of x from: initial-state" in text
    assert "T2 completed (op 1) before T1 was invoked (op 2)" in text
    assert result["anomalies"]["G-single-item-realtime"][0]["steps"][1] == \
        {"type": "realtime", "a'": 1, "b": 2}


def test_non_cycle_anomalies_are_written_too(tmp_path):
    history = [{"index": 0, "type": "fail", "process": 0, "value": [["append", "x", 1]]},
               {"index": 1, "type": "ok", "process": 1, "value": [["r", "x", [1]]]}]
    result = check(history, "list-append", consistency_models=["read-committed"],
                   out_dir=str(tmp_path))
    assert result["anomalies"]["G1a"] == [{"op": 1, "mop": ["r", "x", [1]], "writer": 0,
                                           "element": 1}]
    text = (tmp_path / "elle" / "G1a.txt").read_text()
    assert text.startswith("G1a: aborted read")
    assert json.loads(text.splitlines()[2])["writer"] == 0


def test_timeout_makes_the_verdict_unknown_not_false():
    """A timed-out search still reports some cycle; when that cycle is not one the
    requested model forbids, only the timeout remains: unknown."""
    history = simulate("snapshot-isolation", 300, seed=1, write_skew=True, keys=6)
    result = check(history, "list-append", consistency_models=["read-committed"],
                   component_budget=0.0)
    assert result["valid"] == "unknown"
    assert "cycle-search-timeout" in result["anomaly-types"]


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown consistency model 'serialisable'"):
        ElleChecker("list-append", consistency_models=["serialisable"])
    with pytest.raises(ValueError, match="unknown workload"):
        ElleChecker("bank")
    with pytest.raises(ValueError, match="only apply to rw-register"):
        ElleChecker("list-append", wfr_keys=True)
    with pytest.raises(ValueError, match=r"op 7: list-append micro-ops are append and r"):
        check([{"index": 7, "type": "ok", "process": 0, "value": [["w", "x", 1]]}], "list-append")
    with pytest.raises(ValueError, match="unknown Elle options: colour"):
        check_elle([], "list-append", {"colour": 1})


def test_duplicate_appends_make_the_verdict_unknown():
    history = [{"index": 0, "type": "ok", "process": 0, "value": [["append", "x", 1]]},
               {"index": 1, "type": "ok", "process": 1, "value": [["append", "x", 1]]}]
    result = check(history, "list-append")
    assert result["valid"] == "unknown"
    assert "appended to key 'x' more than once" in result["error"]


def test_rw_register_options_reach_the_inference():
    history = [{"index": 0, "type": "ok", "process": 0,
                "value": [["r", "y", 1], ["w", "x", 1], ["w", "y", 2]]},
               {"index": 1, "type": "ok", "process": 0, "value": [["r", "x", 1], ["r", "y", 1]]}]
    plain = ElleChecker("rw-register", consistency_models=["serializable"])
    wfr = ElleChecker("rw-register", consistency_models=["serializable"], wfr_keys=True)
    assert plain.check(history, {})["valid"] is True
    assert wfr.check(history, {})["anomaly-types"] == ["G-single-item"]


def test_nemesis_and_non_txn_ops_are_ignored():
    history = [{"index": 0, "type": "info", "process": "nemesis", "f": "start-partition",
                "value": {"n1": ["n2"]}},
               *G1C[:2],
               {"index": 3, "type": "ok", "process": 5, "f": "read", "value": 3},
               G1C[2]]
    assert check(history, "list-append", consistency_models=["read-committed"])["anomaly-types"] == ["G1c"]
