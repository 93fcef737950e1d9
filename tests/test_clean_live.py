"""`tectonic clean` and ownership: a live test's resources survive, a dead test's go.

The real-cluster test runs in a private host (tests/private_host.py), so its bare
`tectonic clean` can only ever see the namespaces of this test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from harness.control import owners
from harness.control.netns import list_netns
from tests.conftest import ROOT, needs_root
from tests.private_host import in_private_host, rerun_in_private_host

TECTONIC = [sys.executable, "-m", "harness.cli"]

# A controller that creates a cluster, says so, and waits to be SIGKILLed.
DEAD_CONTROLLER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from harness.control.local import LocalCluster
    cluster = LocalCluster(sys.argv[2], 2, sys.argv[3])
    cluster.create()
    print("up", flush=True)
    time.sleep(600)
""")


def test_a_record_is_alive_only_while_its_exact_process_runs(tmp_path):
    record = owners.claim("t1", netns=["tectonic-t1-n1"], link_tag="tecaaaaaa",
                          chain_tag="tectonic-aaaaaa", dirs=[str(tmp_path)], owners_dir=str(tmp_path))
    assert record.alive()
    [read] = owners.records(str(tmp_path))
    assert (read.pid, read.start, read.netns) == (os.getpid(), record.start, ["tectonic-t1-n1"])
    # Same pid, another start time: a reused pid is not the controller.
    read.start += 1
    assert not read.alive()
    child = subprocess.Popen(["true"])
    child.wait()
    assert owners.process_start(child.pid) is None
    owners.release("t1", str(tmp_path))
    assert owners.records(str(tmp_path)) == []


def test_a_second_controller_cannot_claim_a_live_test_id(tmp_path):
    claim = [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
             "from harness.control import owners;"
             "owners.claim('t2', netns=[], link_tag='', chain_tag='', dirs=[], owners_dir=sys.argv[2])",
             str(ROOT), str(tmp_path)]
    subprocess.run(claim, check=True)  # its process is gone at once: the record is dead
    owners.claim("t2", netns=[], link_tag="", chain_tag="", dirs=[], owners_dir=str(tmp_path))
    proc = subprocess.run(claim, capture_output=True, text=True)
    assert proc.returncode != 0 and f"in use by the running controller pid {os.getpid()}" in proc.stderr


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@needs_root()
@pytest.mark.slow
@pytest.mark.integration
def test_clean_between_two_running_tests_leaves_both_intact(tmp_path):
    if not in_private_host():
        rerun_in_private_host(__file__, "test_clean_between_two_running_tests_leaves_both_intact")
        return
    store = tmp_path / "store"
    # A dead test's leftovers beside the live ones: clean must tell them apart.
    dead = subprocess.Popen([sys.executable, "-c", DEAD_CONTROLLER, str(ROOT), "deadbeef",
                             str(tmp_path / "dead-work")], stdout=subprocess.PIPE, text=True)
    assert dead.stdout.readline().strip() == "up"
    dead.kill()
    dead.wait()
    tests = [subprocess.Popen([*TECTONIC, "test", "--target", "raftkv", "--workload", "register",
                               "--nemesis", "partition", "--nemesis-interval", "2", "--node-count", "3",
                               "--concurrency", "3", "--rate", "50", "--time-limit", "14",
                               "--recovery-time", "2", "--store", str(store), "--name", f"live{i}",
                               "--seed", str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
             for i in (1, 2)]
    try:
        live = _wait_for(lambda: [r for r in owners.records() if r.alive()] if
                         len([r for r in owners.records() if r.alive()]) == 2 and
                         all(n in list_netns() for r in owners.records() if r.alive() for n in r.netns)
                         else None, 120, "both tests' clusters")
        held = {n for r in live for n in r.netns}
        clean = subprocess.run([*TECTONIC, "clean"], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert clean.returncode == 0, clean.stderr
        removed = [line for line in clean.stdout.splitlines() if line.startswith("removed ")]
        kept = [line for line in clean.stdout.splitlines() if line.startswith("kept ")]
        assert len(kept) == 2, clean.stdout
        assert "removed namespace tectonic-deadbeef-switch" in removed, clean.stdout
        assert f"removed work directory {tmp_path / 'dead-work'}" in removed
        assert not any(n in line for line in removed for n in held), clean.stdout
        assert held <= set(list_netns())
        assert "tectonic-deadbeef-n1" not in list_netns() and not (tmp_path / "dead-work").exists()
    finally:
        outputs = [t.communicate(timeout=240)[0] for t in tests]
    for t, out in zip(tests, outputs):
        # Intact: each test ran to the end against a working cluster and was judged valid.
        assert t.returncode == 0, out
    for name in ("live1", "live2"):
        [run] = [p for p in (store / name).iterdir() if p.name != "latest"]
        results = json.loads((run / "results.json").read_text())
        assert results["valid"] is True
        assert results["checkers"]["stats"]["ok_count"] > 50  # the cluster served throughout
    assert not [n for n in list_netns() if n.startswith("tectonic-")]
    assert [r for r in owners.records()] == []
