"""The columnar list-append engine gives the reference engine's results on every history:
Elle's own cases (../shared/conformance/elle), generated histories with planted anomalies
of every kind, and the same histories streamed from a history.jsonl (check_path), down to
the cycles, their explanations and the files written for them."""
from __future__ import annotations

import json

import pytest

from checkers.elle import check, check_elle, check_path
from checkers.elle.columnar import Fallback, analyse_history
from core.history import write_jsonl
from testkit.txn_stores import simulate
from tests.conftest import conformance_files
from tests.test_elle_conformance import _history

CASES = [json.loads(line) for path in conformance_files("elle/cases.jsonl")
         for line in path.read_text().splitlines() if line.strip()]
LIST_APPEND_CHECKS = [pytest.param(case, i, id=f"{case['id']}[{i}]")
                      for case in CASES if case["workload"] == "list-append"
                      for i in range(len(case["checks"]))
                      if case["checks"][i].get("function") != "internal-cases"]
ALL_MODELS = ["strict-serializable", "strong-session-serializable", "serializable",
              "snapshot-isolation", "repeatable-read", "read-committed", "read-uncommitted"]


def _comparable(result: dict) -> dict:
    """The result as JSON, without what may differ between runs (seconds, engine name)."""
    result = json.loads(json.dumps(result))
    result.get("stats", {}).pop("seconds", None)
    result.get("stats", {}).pop("engine", None)
    return result


def _both(history: list[dict], **opts) -> tuple[dict, dict]:
    reference = check(history, "list-append", engine="reference", **opts)
    columnar = check(history, "list-append", engine="columnar", **opts)
    assert reference.get("stats", {}).get("engine", "reference") == "reference"
    return reference, columnar


@pytest.mark.parametrize("case,i", LIST_APPEND_CHECKS)
def test_engines_agree_on_elle_cases(conformance, case, i):
    opts = dict(case["checks"][i]["opts"] or {})
    opts.pop("directory", None)  # files are compared below, on planted histories
    history = _history(case, conformance)
    reference = check_elle(history, "list-append", opts, engine="reference")
    columnar = check_elle(history, "list-append", opts, engine="columnar")
    assert _comparable(columnar) == _comparable(reference)


def test_the_columnar_engine_itself_checks_most_elle_cases(conformance):
    """The comparison above would be empty if every case fell back to the reference."""
    native = 0
    for case in CASES:
        if case["workload"] != "list-append":
            continue
        try:
            analyse_history(_history(case, conformance))
            native += 1
        except Fallback:
            pass
    assert native >= 10, native


# -- planted anomalies ------------------------------------------------------------------

def _ok(*mops) -> dict:
    return {"type": "ok", "f": "txn", "value": [list(m) for m in mops]}


def _fail(*mops) -> dict:
    return {"type": "fail", "f": "txn", "value": [list(m) for m in mops]}


# Each plant: transactions on fresh keys (completions only, each its own process), the
# anomaly the checker must report, and whether the columnar engine holds the history
# itself (False: it goes to the reference engine, see columnar.py).
PLANTS = {
    "G0": ([_ok(("append", "x", 1), ("append", "y", 1)), _ok(("append", "x", 2), ("append", "y", 2)),
            _ok(("r", "x", [1, 2]), ("r", "y", [2, 1]))], True),
    "G1c": ([_ok(("append", "x", 1), ("r", "y", [1])), _ok(("append", "y", 1), ("r", "x", [1]))], True),
    "G1b": ([_ok(("append", "x", 1), ("append", "x", 2)), _ok(("r", "x", [1]))], True),
    "G-single-item": ([_ok(("append", "x", 1), ("append", "y", 1)), _ok(("r", "x", []), ("r", "y", [1]))],
                      True),
    "G2-item": ([_ok(("r", "x", []), ("append", "y", 1)), _ok(("r", "y", []), ("append", "x", 1)),
                 _ok(("r", "x", [1]), ("r", "y", [1]))], True),
    "internal": ([_ok(("append", "x", 1), ("r", "x", []))], True),
    "future-read": ([_ok(("r", "x", [1]), ("append", "x", 1))], True),
    "lost-update": ([_ok(("r", "x", []), ("append", "x", 1)), _ok(("r", "x", []), ("append", "x", 2)),
                     _ok(("r", "x", [1, 2]))], True),
    "G1a": ([_fail(("append", "x", 1)), _ok(("r", "x", [1]))], False),
    "dirty-update": ([_fail(("append", "x", 1)), _ok(("append", "x", 2)), _ok(("r", "x", [1, 2]))], False),
    "incompatible-order": ([_ok(("append", "x", 1), ("append", "x", 2)), _ok(("r", "x", [1])),
                            _ok(("r", "x", [2]))], False),
    "duplicate-elements": ([_ok(("append", "x", 1)), _ok(("r", "x", [1, 1]))], False),
}


