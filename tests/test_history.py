import json
import os
import signal
import subprocess
import sys

import pytest

from core.history import (HistoryError, HistoryWriter, load_history, pair, read_jsonl,
                             validate, write_edn_history)
from core.history.edn import EdnSet, Keyword, dumps, loads, parse_edn
from tests.conftest import ROOT, conformance_files


def test_edn_values():
    v = loads('{:a [1 -2 3.5 nil true "s\\"q\\n"] :b #{1 2} :c (x y) :d \\a #_ :gone :e 7N}')
    assert v["a"] == [1, -2, 3.5, None, True, 's"q\n']
    assert isinstance(v["b"], EdnSet) and sorted(v["b"]) == [1, 2]
    assert v["d"] == "a" and v["e"] == 7 and "gone" not in v.values()
    assert isinstance(next(iter(v)), Keyword) and v["c"] == ["x", "y"]


def test_edn_errors_name_the_line(tmp_path):
    p = tmp_path / "h.edn"
    p.write_text('{:type :invoke, :process 0, :f :read}\n{:type :ok, :process 0\n')
    with pytest.raises(HistoryError, match=r"h.edn:2: '\{' is never closed"):
        load_history(str(p))


def _edn_corpus():
    """Every EDN history of the corpus; the 20,602-op one is marked slow."""
    files = conformance_files("knossos/**/*.edn") + conformance_files("elle/histories/*.edn")
    return [pytest.param(p, id=p.name, marks=[pytest.mark.slow] if p.stat().st_size > 1_000_000 else [])
            for p in files]


@pytest.mark.parametrize("path", _edn_corpus())
def test_edn_round_trip_on_conformance_files(path, tmp_path):
    h = load_history(str(path))
    assert len(h) > 0
    out = tmp_path / "again.edn"
    write_edn_history(h, str(out))
    again = load_history(str(out))
    assert list(again) == list(h)
    # keywords stay keywords through the round trip
    assert dumps(again[0]["type"]).startswith(":")
    jsonl = path.with_suffix(".jsonl")
    if jsonl.exists():  # the corpus's JSON copy says the same as its EDN
        assert [json.loads(json.dumps(op)) for op in h] == list(read_jsonl(str(jsonl)))


def test_edn_round_trip_from_jsonl(tmp_path):
    ops = [{"index": 0, "time": 5, "type": "invoke", "process": 3, "f": "cas", "value": ["k7", [1, 4]]},
           {"index": 1, "time": 9, "type": "ok", "process": 3, "f": "cas", "value": ["k7", [1, 4]], "node": "n2"},
           {"index": 2, "time": 11, "type": "info", "process": "nemesis", "f": "start-partition",
            "value": {"n1": ["n3", "n4"]}}]
    write_edn_history(ops, str(tmp_path / "h.edn"))
    assert list(load_history(str(tmp_path / "h.edn"))) == ops


def test_validation_errors_name_the_line(tmp_path):
    cases = {
        "two open": ['{"type":"invoke","process":1,"f":"read"}', '{"type":"invoke","process":1,"f":"write"}'],
        "process": ['{"type":"invoke","process":1,"f":"read"}', '{"type":"ok","process":[2],"f":"read"}'],
        "type": ['{"type":"invoke","process":1,"f":"read"}', '{"type":"done","process":1,"f":"read"}'],
        # the first op: nothing is open yet, so only storing it would hash the process
        "first process": ['{"type":"invoke","process":[1],"f":"read"}', '{"type":"ok","process":[1],"f":"read"}'],
        "first map process": ['{"type":"invoke","process":{"p":1},"f":"read"}'],
    }
    expect = {"two open": r"h.jsonl:2: process 1 invokes 'write' while its op at .*h.jsonl:1 is still open",
              "process": r"h.jsonl:2: process must be an integer or \"nemesis\", got \[2\]",
              "first process": r"h.jsonl:1: process must be an integer or \"nemesis\", got \[1\]",
              "first map process": r"h.jsonl:1: process must be an integer or \"nemesis\", got \{'p': 1\}",
              "type": r"h.jsonl:2: unknown op type 'done'"}
    for name, lines in cases.items():
        p = tmp_path / "h.jsonl"
        p.write_text("\n".join(lines) + "\n")
        with pytest.raises(HistoryError, match=expect[name]):
            validate(load_history(str(p)))


def test_bad_json_names_the_line(tmp_path):
    p = tmp_path / "h.jsonl"
    p.write_text('{"type":"invoke","process":1}\n{"type": oops}\n{"type":"ok","process":1}\n')
    with pytest.raises(HistoryError, match=r"h.jsonl:2: not valid JSON"):
        load_history(str(p))


def test_pairing_and_lone_nemesis_info():
    h = [{"type": "invoke", "process": 0, "f": "read"},
         {"type": "info", "process": "nemesis", "f": "start-partition"},
         {"type": "invoke", "process": 1, "f": "write"},
         {"type": "ok", "process": 0, "f": "read"}]
    pairing = pair(h)
    assert list(pairing.invocations()) == [(0, 3), (2, None)]
    assert list(pairing.completions()) == [(None, 1), (0, 3)]


def test_writer_keeps_everything_when_the_process_is_killed(tmp_path):
    """A controller killed with SIGKILL leaves every op it had recorded on disk."""
    path = tmp_path / "history.jsonl"
    code = f"""
import sys, time
from core.history import HistoryWriter
w = HistoryWriter({str(path)!r}, autoflush=False)
for i in range(1000):
    w.append({{"type": "invoke", "process": i, "f": "read", "value": None}})
    w.flush()
print("written", flush=True)
time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    h = read_jsonl(str(path))
    assert len(h) == 1000 and [op["index"] for op in h] == list(range(1000))


def test_torn_last_line_is_dropped(tmp_path):
    p = tmp_path / "h.jsonl"
    p.write_text('{"type":"invoke","process":1,"f":"read"}\n{"type":"ok","proc')
    assert len(read_jsonl(str(p))) == 1


def test_jepsen_log_reader(conformance):
    h = load_history(str(conformance / "porcupine/jepsen/etcd_000.log"))
    validate(h)
    timed_out = [op for op in h if op.get("error") == "timed-out"]
    assert timed_out and all(op["type"] in ("info", "fail") for op in timed_out)
    # an indeterminate write keeps the value it tried to write
    w = next(op for op in timed_out if op["f"] == "write")
    assert isinstance(w["value"], int)
