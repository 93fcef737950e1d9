"""Failed keys named in the user's terms (checkers/linearizable/anomaly.py), on planted
register histories with nodes, times and a fault, through the real checker."""
from __future__ import annotations

from checkers.linearizable import LinearizableChecker

S = 1_000_000_000  # history times are ns since the test began


def _op(process, type_, f, value, t, node=None):
    op = {"process": process, "type": type_, "f": f, "value": value, "time": int(t * S)}
    if node is not None:
        op["node"] = node
    return op


def _call(process, f, value, result, t0, t1, node, kind="ok"):
    return [_op(process, "invoke", f, value, t0, node), _op(process, kind, f, result, t1, node)]


def _partition_from(t):
    return [_op("nemesis", "invoke", "start-partition", None, t),
            _op("nemesis", "info", "start-partition",
                {"shape": "isolate", "grudge": {"n2": ["n1", "n3"]}}, t + 0.01)]


def _check(history, tmp_path):
    return LinearizableChecker("cas-register", independent=True).check(
        history, {"out_dir": str(tmp_path)})


def test_a_stale_read_names_the_node_the_values_and_the_fault_in_force(tmp_path):
    history = (_call(0, "write", ["k", 1], ["k", 1], 1.0, 1.1, "n1")
               + _partition_from(1.5)
               + _call(0, "write", ["k", 4], ["k", 4], 2.0, 2.1, "n1")
               + _call(1, "read", ["k", None], ["k", 1], 3.0, 3.1, "n2"))
    result = _check(history, tmp_path)
    assert result["valid"] is False
    anomaly = result["failures"]["k"]["anomaly"]
    assert (anomaly["kind"], anomaly["node"], anomaly["returned"], anomaly["current"]) == \
        ("stale read", "n2", 1, 4)
    assert anomaly["current_written"] == 2.1 and anomaly["read_began"] == 3.0
    [fault] = anomaly["faults"]
    assert fault["kind"] == "partition" and fault["on_node"] and fault["since"] == 1.51
    assert fault["cut_off_from"] == ["n1", "n3"]
    for text in (result["explanation"], open(result["failures"]["k"]["html"]).read()):
        assert "stale read: read 1 by p1" in text
        assert "on n2 at 3.000 s returned 1, but 4 had been written (write 4 by p0" in text
        assert "partition since 1.510 s: n2 cut off from n1, n3" in text
    page = open(result["failures"]["k"]["html"]).read()
    assert ">p1 n2</text>" in page and ">p0 n1</text>" in page  # each process's node
    assert ">read 1</text>" in page  # the failing op's words, uncut


def test_a_fault_that_does_not_name_the_node_is_listed_as_it_was_done(tmp_path):
    history = (_call(0, "write", ["k", 1], ["k", 1], 1.0, 1.1, "n1")
               + [_op("nemesis", "info", "start-clock", {"n4": 30}, 1.2)]
               + _call(0, "write", ["k", 4], ["k", 4], 2.0, 2.1, "n1")
               + _call(1, "read", ["k", None], ["k", 1], 3.0, 3.1, "n2"))
    anomaly = _check(history, tmp_path)["failures"]["k"]["anomaly"]
    assert anomaly["kind"] == "stale read" and not anomaly["faults"][0]["on_node"]
    assert 'in force: clock since 1.200 s ({"n4":30})' in anomaly["text"]


def test_a_read_of_a_value_nobody_wrote_is_named_so(tmp_path):
    history = (_call(0, "write", ["k", 1], ["k", 1], 1.0, 1.1, "n1")
               + _call(1, "read", ["k", None], ["k", 9], 2.0, 2.1, "n3"))
    anomaly = _check(history, tmp_path)["failures"]["k"]["anomaly"]
    assert anomaly["kind"] == "read of a value never written" and anomaly["node"] == "n3"
    assert anomaly["faults"] == [] and "no fault was in force" in anomaly["text"]


def test_a_read_is_not_called_stale_when_its_value_may_still_have_been_current(tmp_path):
    # write 4 runs across everything, so after reading 4 no later read of 1 fits; but the
    # last write completed before the second read is write 1 itself: not provably stale.
    history = ([_op(2, "invoke", "write", ["k", 4], 0.5, "n1")]
               + _call(0, "write", ["k", 1], ["k", 1], 0.0, 1.0, "n1")
               + _call(1, "read", ["k", None], ["k", 4], 2.0, 2.1, "n2")
               + _call(1, "read", ["k", None], ["k", 1], 3.0, 3.1, "n2")
               + [_op(2, "ok", "write", ["k", 4], 5.0, "n1")])
    result = _check(history, tmp_path)
    assert result["valid"] is False
    assert result["failures"]["k"]["anomaly"] is None


def test_a_write_of_unknown_outcome_keeps_the_old_value_possible(tmp_path):
    # The write of 1 timed out: it may take effect at any time, so reading 1 after 4 is
    # linearizable, and nothing is named.
    history = (_call(0, "write", ["k", 1], ["k", 1], 1.0, 1.1, "n1", kind="info")
               + _call(3, "write", ["k", 4], ["k", 4], 2.0, 2.1, "n1")
               + _call(1, "read", ["k", None], ["k", 1], 3.0, 3.1, "n2"))
    assert _check(history, tmp_path)["valid"] is True
