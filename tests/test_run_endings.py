"""How a run ends when it does not end normally: interrupted, or its cluster gone.

An interrupted run stops within seconds (it does not wait out a fault's interval), heals,
tears down, checks what was recorded and says it was interrupted (exit 130, results.json).
A run whose cluster vanished stores its history and reports an error, never a verdict; and
while the cluster is gone no packet for it leaves the machine.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from core.history import read_jsonl, validate
from harness.run import ABORTED, INTERRUPTED, run_test
from tests.conftest import ROOT, needs_root
from tests.fakes import FakeCluster, FakeTarget


class VanishingCluster(FakeCluster):
    """A fake cluster that reports its nodes gone `after` seconds into the test."""

    def __init__(self, node_count, work_dir, after):
        super().__init__(node_count, work_dir)
        self.deadline = time.monotonic() + after

    def vanished(self):
        return ["namespace fake-n1"] if time.monotonic() > self.deadline else []


def _spec(tmp_path, **kw):
    return {"store": str(tmp_path / "store"), "workload": "register", "time_limit": 60,
            "rate": 100, "concurrency": 3, "node_count": 3, "recovery_time": 0, "seed": 7,
            "op_timeout": 0.5, **kw}


def test_a_run_whose_cluster_vanished_is_an_error_not_a_verdict(tmp_path):
    began = time.monotonic()
    out = run_test(_spec(tmp_path),
                   cluster_factory=lambda s, d, needs: VanishingCluster(3, d, after=1.0),
                   target_factory=lambda s, n: FakeTarget())
    assert time.monotonic() - began < 15  # stopped by the watch, not by the 60 s limit
    assert out.exit_code == ABORTED
    assert out.valid == "unknown" and "checkers" in out.results and not out.results["checkers"]
    assert "namespace fake-n1" in out.results["aborted"]
    stored = json.load(open(os.path.join(out.run_dir, "results.json")))
    assert stored["aborted"] == out.results["aborted"]
    h = read_jsonl(os.path.join(out.run_dir, "history.jsonl"))
    validate(h)
    assert sum(1 for o in h if o["type"] == "ok") > 20  # what was recorded is kept


def test_an_interrupted_run_stops_within_seconds_despite_a_long_fault_interval(tmp_path):
    stop = threading.Event()
    threading.Timer(2.0, stop.set).start()
    began = time.monotonic()
    out = run_test(_spec(tmp_path, nemesis=["kill"], nemesis_interval=45),
                   cluster_factory=lambda s, d, needs: FakeCluster(3, d),
                   target_factory=lambda s, n: FakeTarget(), stop=stop)
    took = time.monotonic() - began
    # Far below the 45 s a stop used to wait out (checking and the report take the rest).
    assert took < 2.0 + 20, f"took {took:.1f}s to stop"
    assert out.results["interrupted"] is True
    assert out.exit_code == INTERRUPTED
    stored = json.load(open(os.path.join(out.run_dir, "results.json")))
    assert stored["interrupted"] is True and stored["valid"] in (True, "unknown")
    validate(read_jsonl(os.path.join(out.run_dir, "history.jsonl")))


def test_a_normal_run_is_neither_interrupted_nor_aborted(tmp_path):
    out = run_test(_spec(tmp_path, time_limit=1),
                   cluster_factory=lambda s, d, needs: FakeCluster(3, d),
                   target_factory=lambda s, n: FakeTarget())
    assert out.valid is True and out.exit_code == 0
    assert "interrupted" not in out.results and "aborted" not in out.results


# ------------------------------------------------------------------ real clusters

def _tectonic(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _test_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith("tectonic-")]


def _run_dir(store) -> str:
    return os.path.realpath(os.path.join(store, "latest"))


@pytest.mark.slow
@pytest.mark.integration
@needs_root()
def test_ctrl_c_of_a_real_test_stops_heals_and_says_interrupted(tmp_path):
    store = str(tmp_path / "store")
    proc = _tectonic("test", "--target", "raftkv", "--workload", "register", "--node-count", "3",
                     "--nemesis", "partition", "--nemesis-interval", "45", "--time-limit", "120",
                     "--store", store, "--seed", "3")
    try:
        # Wait until the clients run (the history grows), then interrupt.
        deadline = time.monotonic() + 60
        history = None
        while time.monotonic() < deadline:
            latest = os.path.join(store, "latest", "history.jsonl")
            if os.path.exists(latest) and os.path.getsize(latest) > 2000:
                history = latest
                break
            time.sleep(0.2)
        assert history, "the test never started its clients"
        time.sleep(2)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == INTERRUPTED, (out, err)
    assert took < 15, f"took {took:.1f}s to stop after Ctrl-C"
    assert "INTERRUPTED" in out
    results = json.load(open(os.path.join(_run_dir(store), "results.json")))
    assert results["interrupted"] is True
    validate(read_jsonl(os.path.join(_run_dir(store), "history.jsonl")))
    log = open(os.path.join(_run_dir(store), "tectonic.log")).read()
    prefix = re.search(r"local cluster (tectonic-[0-9a-f]+):", log).group(1)
    assert not [ns for ns in _test_namespaces() if ns.startswith(prefix + "-")]  # torn down


def _iptables(*args):
    return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, check=True)


@pytest.mark.slow
@pytest.mark.integration
@needs_root()
def test_no_packet_leaves_when_the_cluster_is_removed_mid_test(tmp_path, monkeypatch):
    """Remove a running test's namespaces and controller link: for the seconds its clients go
    on (the watch is slowed down to give them time), not one packet for the cluster may leave
    by any other interface (a DROP rule counts what would have left), and the run ends as an
    error, not as VALID."""
    import harness.cluster_watch
    from harness.control import local
    from harness.control.guard_route import guard_routes
    from harness.control.names import SHORT_PREFIX
    from harness.control.subnet import POOL
    monkeypatch.setattr(harness.cluster_watch, "INTERVAL", 6.0)
    clusters = []

    def cluster_factory(spec, work_dir, needs):
        clusters.append(local.make_cluster(spec, work_dir, needs))
        return clusters[-1]

    # Counts (and drops, so nothing really leaves) packets for the cluster address pool that
    # do not go out through a cluster's own link.
    rule = ["OUTPUT", "-d", str(POOL), "!", "-o", f"{SHORT_PREFIX}+", "-j", "DROP"]
    _iptables("-I", *rule)
    try:
        guards_before = set(guard_routes())
        done = []
        runner = threading.Thread(target=lambda: done.append(run_test(
            {"target": "raftkv", "workload": "register", "node_count": 3, "time_limit": 60,
             "store": str(tmp_path / "store"), "seed": 4, "op_timeout": 1, "rate": 200},
            cluster_factory=cluster_factory)))
        runner.start()
        deadline = time.monotonic() + 90
        history = os.path.join(tmp_path, "store", "latest", "history.jsonl")
        while time.monotonic() < deadline:
            if os.path.exists(history) and open(history).read().count('"ok"') > 50:
                break  # the clients are running
            time.sleep(0.1)
        cluster = clusters[0]
        assert guard_routes(), "no guard route while the cluster runs"
        inodes = dict(cluster._inodes)
        # Someone else removes the cluster from under the test.
        subprocess.run(["ip", "link", "delete", cluster.names.controller_link], check=True)
        for ns in cluster.names.all_netns:
            subprocess.run(["ip", "netns", "delete", ns], check=True)
        runner.join(timeout=90)
        assert done, "the run did not end"
        out = done[0]
        counters = _iptables("-L", "OUTPUT", "-v", "-x", "-n").stdout
        line = next(l for l in counters.splitlines() if "DROP" in l and str(POOL) in l)
        leaked = int(line.split()[0])
        assert leaked == 0, f"{leaked} packets for the cluster went out of another interface"
        assert out.exit_code == ABORTED and out.valid == "unknown"
        assert "vanished" in out.results["aborted"]
        h = read_jsonl(os.path.join(out.run_dir, "history.jsonl"))
        after = [o for o in h if o["type"] == "fail" and "no route to host" in str(o.get("error")).lower()]
        assert after, "the clients never tried the vanished cluster"
        assert set(guard_routes()) <= guards_before  # its guard route went with it
        from harness.control.netns import pids_in_netns_inode
        # The servers in the unnamed namespaces were found and killed all the same.
        assert not [pid for inode in inodes.values() for pid in pids_in_netns_inode(inode)]
    finally:
        _iptables("-D", *rule)


@pytest.mark.parametrize("fails_in", ["make_cluster", "create"])
def test_a_failed_cluster_set_up_leaves_no_work_dir(tmp_path, fails_in):
    import glob
    import tempfile
    from core.errors import SetupError
    name = f"leak-probe-{fails_in}-{os.getpid()}"

    class FailingCluster(FakeCluster):
        def create(self):
            raise SetupError("the nodes would not come up")

    def factory(spec, work_dir, needs):
        if fails_in == "make_cluster":
            raise SetupError("bad backend options")
        return FailingCluster(3, work_dir)

    pattern = os.path.join(tempfile.gettempdir(), f"tectonic-{name}-*")
    with pytest.raises(SetupError):
        run_test(_spec(tmp_path, name=name), cluster_factory=factory,
                 target_factory=lambda s, n: FakeTarget())
    assert glob.glob(pattern) == []
