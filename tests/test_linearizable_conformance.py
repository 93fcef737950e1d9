"""Every history of the conformance corpus gets its known verdict (../shared/conformance).

Porcupine's etcd logs are checked with Porcupine's semantics (nil read = never written, a
failed CAS saw another value), its kv files per key; Knossos's histories with Knossos's
(nil read tells nothing, failed ops never happened). Where Knossos's tests record the first
op that cannot be linearized, our explanation must name the same op: by its index, the
position of its completion in the file (expected.json's `_index_note`).
"""
import functools
import json
import re

import pytest

from checkers.linearizable import LinearizableChecker
from core.history import load_history

from .conftest import CONFORMANCE, conformance_files

ETCD_LOGS = conformance_files("porcupine/jepsen/etcd_*.log")
KV_FILES = conformance_files("porcupine/kv/*.txt")
KNOSSOS = conformance_files("knossos/*/*/*.edn")
KNOSSOS_INITIAL = {"cas-register": 0, "multi-register": {"x": 0, "y": 0}, "mutex": None}
SLOW_KV = {"c50-ok.txt", "c50-bad.txt"}


@functools.lru_cache(maxsize=None)
def expected(corpus: str) -> dict:
    with open(CONFORMANCE / corpus / "expected.json") as f:
        return json.load(f)["files"]


def etcd_checker():
    return LinearizableChecker("cas-register", nil_read="absent", fail_cas="observed")


@pytest.mark.parametrize("path", ETCD_LOGS, ids=[p.name for p in ETCD_LOGS])
def test_porcupine_etcd_log_gets_porcupine_verdict(path, conformance):
    want = expected("porcupine")[f"jepsen/{path.name}"]["linearizable"]
    result = etcd_checker().check(load_history(str(path)), {})
    if want is None:  # etcd_095 is empty: the cluster never started
        assert result["valid"] is True and result["ops_checked"] == 0
        return
    assert result["valid"] is want, result["explanation"]
    json.dumps(result)


def test_all_102_etcd_logs_have_verdicts(conformance):
    assert sum(v["linearizable"] is not None for k, v in expected("porcupine").items()
               if k.startswith("jepsen/")) == 102 == len(ETCD_LOGS) - 1


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW_KV else p
                                  for p in KV_FILES], ids=[p.name for p in KV_FILES])
def test_porcupine_kv_file_gets_its_verdict(path, conformance):
    result = LinearizableChecker("kv").check(load_history(str(path)), {})
    assert result["valid"] is path.name.endswith("-ok.txt"), result["explanation"]
    assert result["keys_checked"] == expected("porcupine")[f"kv/{path.name}"]["distinct_keys"]


@pytest.mark.parametrize("path", KNOSSOS, ids=[str(p.relative_to(CONFORMANCE / "knossos")) for p in KNOSSOS])
def test_knossos_history_gets_knossos_verdict(path, conformance):
    want = expected("knossos")[str(path.relative_to(CONFORMANCE / "knossos"))]
    checker = LinearizableChecker(want["model"], initial=KNOSSOS_INITIAL[want["model"]])
    result = checker.check(load_history(str(path)), {})
    assert result["valid"] is want["linearizable"], result["explanation"]


FIRST_BAD = [(name, info["first_unlinearizable_op"]) for name, info in
             (expected("knossos").items() if CONFORMANCE.is_dir() else [])
             if info.get("first_unlinearizable_op")]


@pytest.mark.parametrize("name,first", FIRST_BAD, ids=[n for n, _ in FIRST_BAD])
def test_explanation_names_the_op_knossos_names(name, first, conformance, tmp_path):
    want = expected("knossos")[name]
    initial = first.get("model_init", KNOSSOS_INITIAL[want["model"]])
    result = LinearizableChecker(want["model"], initial=initial).check(
        load_history(str(CONFORMANCE / "knossos" / name)), {"out_dir": str(tmp_path)})
    failure = result["failures"]["all"]
    op = failure["op"]
    assert (op["index"], op["process"], op["f"], op["value"]) == \
        (first["index"], first["process"], first["f"], first["value"])
    if "previous_ok_index" in first:
        assert failure["previous_ok"]["index"] == first["previous_ok_index"]
    assert f"[index {first['index']}]" in result["explanation"]
    page = (tmp_path / "linear" / "all.html").read_text()
    assert f"index {first['index']}" in page
    # Self-contained: nothing fetched from anywhere (the SVG namespace is only a name).
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)


def test_cas_failure_explanation_tells_the_story_knossos_tells(conformance):
    # Knossos: "after write 2 by p76 [index 472], read 0 by p70 is illegal".
    result = LinearizableChecker("cas-register", initial=0).check(
        load_history(str(CONFORMANCE / "knossos/cas-register/bad/cas-failure.edn")), {})
    assert ("after write 2 by p76 [index 472] the register holds 2; "
            "read 0 by p70 [index 491] cannot follow") in result["explanation"]
    last = result["failures"]["all"]["linearized"][-1]
    assert (last["index"], last["state"]) == (472, "the register holds 2")
