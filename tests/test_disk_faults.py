"""The lazy filesystem and the disk fault, on real FUSE mounts.

lazyfs alone: what was fsynced survives a crash, what was not is gone, a torn crash keeps a
prefix. Then raftkv in a local cluster with its data dirs on lazy filesystems: with the
no-fsync bug an acknowledged write is gone after a crash of every node; without it, it stays.
"""
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time

import pytest

from nemesis.disk import DiskNemesis, LazyDisks
from tests.conftest import ROOT, needs_root

pytestmark = [needs_root("needs root for FUSE mounts and namespaces"),
              pytest.mark.skipif(shutil.which("fusermount3") is None, reason="needs fuse3"),
              pytest.mark.integration]


@pytest.fixture
def lazy(tmp_path):
    """A lazy filesystem at tmp_path/m (backing tmp_path/b); ask(request) talks to it."""
    mount, backing, control = tmp_path / "m", tmp_path / "b", str(tmp_path / "c.sock")
    mount.mkdir()
    backing.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "nemesis.lazyfs", "--backing", str(backing),
                             "--mount", str(mount), "--control", control, "--seed", "7"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ask(request):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(control)
            s.sendall((json.dumps(request) + "\n").encode())
            return json.loads(s.makefile().readline())

    deadline = time.monotonic() + 15
    while not (os.path.ismount(mount) and os.path.exists(control)):
        assert time.monotonic() < deadline and proc.poll() is None, "lazyfs did not mount"
        time.sleep(0.05)
    try:
        yield mount, backing, ask
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        proc.terminate()  # libfuse does not always leave its loop on umount alone
        proc.wait(timeout=10)
        assert not os.path.ismount(mount)


def test_a_crash_loses_exactly_what_was_not_fsynced(lazy):
    mount, backing, ask = lazy
    path = mount / "wal"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    os.pwrite(fd, b"A" * 100, 0)
    os.fsync(fd)
    os.pwrite(fd, b"B" * 50, 100)
    os.close(fd)
    assert path.read_bytes() == b"A" * 100 + b"B" * 50  # readers see the pending bytes
    assert (backing / "wal").read_bytes() == b"A" * 100  # the disk does not, yet
    assert ask({"do": "pending"}) == {"files": 1, "bytes": 50}
    assert ask({"do": "crash"}) == {"files": 1, "bytes": 50}
    assert path.read_bytes() == b"A" * 100
    assert os.stat(path).st_size == 100


def test_a_torn_crash_keeps_a_prefix_of_the_pending_writes_in_order(lazy):
    mount, _, ask = lazy
    path = mount / "wal"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    os.pwrite(fd, b"C" * 40, 0)
    os.pwrite(fd, b"D" * 40, 40)
    os.close(fd)
    lost = ask({"do": "crash", "torn": True})
    data = path.read_bytes()
    kept = 80 - lost["bytes"]
    assert 0 <= kept < 80 and lost["files"] == 1
    assert data == (b"C" * 40 + b"D" * 40)[:kept]


def test_an_fsynced_atomic_replace_survives_and_its_unsynced_twin_does_not(lazy):
    mount, _, ask = lazy
    with open(mount / "snap.tmp", "wb") as f:
        f.write(b"snapshot")
        f.flush()
        os.fsync(f.fileno())
    os.replace(mount / "snap.tmp", mount / "snap")
    with open(mount / "lazy", "wb") as f:
        f.write(b"gone")
    ask({"do": "crash"})
    assert (mount / "snap").read_bytes() == b"snapshot"
    assert (mount / "lazy").read_bytes() == b""  # created (metadata is durable), data lost