def _planted(kind: str, seed: int) -> list[dict]:
    """A serializable background with stale reads (cycles of its own) and the plant."""
    history = simulate("serializable", 300, seed=seed, stale_rate=0.01, info_rate=0.05)
    plant, _ = PLANTS[kind]
    for op in plant:
        op = json.loads(json.dumps(op))
        op["value"] = [[f, f"{kind}-{k}", v] for f, k, v in op["value"]]
        op["process"] = 1000 + len(history)
        op["index"] = len(history)
        history.append(op)
    return history


@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_engines_agree_on_planted_anomalies(kind, tmp_path):
    native = PLANTS[kind][1]
    for seed in range(2):
        history = _planted(kind, seed)
        for models in (["strict-serializable"], ["strong-session-serializable"], ALL_MODELS):
            reference, columnar = _both(history, consistency_models=models,
                                        anomalies=[kind])
            assert kind in reference["anomaly-types"]
            assert columnar["stats"]["engine"] == ("columnar" if native else "reference")
            assert _comparable(columnar) == _comparable(reference)
        path = tmp_path / f"{kind}-{seed}.jsonl"
        write_jsonl(history, str(path))
        streamed = check_path(str(path), "list-append", anomalies=[kind])
        assert streamed["stats"]["engine"] == ("columnar" if native else "reference")
        assert _comparable(streamed) == _comparable(check(history, "list-append", anomalies=[kind],
                                                          engine="reference"))


@pytest.mark.parametrize("store,opts", [
    ("serializable", {}), ("serializable", {"stale_rate": 0.02, "info_rate": 0.1}),
    ("snapshot-isolation", {"write_skew": True}), ("read-committed", {}),
    ("read-uncommitted", {})])
def test_engines_agree_on_simulated_stores(store, opts):
    for seed in range(2):
        history = simulate(store, 1500, seed=seed, **opts)
        for models in (["strict-serializable"], ["strong-session-serializable"], ALL_MODELS):
            reference, columnar = _both(history, consistency_models=models)
            assert _comparable(columnar) == _comparable(reference)


def test_engines_write_the_same_files(tmp_path):
    history = simulate("serializable", 2000, seed=3, stale_rate=0.02)
    path = tmp_path / "history.jsonl"
    write_jsonl(history, str(path))
    runs = {"reference": lambda out: check(history, "list-append", engine="reference", out_dir=out),
            "columnar": lambda out: check(history, "list-append", engine="columnar", out_dir=out),
            "streamed": lambda out: check_path(str(path), "list-append", out_dir=out)}
    files = {}
    for name, run in runs.items():
        out = tmp_path / name
        result = run(str(out))
        assert result["valid"] is False
        files[name] = {p.relative_to(out).as_posix(): p.read_bytes()
                       for p in sorted((out / "elle").rglob("*")) if p.is_file()}
    assert any(name.endswith(".dot") for name in files["reference"])
    assert files["columnar"] == files["reference"]
    assert files["streamed"] == files["reference"]


