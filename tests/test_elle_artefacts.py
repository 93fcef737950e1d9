"""What the Elle checker writes for a huge failing history stays small enough to open, and
the run's report page (what a user opens: report.html, with the cycles told and drawn)
opens quickly in a real browser."""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

from checkers.elle import check
from checkers.elle.checker import DRAWINGS_PER_TYPE
from core.history import write_jsonl
from testkit.txn_stores import simulate

FILE_LIMIT = 5 * 1024 * 1024
PAGE_LIMIT = 5 * 1024 * 1024
CHROMIUM = "/usr/bin/chromium"


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


def _open_ms(path, tmp_path) -> tuple[int, str]:
    """(milliseconds from navigation start until the page was parsed and its scripts ran,
    as headless Chromium measures it; the DOM it built). The probe goes into a copy."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    page = path.read_text(encoding="utf-8")
    probe = "<script>document.body.dataset.ms = Math.round(performance.now());</script></body>"
    copy = path.with_name("probed-" + path.name)
    copy.write_text(page.replace("</body>", probe), encoding="utf-8")
    profile = tmp_path / "chromium-profile"
    try:
        out = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1280,900",
             "--virtual-time-budget=5000", "--dump-dom", copy.as_uri()],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
        copy.unlink()
    ms = re.search(r'data-ms="(\d+)"', out.stdout)
    assert ms, f"the page's scripts did not run: {out.stderr[-500:]}"
    return int(ms.group(1)), out.stdout


@pytest.mark.slow
def test_the_report_page_of_a_100000_txn_failing_history_is_small_and_opens_quickly(big_run, tmp_path):
    from harness.report import write_report
    run, result = big_run
    page = run / "report.html"
    assert os.path.samefile(write_report(str(run)), page)
    size = page.stat().st_size
    assert size < PAGE_LIMIT, f"report.html is {size} bytes"
    ms, dom = _open_ms(page, tmp_path)
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
    small_ms, _ = _open_ms(pathlib.Path(write_report(str(small_run))), tmp_path)
    assert ms < max(2000, 2 * small_ms), f"{ms} ms to open (a 1,000-txn history's page: {small_ms} ms)"
    # Every drawing the page links opens by itself too, and each is small.
    for svg in (run / "elle").rglob("*.svg"):
        assert svg.stat().st_size < 1024 * 1024, svg
