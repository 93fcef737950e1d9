"""After a SIGKILLed controller, `tectonic clean` leaves nothing and keeps the logs.

A real raftkv and a real etcd test are killed mid-run (SIGKILL: no teardown runs). Clean
must then remove every namespace, process, link, chain, data dir and work dir of that test,
and put the nodes' logs into the killed test's run dir, where a normal teardown would have.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from harness.control import clean as clean_mod
from harness.control.names import short_tag
from harness.control.netns import link_names, list_netns
from tests.conftest import ROOT, needs_root

pytestmark = [pytest.mark.slow, pytest.mark.integration, needs_root()]


@pytest.mark.parametrize("target", ["raftkv", "etcd"])
def test_clean_after_a_sigkilled_test_leaves_nothing_and_keeps_the_node_logs(tmp_path, target):
    if target == "etcd" and shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (apt-get install etcd-server)")
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "test", "--target", target,
                             "--workload", "register", "--node-count", "3", "--time-limit", "120",
                             "--store", str(store), "--seed", "9"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        history = store / "latest" / "history.jsonl"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if history.exists() and history.read_text().count('"ok"') > 20:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the test never got its clients going")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run_dir = os.path.realpath(store / "latest")
    log = open(os.path.join(run_dir, "tectonic.log")).read()
    test_id = re.search(r"local cluster tectonic-([0-9a-f]+):", log).group(1)
    work_dir = re.search(r"work dir (\S+) ", log).group(1)
    prefix = f"tectonic-{test_id}-"
    assert [n for n in list_netns() if n.startswith(prefix)], "nothing to clean: not a crash"
    assert os.path.isdir(work_dir)
    servers = subprocess.run(["pgrep", "-f", work_dir], capture_output=True, text=True).stdout.split()
    assert servers, "the target's servers should still run after the controller died"

    removed = clean_mod.clean(test_id)

    assert f"work directory {work_dir}" in removed
    assert not os.path.exists(work_dir)  # data dirs and all
    assert not [n for n in list_netns() if n.startswith(prefix)]
    assert not [l for l in link_names() if l.startswith(short_tag(test_id) + "-")]
    assert not subprocess.run(["pgrep", "-f", work_dir], capture_output=True, text=True).stdout.split()
    chains = subprocess.run(["iptables", "-w", "5", "-S"], capture_output=True, text=True).stdout
    assert f"tectonic-{test_id}" not in chains
    for node in ("n1", "n2", "n3"):
        logs = os.listdir(os.path.join(run_dir, "nodes", node))
        assert any(name.endswith(".log") for name in logs), (node, logs)
        assert any(line.startswith(f"collected logs of {node}") for line in removed)
    assert clean_mod.find_leftovers(test_id) == []
