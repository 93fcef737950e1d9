"""Campaign executors on real clusters: a local pool of 2, and Dask with two workers that
are separate hosts (network namespaces), one of them killed during a run.

Each produces one merged campaign result (state.json, campaign.html) and one JUnit file.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from harness.control import owners
from harness.control.netns import list_netns
from tests.conftest import ROOT, needs_root
from tests.private_host import in_private_host, rerun_in_private_host

SMALL_RUNS = """
base: {target: raftkv, node_count: 3, concurrency: 3, time_limit: 5, rate: 40,
       nemesis_interval: 1.5, recovery_time: 4, op_timeout: 1, seed: 21}
expect: valid
matrix:
  workload: [register, set, list-append]
  nemesis: [[partition], [kill]]
"""


def _campaign_file(tmp_path: pathlib.Path, name: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n" + textwrap.dedent(SMALL_RUNS))
    return str(path)


def _merged(store: pathlib.Path, name: str, entries: int) -> list[dict]:
    """The campaign's records, after checking they are one result: every entry in one
    state, one JUnit file and one page, every run's directory in the campaign's store."""
    state = json.loads((store / "campaigns" / name / "state.json").read_text())
    records = list(state["finished"].values())
    assert state["complete"] and len(records) == entries
    suite = ET.parse(store / "campaigns" / name / "junit.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == (str(entries), "0", "0")
    assert f"{entries} of {entries} entries as expected" in (store / "campaigns" / name / "campaign.html").read_text()
    for record in records:
        assert record["verdict"] == "valid", record
        run_dir = pathlib.Path(record["run_dir"])
        assert store in run_dir.parents and (run_dir / "report.html").exists()
        assert json.loads((run_dir / "results.json").read_text())["run_dir"] == str(run_dir)
    return records


def _subnet(run_dir: str) -> str:
    log = pathlib.Path(run_dir, "tectonic.log").read_text()
    return re.search(r"local cluster \S+: \d+ nodes in (\S+),", log).group(1)


def _interval(record: dict) -> tuple[float, float]:
    started = dt.datetime.strptime(pathlib.Path(record["run_dir"]).name[:19], "%Y%m%dT%H%M%S.%f")
    return started.timestamp(), started.timestamp() + record["seconds"]


@needs_root()
@pytest.mark.slow
@pytest.mark.integration
def test_a_local_pool_of_two_runs_tests_side_by_side_into_one_result(tmp_path):
    store = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "campaign", _campaign_file(tmp_path, "pool"),
                           "--parallel", "2", "--store", str(store)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 at a time on this machine" in proc.stdout
    records = _merged(store, "pool", 6)
    # Side by side: some runs overlapped in time, and overlapping runs had distinct subnets.
    overlapping = [(a, b) for i, a in enumerate(records) for b in records[i + 1:]
                   if _interval(a)[0] < _interval(b)[1] and _interval(b)[0] < _interval(a)[1]]
    assert overlapping
    assert all(_subnet(a["run_dir"]) != _subnet(b["run_dir"]) for a, b in overlapping)


@needs_root()
@pytest.mark.slow
@pytest.mark.integration
def test_dask_campaign_on_two_namespace_hosts_survives_a_killed_worker(tmp_path):
    if not in_private_host():
        rerun_in_private_host(__file__, "test_dask_campaign_on_two_namespace_hosts_survives_a_killed_worker")
        return
    pytest.importorskip("distributed")
    from harness.campaign import run_campaign
    from harness.campaign_exec import DaskExecutor
    from harness.dask_lab import DaskLab

    store = tmp_path / "store"
    with DaskLab(workers=2) as lab:
        result: dict = {}
        campaign = threading.Thread(target=lambda: result.update(code=run_campaign(
            _campaign_file(tmp_path, "dask"), store=str(store), executor=DaskExecutor(lab.address))))
        campaign.start()
        # Wait until worker 0 is in the middle of a test, noting the subnets of the tests
        # that run at the same time on the two hosts.
        victim_pid = lab.workers[0].pid
        deadline = time.monotonic() + 240
        killed = None
        concurrent_subnets = []
        while campaign.is_alive() and time.monotonic() < deadline:
            live = [r for r in owners.records() if r.alive() and r.subnet]
            if len({r.pid for r in live}) == 2:
                concurrent_subnets.append({r.subnet for r in live})
            mine = [r for r in live if r.pid == victim_pid and all(n in list_netns() for n in r.netns)]
            if killed is None and mine:
                time.sleep(2)  # well into the test: its target is up and the clients are busy
                killed_worker = lab.dask_address(0)
                lab.kill_worker(0)
                killed = mine[0]
                lab.start_worker(0)  # the host comes back; its next run cleans up
            time.sleep(0.2)
        campaign.join(timeout=600)
        assert killed is not None, "worker 0 never ran a test"
        assert result.get("code") == 0, (store / "campaigns" / "dask" / "state.json").read_text()[-6000:]

    records = _merged(store, "dask", 6)
    hosts = {r["host"].split()[1].rsplit(":", 1)[0] for r in records}
    assert hosts == {f"tcp://{lab.worker_address(0)}", f"tcp://{lab.worker_address(1)}"}
    # The killed run was retried once, by another worker (the dead one reports nothing),
    # and a later run on a host removed what it left.
    [retried] = [r for r in records if f"/tectonic-{r['spec']['name']}-" in killed.dirs[0]]
    assert retried["host"].split()[1] != killed_worker
    cleaned = [line for r in records for line in r.get("cleaned") or []]
    assert any(line == f"namespace {killed.netns[0]}" for line in cleaned), cleaned
    assert not [n for n in list_netns() if n.startswith("tectonic-")]
    assert concurrent_subnets and all(len(s) == 2 for s in concurrent_subnets)