@pytest.mark.slow
@pytest.mark.parametrize("bugs, survives", [(["no-fsync"], False), ([], True)])
def test_raftkv_loses_an_acknowledged_write_to_a_disk_crash_only_with_no_fsync(tmp_path, bugs,
                                                                                survives):
    from harness.control.clean import clean
    from harness.control.local import LocalCluster
    from targets.raftkv import RaftKVTarget
    test_id = f"disk-{secrets.token_hex(3)}"
    local = LocalCluster(test_id, 3, str(tmp_path), RaftKVTarget.needs)
    disks = None
    try:
        nodes = local.create()
        target = RaftKVTarget({"bugs": bugs, "target_opts": {"lazy_sync_interval": 3600}}, nodes)
        disks = LazyDisks(nodes, target.data_dir, test_id, seed=1)
        disks.mount()
        for node in nodes:
            target.setup(node)
        target.wait_healthy(nodes, 30)
        leader = target.leader(nodes)
        client = target.client(leader)
        client.open(leader)
        assert client.invoke({"f": "write", "value": ["k", 7]}, 3.0)["type"] == "ok"
        client.close()
        nem = DiskNemesis(nodes, target, random.Random(1), {"disks": disks})
        value = nem.invoke({"f": "start-disk", "value": "all"})["value"]
        assert value["crashed"] == ["n1", "n2", "n3"]
        # Each crash's kill was seen on the node: the server's process was gone.
        assert all(value["observed"][n].startswith("gone (pid ") for n in value["crashed"]), value
        assert (sum(v["bytes"] for v in value["lost"].values()) > 0) == (not survives)
        assert nem.invoke({"f": "stop-disk"})["value"] == {"restarted": ["n1", "n2", "n3"]}
        target.wait_healthy(nodes, 30)
        leader = target.leader(nodes)
        client = target.client(leader)
        client.open(leader)
        read = client.invoke({"f": "read", "value": ["k", None]}, 3.0)
        client.close()
        assert read["type"] == "ok"
        assert read["value"] == (["k", 7] if survives else ["k", None])
        for node in nodes:
            target.teardown(node)
    finally:
        if disks is not None:
            disks.unmount()
        local.destroy()
        clean(test_id)
    assert not [line for line in open("/proc/self/mounts") if test_id in line or
                "lazyfs" in line and str(tmp_path) in line]


KILLED_CONTROLLER = """
import json, random, sys, time
sys.path.insert(0, sys.argv[1])
from harness.control.local import LocalCluster
from nemesis import make_nemesis
from nemesis.disk import LazyDisks
cluster = LocalCluster(sys.argv[2], 3, sys.argv[3])
nodes = cluster.create()
disks = LazyDisks(nodes, lambda node: node.dir + "/data", sys.argv[2], seed=1)
disks.mount()
nem = make_nemesis(["delay"], nodes, None, random.Random(1), {"test_id": sys.argv[2]})
nem.invoke({"f": "start-delay", "value": "all"})
print(json.dumps({"mounts": list(disks.mounts.values()),
                  "delayers": list(nem.parts["delay"].delayers.values())}), flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_clean_after_a_sigkilled_controller_removes_delayers_and_lazy_mounts(tmp_path):
    from harness.control.clean import clean, find_leftovers
    test_id = f"diskk-{secrets.token_hex(3)}"
    child = subprocess.Popen([sys.executable, "-c", KILLED_CONTROLLER, str(ROOT), test_id,
                              str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        left = json.loads(child.stdout.readline())
    finally:
        child.kill()
        child.wait()
    assert len(left["mounts"]) == 3 and len(left["delayers"]) == 3
    found = "\n".join(find_leftovers(test_id))
    for mount in left["mounts"]:
        assert f"FUSE mount {mount}" in found
    for pid in left["delayers"]:
        assert f"process pid {pid} " in found
    removed = clean(test_id)
    assert all(f"FUSE mount {m}" in removed for m in left["mounts"])
    assert find_leftovers(test_id) == []
    assert not any(os.path.ismount(m) for m in left["mounts"])
    assert not any(os.path.exists(f"/proc/{pid}/cmdline") and
                   b"nemesis.delayer" in open(f"/proc/{pid}/cmdline", "rb").read()
                   for pid in left["delayers"])


@pytest.mark.slow
def test_a_rolling_disk_crash_leaves_raftkv_valid_with_one_node_down_at_a_time(tmp_path):
    """The campaign's rolling recipe without the bug (with it, tests/test_e2e_raftkv.py
    shows acknowledged adds lost): every node crashes, one at a time, and nothing is lost."""
    from core.history import read_jsonl
    from harness.campaign import load_campaign
    from harness.run import run_test
    run = next(r for r in load_campaign(os.path.join(ROOT, "campaigns", "raftkv-bugs.yaml")).runs
               if (r.spec.get("nemesis_opts") or {}).get("disk_rolling") and not r.spec.get("bugs"))
    out = run_test({**run.spec, "store": str(tmp_path / "store")})
    h = read_jsonl(os.path.join(out.run_dir, "history.jsonl"))
    crashes = [op["value"] for op in h if op.get("process") == "nemesis"
               and op["f"] == "start-disk" and op["type"] == "info"]
    assert crashes, "no disk crash happened"
    for crash in crashes:
        assert crash["rolling"] and sorted(crash["crashed"]) == ["n1", "n2", "n3"], crash
        # Each node answered again (its "up" time) before the next one went down.
        assert list(crash["up"]) == crash["crashed"], crash
        assert all(crash["observed"][n].startswith("gone (pid ") for n in crash["crashed"]), crash
    assert out.valid is True, out.results
