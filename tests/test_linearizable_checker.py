"""LinearizableChecker: the API, the semantics of fail / info / nil, keys, budgets,
explanations and the HTML page, and the worker processes."""
import json
import os
import signal
import threading

import pytest

from checkers.linearizable import LinearizableChecker, explain_text
from checkers.linearizable import models as models_module
from checkers.linearizable import schedule
from checkers.linearizable.models import Register
from checkers.result import run_checkers


def history(*events):
    """(process, type, f, value) tuples as op dicts, indexed by position."""
    return [{"index": i, "process": p, "type": t, "f": f, "value": v}
            for i, (p, t, f, v) in enumerate(events)]


def check(h, model="cas-register", opts=None, **kw):
    kw.setdefault("time_limit", 30)
    return LinearizableChecker(model, **kw).check(h, opts or {})


def hard(n, key=None, first_index=0):
    """n concurrent writes, then a read of a value none wrote: not linearizable, and the
    search must try the writes' orders (about n * 2**(n-1) configurations) to know it."""
    wrap = (lambda v: [key, v]) if key is not None else (lambda v: v)
    events = [(p, "invoke", "write", wrap(p)) for p in range(n)]
    events += [(p, "ok", "write", wrap(p)) for p in range(n)]
    events += [(n, "invoke", "read", wrap(None)), (n, "ok", "read", wrap(99))]
    return events


STALE = history((0, "invoke", "write", 1), (0, "ok", "write", 1),
                (1, "invoke", "write", 2), (1, "ok", "write", 2),
                (2, "invoke", "read", None), (2, "ok", "read", 1))


def test_result_shape_and_the_checker_protocol():
    checker = LinearizableChecker("cas-register", initial=0)
    assert checker.name == "linearizable"
    result = checker.check(STALE, {})
    assert result["valid"] is False
    assert result["model"] == "cas-register"
    assert result["keys_checked"] == 1 and result["unknown_keys"] == []
    failure = result["failures"]["all"]
    assert failure["op"] == {"index": 5, "invoke_index": 4, "process": 2, "f": "read", "value": 1,
                             "type": "ok", "op": "read 1"}
    assert failure["previous_ok"]["index"] == 3
    assert [(x["n"], x["op"], x["state"]) for x in failure["linearized"]] == \
        [(1, "write 1", "the register holds 1"), (2, "write 2", "the register holds 2")]
    assert result["explanation"] == explain_text(result)
    assert "after write 2 by p1 [index 3] the register holds 2; read 1 by p2 [index 5] cannot follow" \
        in result["explanation"]
    json.dumps(result)
    composed = run_checkers({"linear": checker}, STALE, {"out_dir": None})
    assert composed["valid"] is False


def test_an_empty_or_trivial_history_is_linearizable():
    assert check([])["valid"] is True
    result = check(history((0, "invoke", "write", 1), (0, "ok", "write", 1)))
    assert result["valid"] is True
    assert result["explanation"].startswith("Linearizable (model cas-register, 1 key, 1 ops checked)")


def test_failed_ops_never_happened_unless_cas_failures_are_observations():
    h = history((0, "invoke", "write", 1), (0, "ok", "write", 1),
                (1, "invoke", "cas", [2, 3]), (1, "fail", "cas", [2, 3]),
                (2, "invoke", "write", 5), (2, "fail", "write", 5),
                (3, "invoke", "read", None), (3, "ok", "read", 1))
    assert check(h)["valid"] is True
    assert check(h, fail_cas="observed")["valid"] is True
    # A CAS from 1 that failed, although the register surely held 1: an anomaly only
    # when a failed CAS means "saw another value".
    h2 = history((0, "invoke", "write", 1), (0, "ok", "write", 1),
                 (1, "invoke", "cas", [1, 3]), (1, "fail", "cas", [1, 3]))
    assert check(h2)["valid"] is True
    result = check(h2, fail_cas="observed")
    assert result["valid"] is False
    assert "cas 1->3 (failed: saw another value) by p1 [index 3] cannot be linearized" in result["explanation"]
    with pytest.raises(ValueError, match="fail_cas must be one of ignored, observed"):
        LinearizableChecker("cas-register", fail_cas="sometimes")


