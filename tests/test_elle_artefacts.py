"""What the Elle checker writes for a huge failing history stays small enough to open, and
the run's report page (what a user opens: report.html, with the cycles told and drawn)
opens quickly in a real browser."""
from __future__ import annotations

import json
import os
import pathlib

import pytest
import yaml

from checkers.elle import check
from checkers.elle.checker import DRAWINGS_PER_TYPE
from core.history import write_jsonl
from testkit.browser import open_ms
from testkit.txn_stores import simulate

FILE_LIMIT = 5 * 1024 * 1024
PAGE_LIMIT = 5 * 1024 * 1024


def _failing_run(run, n: int) -> dict:
    """A run directory as the runner leaves it for an n-transaction failing list-append
    history: history.jsonl, spec.yaml, results.json, the checker's elle/ artefacts."""
    run.mkdir(parents=True)
    history = simulate("serializable", n, seed=5, stale_rate=0.002)
    write_jsonl(history, str(run / "history.jsonl"))
    result = check(history, "list-append", consistency_models=["strict-serializable"],
                   out_dir=str(run))
    assert result["valid"] is False
    spec = {"name": "list-append-stale", "target": "simulated", "workload": "list-append",
            "seed": 5, "concurrency": 10}
    (run / "spec.yaml").write_text(yaml.safe_dump(spec))
    (run / "results.json").write_text(json.dumps({"valid": False, "checkers": {"elle": result}}))
    return result


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("elle-big") / "run"
    return run, _failing_run(run, 100_000)


@pytest.mark.slow
def test_the_artefacts_of_a_100000_txn_failing_history_stay_small(big_run):
    run, result = big_run
    folder = run / "elle"
    drawn_kinds = [kind for kind in result["anomaly-types"] if (folder / kind).is_dir()]
    assert drawn_kinds
    many = False
    for kind in drawn_kinds:
        drawn = list((folder / kind).glob("*.dot"))
        assert 0 < len(drawn) <= DRAWINGS_PER_TYPE
        found = len(result["anomalies"][kind])
        assert len(drawn) == min(found, DRAWINGS_PER_TYPE)
        many |= found > DRAWINGS_PER_TYPE
        # Every cycle is still told in words.
        assert (folder / f"{kind}.txt").read_text().count(f"{kind} #") >= found
    assert many, "no anomaly type had more cycles than are drawn: the bound went untested"
    for path in folder.rglob("*"):
        if path.is_file():
            assert path.stat().st_size < FILE_LIMIT, f"{path} is {path.stat().st_size} bytes"


@pytest.mark.slow
def test_the_report_page_of_a_100000_txn_failing_history_is_small_and_opens_quickly(big_run, tmp_path):
    from harness.report import write_report
    run, result = big_run
    page = run / "report.html"
    assert os.path.samefile(write_report(str(run)), page)
    size = page.stat().st_size
    assert size < PAGE_LIMIT, f"report.html is {size} bytes"
    ms, dom = open_ms(page.read_text(encoding="utf-8"), str(page.parent))
    # The cycles are there, told and drawn (inline SVG pictures of each kind's first ones).
    for kind in result["anomaly-types"]:
        assert f"<h4>{kind} (" in dom
    cycle_kinds = [k for k in result["anomaly-types"] if (run / "elle" / k).is_dir()]
    assert all(f'alt="{k} cycle"' in dom for k in cycle_kinds)
    assert "#1:" in dom
    # Under 2 s; on a machine too busy for that, no slower than twice the page of a
    # 1,000-transaction failing history opened just after it (size must not matter).
    small_run = tmp_path / "small"
    _failing_run(small_run, 1_000)
    small_page = pathlib.Path(write_report(str(small_run)))
    small_ms, _ = open_ms(small_page.read_text(encoding="utf-8"), str(small_page.parent))
    assert ms < max(2000, 2 * small_ms), f"{ms} ms to open (a 1,000-txn history's page: {small_ms} ms)"
    # Every drawing the page links opens by itself too, and each is small.
    for svg in (run / "elle").rglob("*.svg"):
        assert svg.stat().st_size < 1024 * 1024, svg