def test_a_streamed_history_with_bad_lines_names_the_line(tmp_path):
    from core.history import HistoryError
    path = tmp_path / "history.jsonl"
    lines = [json.dumps({"index": i, "type": "ok", "process": 0, "f": "txn",
                         "value": [["append", "x", i]]}) for i in range(5)]
    lines[3] = "{not json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HistoryError, match=r"history.jsonl:4: not valid JSON"):
        check_path(str(path), "list-append")


def test_a_torn_last_line_is_dropped_as_read_jsonl_does(tmp_path):
    history = simulate("serializable", 200, seed=1, stale_rate=0.05)
    path = tmp_path / "history.jsonl"
    write_jsonl(history, str(path))
    with open(path, "a") as f:
        f.write('{"index": 99999, "type": "ok", "proc')
    assert _comparable(check_path(str(path), "list-append")) == \
        _comparable(check(history, "list-append", engine="reference"))


def _outcome(history, engine):
    try:
        return _comparable(check(history, "list-append", engine=engine,
                                 consistency_models=["strict-serializable"]))
    except Exception as e:  # the same error, word for word, is the same outcome
        return type(e).__name__, str(e)


def _odd_histories():
    base = simulate("serializable", 60, seed=2, stale_rate=0.1, info_rate=0.1)

    def edited(edit):
        history = json.loads(json.dumps(base))
        edit(history)
        return history

    def at_ok(history, fn):
        fn(next(op for op in history if op["type"] == "ok" and len(op["value"]) > 1))

    def mops(history):
        return [m for op in history if op["type"] == "ok" for m in op["value"]]

    def interleave(history):
        history.insert(7, {"type": "info", "process": "nemesis", "f": "start-partition",
                           "value": {"n1": ["n2"]}})
        history.insert(9, {"type": "invoke", "process": 77, "f": "read", "value": None})
        history.insert(12, {"type": "ok", "process": 77, "f": "read", "value": 3})

    def anonymous(history):
        history[:] = [op for op in history if op["type"] != "invoke"]
        for op in history:
            del op["process"], op["index"]

    yield "nemesis and other ops between", edited(interleave)
    yield "string keys", edited(lambda h: [m.__setitem__(1, f"k{m[1]}") for m in mops(h)])
    yield "no process, no index", edited(anonymous)
    yield "completions only", [op for op in base if op["type"] != "invoke"]
    yield "tuple micro-ops", edited(lambda h: at_ok(h, lambda op: op.__setitem__(
        "value", [tuple(m) for m in op["value"]])))
    yield "float value", edited(lambda h: at_ok(h, lambda op: op["value"].__setitem__(
        0, ["append", op["value"][0][1], 1.5])))
    yield "huge value", edited(lambda h: at_ok(h, lambda op: op["value"].__setitem__(
        0, ["append", op["value"][0][1], 2**70])))
    yield "negative value", edited(lambda h: at_ok(h, lambda op: op["value"].__setitem__(
        0, ["append", op["value"][0][1], -1])))
    yield "a pair micro-op", edited(lambda h: at_ok(h, lambda op: op["value"].__setitem__(0, ["r", 1])))
    yield "unknown micro-op", edited(lambda h: at_ok(h, lambda op: op["value"].__setitem__(
        0, ["w", 1, 1])))
    yield "value not a list", edited(lambda h: at_ok(h, lambda op: op.__setitem__("value", 7)))
    yield "process invokes twice", edited(lambda h: h.insert(1, dict(h[0])))
    yield "unknown type", edited(lambda h: h[3].__setitem__("type", "done"))
    yield "string process", edited(lambda h: [op.__setitem__("process", f"c{op['process']}") for op in h])
    yield "never completed", base[:-1]


@pytest.mark.parametrize("name,history", list(_odd_histories()), ids=[n for n, _ in _odd_histories()])
def test_engines_agree_on_odd_histories(name, history):
    assert _outcome(history, "columnar") == _outcome(history, "reference")