def test_info_ops_take_effect_any_time_after_invocation_or_never():
    later = history((0, "invoke", "write", 7), (0, "info", "write", 7),
                    (1, "invoke", "read", None), (1, "ok", "read", 0),
                    (1, "invoke", "read", None), (1, "ok", "read", 7))
    assert check(later, initial=0)["valid"] is True
    never = history((0, "invoke", "write", 7), (0, "info", "write", 7),
                    (1, "invoke", "read", None), (1, "ok", "read", 0))
    assert check(never, initial=0)["valid"] is True
    not_before = history((1, "invoke", "read", None), (1, "ok", "read", 7),
                         (0, "invoke", "write", 7), (0, "info", "write", 7))
    assert check(not_before, initial=0)["valid"] is False
    open_forever = history((0, "invoke", "write", 7), (1, "invoke", "read", None), (1, "ok", "read", 7))
    result = check(open_forever, initial=0)
    assert result["valid"] is True


def test_nil_reads_depend_on_the_option():
    h = history((0, "invoke", "write", 1), (0, "ok", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", None))
    assert check(h, nil_read="unknown")["valid"] is True
    result = check(h, nil_read="absent")
    assert result["valid"] is False
    assert "read nil by p1 [index 3] cannot be linearized" in result["explanation"]
    assert check(h[2:], nil_read="absent")["valid"] is True


def test_nemesis_ops_and_lone_infos_are_ignored():
    h = [{"process": "nemesis", "type": "info", "f": "start-partition", "value": {"n1": ["n2"]}},
         {"process": "nemesis", "type": "invoke", "f": "kill", "value": None},
         *history((0, "invoke", "write", 1), (0, "ok", "write", 1)),
         {"process": "nemesis", "type": "info", "f": "kill", "value": ["n1"]},
         {"process": 9, "type": "info", "f": "read", "value": None}]
    result = check(h)
    assert result["valid"] is True
    assert result["left_out"]["nemesis_and_lone_info"] == 4


def test_independent_keys_are_checked_apart_and_named_as_strings(tmp_path):
    h = history((0, "invoke", "write", [1, 5]), (0, "ok", "write", [1, 5]),
                (1, "invoke", "write", ["k b", 5]), (1, "ok", "write", ["k b", 5]),
                (0, "invoke", "read", [1, None]), (0, "ok", "read", [1, 5]),
                (1, "invoke", "read", ["k b", None]), (1, "ok", "read", ["k b", 6]),
                (2, "invoke", "cas", [1, [5, 6]]), (2, "ok", "cas", [1, [5, 6]]))
    result = check(h, initial=0, independent=True, opts={"out_dir": str(tmp_path)})
    assert result["valid"] is False
    assert result["keys_checked"] == 2
    assert list(result["failures"]) == ["k b"]
    assert result["failures"]["k b"]["op"]["value"] == 6
    page = tmp_path / "linear" / "k_b.html"
    assert result["failures"]["k b"]["html"] == str(page)
    assert page.exists()
    json.dumps(result)


def test_kv_splits_on_the_key_field():
    h = [{"process": 0, "type": "invoke", "f": "append", "key": "a", "value": "x"},
         {"process": 0, "type": "ok", "f": "append", "key": "a", "value": "x"},
         {"process": 0, "type": "invoke", "f": "get", "key": "b", "value": None},
         {"process": 0, "type": "ok", "f": "get", "key": "b", "value": ""},
         {"process": 0, "type": "invoke", "f": "get", "key": "a", "value": None},
         {"process": 0, "type": "ok", "f": "get", "key": "a", "value": "xx"}]
    result = check(h, model="kv")
    assert result["keys_checked"] == 2
    assert list(result["failures"]) == ["a"]
    assert "get 'xx' by p0 [index 5] cannot be linearized" in result["explanation"]


@pytest.mark.parametrize("events,message", [
    ([(0, "invoke", "write", 1), (0, "invoke", "write", 2)],
     "op 1: process 0 invokes 'write' while its op at op 0 is still open"),
    ([(0, "invoke", "write", 1), (0, "done", "write", 1)], "op 1: unknown op type 'done'"),
    ([(0, "invoke", "frob", 1), (0, "ok", "frob", 1)], "op 0: model cas-register has no operation 'frob'"),
])
def test_malformed_histories_raise_one_clear_error(events, message):
    with pytest.raises(ValueError, match=message):
        check(history(*events))


def test_independent_values_must_be_pairs():
    with pytest.raises(ValueError, match=r"op 0: with independent keys a value must be \[key, value\], got 3"):
        check(history((0, "invoke", "write", 3), (0, "ok", "write", 3)), independent=True)


def test_time_limit_gives_unknown_not_a_hang():
    result = check(history(*hard(14)), time_limit=0)
    assert result["valid"] == "unknown"
    assert result["unknown_keys"] == ["all"]
    assert result["unknown_reasons"]["all"].startswith("time limit reached")
    assert "Unknown (model cas-register): 1 of 1 key could not be decided" in result["explanation"]


def test_memory_budget_gives_unknown_not_an_out_of_memory_kill():
    result = check(history(*hard(14)), max_cache_entries=5000)
    assert result["valid"] == "unknown"
    assert result["unknown_reasons"]["all"].startswith("memory budget reached")
    assert result["configurations"] < 20_000


def test_memory_growth_gives_unknown_not_an_out_of_memory_kill():
    # In a fresh process: in a long test session the search's growth can be served from
    # memory earlier tests freed, and the process's resident size would not move.
    import json
    import subprocess
    import sys
    from tests.conftest import ROOT
    code = ("import json\n"
            "from checkers.linearizable import checker\n"
            "checker.MEMORY_BUDGET = 4 << 20\n"
            "from tests.test_linearizable_checker import check, hard, history\n"
            "r = check(history(*hard(15)))\n"
            "print(json.dumps([r['valid'], r.get('unknown_reasons', {}).get('all', '')]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    valid, reason = json.loads(out.stdout.splitlines()[-1])
    assert valid == "unknown"
    assert reason.startswith("memory budget reached: the search grew past 4 MiB"), reason


def test_a_hard_history_is_decided_within_the_budget():
    result = check(history(*hard(10)))
    assert result["valid"] is False
    assert result["failures"]["all"]["op"]["value"] == 99


def test_once_a_key_fails_hard_keys_are_not_searched_to_the_end(monkeypatch):
    monkeypatch.setattr(schedule, "FIRST_SLICE", 8192)
    monkeypatch.setattr(schedule, "AFTER_FAILURE", 4096)
    events = hard(13, key="hard") + [(100, "invoke", "write", ["easy", 1]), (100, "ok", "write", ["easy", 1]),
                                     (101, "invoke", "read", ["easy", None]), (101, "ok", "read", ["easy", 2])]
    result = check(history(*events), independent=True, processes=1)
    assert result["valid"] is False
    assert list(result["failures"]) == ["easy"]
    assert result["unknown_keys"] == ["hard"]
    assert "already known not to be linearizable" in result["unknown_reasons"]["hard"]


def test_stopping_at_the_first_failure_leaves_the_other_keys_unsearched():
    # A hard key (smaller, so searched first), then a long easy one that fails: stopping
    # at the first failure, the hard key gets only a first short slice, not its whole
    # search, and a key that would fail later is not reached at all.
    long_easy = [(100 + i, t, "write", ["easy", i]) for i in range(30) for t in ("invoke", "ok")]
    long_easy += [(200, "invoke", "read", ["easy", None]), (200, "ok", "read", ["easy", 3])]
    later = [(300 + i, t, "write", ["later", i]) for i in range(40) for t in ("invoke", "ok")]
    later += [(400, "invoke", "read", ["later", None]), (400, "ok", "read", ["later", 5])]
    events = hard(14, key="hard") + long_easy + later
    every = check(history(*events), independent=True, processes=1)
    first = check(history(*events), independent=True, processes=1, failures="first")
    assert sorted(every["failures"]) == ["easy", "later"]   # the hard key: cut at AFTER_FAILURE
    assert first["valid"] is False
    assert list(first["failures"]) == ["easy"]
    assert first["failures"]["easy"] == every["failures"]["easy"]
    assert sorted(first["unknown_keys"]) == ["hard", "later"]
    assert all("already known not to be linearizable" in r for r in first["unknown_reasons"].values())
    assert first["configurations"] < every["configurations"] / 4
    assert first["options"]["failures"] == "first"
    with pytest.raises(ValueError, match="failures must be one of all, first"):
        LinearizableChecker("cas-register", failures="some")


def test_html_page_shows_the_failure_on_a_timeline(tmp_path):
    h = [dict(op, time=1000 * op["index"]) for op in STALE]
    result = check(h, opts={"out_dir": str(tmp_path)})
    page = (tmp_path / "linear" / "all.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "CANNOT BE LINEARIZED: read 1 by p2 [index 5]" in page
    assert "#2 write 2 by p1 [index 3]\nafter it: the register holds 2" in page
    assert "invoked at time 2000, completed at 3000" in page
    assert page.count('class="op ') == 3
    assert "Timeline: " + str(tmp_path / "linear" / "all.html") in result["explanation"]
    positions = check(STALE, opts={"out_dir": str(tmp_path / "p")})
    assert "invoked at position 2, completed at 3" in (tmp_path / "p" / "linear" / "all.html").read_text()
    assert positions["valid"] is False


def test_explain_text_of_each_verdict():
    assert explain_text({"valid": True, "model": "mutex", "keys_checked": 2, "ops_checked": 7}) == \
        "Linearizable (model mutex, 2 keys, 7 ops checked)."
    text = explain_text({"valid": "unknown", "model": "set", "keys_checked": 1, "unknown_keys": ["all"],
                         "unknown_reasons": {"all": "time limit reached after 4096 configurations"}})
    assert text.splitlines() == ["Unknown (model set): 1 of 1 key could not be decided.",
                                 "key all: undecided (time limit reached after 4096 configurations)."]
    # keys undecided for one reason are named on one line, not one line each
    keys = [f"k{i}" for i in range(12)]
    text = explain_text({"valid": False, "model": "set", "keys_checked": 13, "failures": {},
                         "unknown_keys": keys, "unknown_reasons": {k: "stopped" for k in keys}})
    assert text.splitlines()[1:] == ["12 keys undecided (stopped): k0, k1, k2, k3, k4, k5, k6, k7, ..."]


def _can_fork():
    return "fork" in __import__("multiprocessing").get_all_start_methods() and threading.active_count() == 1


@pytest.mark.skipif(not _can_fork(), reason="needs fork and no other threads")
def test_worker_processes_give_the_same_verdicts(monkeypatch):
    monkeypatch.setattr(schedule, "PARALLEL_MIN_CALLS", 0)
    forked = []
    real = schedule._decide_forked
    monkeypatch.setattr(schedule, "_decide_forked", lambda *a: forked.append(a[4]) or real(*a))   # workers
    events = hard(8, key="x") + [(50, "invoke", "write", ["y", 1]), (50, "ok", "write", ["y", 1]),
                                 (51, "invoke", "read", ["y", None]), (51, "ok", "read", ["y", 1])]
    here = check(history(*events), independent=True, processes=1)
    there = check(history(*events), independent=True, processes=2)
    assert forked == [2]
    assert there["valid"] is here["valid"] is False
    assert there["failures"] == here["failures"]
    assert there["unknown_keys"] == here["unknown_keys"] == []


class _Crashing(Register):
    """A register whose process dies when asked to write 13, like one killed for memory."""

    def step(self, state, inp, out):
        if inp == ("write", 13):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step(state, inp, out)


@pytest.mark.skipif(not _can_fork(), reason="needs fork and no other threads")
def test_a_dead_worker_leaves_its_keys_unknown(monkeypatch):
    monkeypatch.setattr(schedule, "PARALLEL_MIN_CALLS", 0)
    monkeypatch.setitem(models_module.MODELS, "crashing", lambda initial=None, nil_read="unknown": _Crashing(initial))
    events = [(0, "invoke", "write", ["a", 13]), (0, "ok", "write", ["a", 13]),
              (1, "invoke", "write", ["b", 1]), (1, "ok", "write", ["b", 1])]
    result = check(history(*events), model="crashing", independent=True, processes=2)
    assert result["valid"] == "unknown"
    assert result["unknown_keys"] == ["a"]
    assert "died (exit code -9)" in result["unknown_reasons"]["a"]


@pytest.mark.parametrize("ops", [
    [{"process": 0, "type": "invoke", "f": "read"}, ["not", "a", "map"]],
    [{"process": 0, "type": "invoke", "f": "read"}, {"process": [0], "type": "invoke", "f": "read"}],
    [{"process": 0, "type": "invoke", "f": "read"}, {"process": 0, "type": "invoke", "f": "read"}],
    [{"process": "nemesis", "type": "invoke", "f": "kill"}, {"process": "nemesis", "type": "invoke", "f": "kill"}],
    [{"process": 1, "type": "ok", "f": "read", "value": 0}, {"process": 1, "type": "done", "f": "read"}],
])
def test_prepare_rejects_what_pairing_rejects_with_its_words(ops):
    # prepare pairs ops in its own pass; its errors must be core.history.pair's own.
    from core.history import HistoryError, pair
    with pytest.raises(HistoryError) as by_pairing:
        pair(ops)
    with pytest.raises(HistoryError) as by_checker:
        check(ops)
    assert str(by_checker.value) == str(by_pairing.value)


def test_prepare_pairs_as_core_history_does():
    # Nemesis ops, lone completions (ok and info), never-completed and failed ops,
    # interleaved over processes: every call's invocation and completion are pair()'s.
    import random
    from checkers.linearizable.calls import prepare
    from core.history import NO_PARTNER, pair
    rng = random.Random(7)
    ops, open_ = [], set()
    for _ in range(400):
        p = rng.choice([0, 1, 2, 3, "nemesis"])
        if p in open_:
            t = rng.choice(["ok", "info", "fail"]) if p != "nemesis" else "info"
            open_.discard(p)
        elif rng.random() < 0.1:
            t = rng.choice(["ok", "info"])   # a lone completion
        else:
            t = "invoke"
            open_.add(p)
        f = rng.choice(["read", "write"])
        ops.append({"process": p, "type": t, "f": "kill" if p == "nemesis" else f,
                    "value": rng.randrange(3) if f == "write" or t == "ok" else None})
    partner = pair(ops).partner
    prepared = prepare(ops, Register(), fail_cas="ignored")
    want = []
    for i, op in enumerate(ops):
        if op["process"] == "nemesis" or op["type"] == "fail":
            continue
        if op["type"] == "invoke":
            j = partner[i]
            if j == NO_PARTNER or ops[j]["type"] != "fail":
                want.append((i, None if j == NO_PARTNER else j))
        elif partner[i] == NO_PARTNER and op["type"] != "info":
            want.append((NO_PARTNER, i))
    got = [(c.inv, c.end) for c in prepared.keys["all"]] if prepared.keys else []
    # a timed-out read is left out (legal everywhere): drop those from what we want
    skipped = {(c_inv, c_end) for c_inv, c_end in want
               if ops[c_inv if c_inv != NO_PARTNER else c_end]["f"] == "read"
               and (c_end is None or ops[c_end]["type"] == "info")}
    assert got == [w for w in want if w not in skipped]
    nemesis = sum(op["process"] == "nemesis" for op in ops)
    lone_infos = sum(op["type"] == "info" and op["process"] != "nemesis" and partner[i] == NO_PARTNER
                     for i, op in enumerate(ops))
    assert prepared.ignored == nemesis + lone_infos
    assert prepared.skipped_unknown == len(skipped)


def test_worker_processes_only_on_idle_cpus(monkeypatch):
    # "as many as pay": a worker on a CPU that is busy anyway does not pay; asked for
    # explicitly, workers are started whatever the load.
    keys = {str(k): [None] * (schedule.PARALLEL_MIN_CALLS // 4 + 1) for k in range(4)}
    monkeypatch.setattr(schedule.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(schedule.threading, "active_count", lambda: 1)
    monkeypatch.setattr(schedule.os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    assert schedule._worker_count(keys, None) == 2
    monkeypatch.setattr(schedule.os, "getloadavg", lambda: (2.6, 2.0, 1.0))
    assert schedule._worker_count(keys, None) == 1
    assert schedule._worker_count(keys, 2) == 2
