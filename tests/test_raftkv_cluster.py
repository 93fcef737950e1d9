"""Real raftkv clusters on loopback: 3 and 5 server processes at 127.0.0.x addresses."""
import os
import socket
import time

import pytest

from harness.protocols import HostRemote, Node
from targets.raftkv import RaftKVTarget

pytestmark = [pytest.mark.slow, pytest.mark.integration]

_next_subnet = [60]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, tmp_path, n, bugs=(), **settings):
        base = _next_subnet[0]
        _next_subnet[0] += 8
        self.nodes = [Node(f"n{i + 1}", f"127.0.{base}.{i + 1}", HostRemote(),
                           str(tmp_path / f"n{i + 1}"),
                           pythonpath=RaftKVTarget.needs.local_pythonpath()) for i in range(n)]
        spec = {"bugs": list(bugs), "target_opts": {"port": _free_port(), **settings}}
        self.target = RaftKVTarget(spec, self.nodes)

    def start(self):
        for node in self.nodes:
            self.target.setup(node)
        self.target.wait_healthy(self.nodes, 20)

    def stop(self):
        for node in self.nodes:
            self.target.teardown(node)

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def invoke(self, node, f, value, timeout=3.0):
        client = self.target.client(node)
        client.open(node)
        try:
            return client.invoke({"f": f, "value": value}, timeout)
        finally:
            client.close()

    def until_ok(self, node, f, value, within=10.0):
        """Retry an op that certainly failed (no leader yet) until it succeeds."""
        deadline = time.monotonic() + within
        while True:
            done = self.invoke(node, f, value)
            if done["type"] == "ok" or time.monotonic() > deadline:
                return done
            assert done["type"] == "fail", done  # never an uncertain outcome in these tests
            time.sleep(0.1)

    def wait_leader(self, among, within=10.0):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            leader = self.target.leader(among)
            if leader is not None:
                return leader
            time.sleep(0.05)
        raise AssertionError("no leader elected")


@pytest.fixture
def cluster(tmp_path):
    made = []

    def make(n, bugs=(), **settings):
        c = Cluster(tmp_path, n, bugs, **settings)
        made.append(c)
        c.start()
        return c

    try:
        yield make
    finally:
        for c in made:
            c.stop()


def test_operations_on_three_nodes(cluster):
    c = cluster(3)
    a, b, d = c.nodes
    assert c.invoke(a, "write", [1, 10])["type"] == "ok"
    assert c.invoke(b, "read", [1, None]) == {"type": "ok", "value": [1, 10]}
    assert c.invoke(d, "read", ["never", None]) == {"type": "ok", "value": ["never", None]}
    assert c.invoke(d, "cas", [1, [10, 11]])["type"] == "ok"
    mismatch = c.invoke(a, "cas", [1, [10, 12]])
    assert mismatch["type"] == "fail" and mismatch["error"] == "cas-mismatch"
    assert c.invoke(b, "read", [1, None])["value"] == [1, 11]
    for e in (1, 2, 3):
        assert c.invoke(c.nodes[e % 3], "add", ["s", e])["type"] == "ok"
    assert c.invoke(a, "read-list", ["s", None])["value"] == ["s", [1, 2, 3]]
    assert c.invoke(a, "read-list", ["empty", None])["value"] == ["empty", []]
    txn = c.invoke(b, "txn", [["append", "t", 1], ["r", "t", None], ["w", "x", 5], ["r", "x", None]])
    assert txn == {"type": "ok", "value": [["append", "t", 1], ["r", "t", [1]], ["w", "x", 5],
                                           ["r", "x", 5]]}
    # A transaction is atomic: a failed cas leaves its append undone.
    aborted = c.invoke(d, "txn", [["append", "t", 2], ["cas", "x", 4, 6]])
    assert aborted["type"] == "fail" and aborted["error"] == "cas-mismatch"
    assert c.invoke(a, "txn", [["r", "t", None], ["r", "x", None]])["value"] == \
        [["r", "t", [1]], ["r", "x", 5]]


def test_leader_kill_and_restart(cluster):
    c = cluster(3)
    leader = c.wait_leader(c.nodes)
    others = [n for n in c.nodes if n is not leader]
    assert c.invoke(leader, "write", ["k", 1])["type"] == "ok"
    c.target.kill(leader)
    new_leader = c.wait_leader(others)
    assert new_leader is not leader
    assert c.until_ok(others[0], "write", ["k", 2])["type"] == "ok"
    c.target.start(leader)
    # The old leader rejoins as a follower, catches up, and reads the newest value.
    assert c.until_ok(leader, "read", ["k", None]) == {"type": "ok", "value": ["k", 2]}
    deadline = time.monotonic() + 10
    while True:
        status = c.target.status(leader)
        if status and status["state"] == "follower" and status["applied"] >= \
                c.target.status(new_leader)["commit"]:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def test_data_survives_a_full_cluster_restart(cluster):
    c = cluster(3, snapshot_every=40)
    for i in range(100):  # enough to compact the log twice: recovery = snapshot + log
        assert c.invoke(c.nodes[i % 3], "write", [i % 7, i])["type"] == "ok"
    assert c.invoke(c.nodes[0], "add", ["l", 1])["type"] == "ok"
    for node in c.nodes:
        c.target.kill(node)
    for node in c.nodes:
        c.target.start(node)
    c.target.wait_healthy(c.nodes, 20)
    for key in range(7):
        last = max(i for i in range(100) if i % 7 == key)
        assert c.until_ok(c.nodes[key % 3], "read", [key, None])["value"] == [key, last]
    assert c.invoke(c.nodes[1], "read-list", ["l", None])["value"] == ["l", [1]]
    assert any(c.target.status(n)["snapshot_index"] > 0 for n in c.nodes)


def test_a_lagging_follower_catches_up_by_snapshot(cluster):
    c = cluster(3, snapshot_every=30)
    leader = c.wait_leader(c.nodes)
    lagging = next(n for n in c.nodes if n is not leader)
    c.target.kill(lagging)
    for i in range(80):
        assert c.until_ok(leader, "write", ["k", i])["type"] == "ok"
    c.target.start(lagging)
    deadline = time.monotonic() + 10
    while True:
        status = c.target.status(lagging)
        if status and status["applied"] >= 80:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    with open(c.target.log_files(lagging)[0]) as f:
        assert "installed a snapshot" in f.read()


def test_five_nodes_survive_minority_kill_and_leader_pause(cluster):
    c = cluster(5)
    leader = c.wait_leader(c.nodes)
    followers = [n for n in c.nodes if n is not leader]
    for victim in followers[:2]:
        c.target.kill(victim)
    assert c.until_ok(leader, "write", ["k", 1])["type"] == "ok"
    for victim in followers[:2]:
        c.target.start(victim)
    c.target.pause(leader)
    try:
        new_leader = c.wait_leader(followers)
        assert c.until_ok(new_leader, "write", ["k", 2])["type"] == "ok"
    finally:
        c.target.resume(leader)
    # The resumed old leader learns the new term and serves the new value.
    assert c.until_ok(leader, "read", ["k", None]) == {"type": "ok", "value": ["k", 2]}


def test_clock_offset_moves_the_servers_clock(cluster):
    c = cluster(3)
    if c.target.faketime_on(c.nodes[1]) is None:
        pytest.skip("libfaketime not installed (apt-get install -y faketime)")
    node = c.nodes[1]

    def skew():
        return c.target.status(node)["time"] - time.time()

    assert abs(skew()) < 0.5
    for offset in (5.0, -3.0, 0.0):
        c.target.set_clock_offset(node, offset)
        time.sleep(0.2)
        assert abs(skew() - offset) < 0.5, (offset, skew())
    with open(c.target.clock_offset_file(node)) as f:
        assert f.read().strip() == "+0.000s"
    # The cluster stays healthy through clock jumps.
    c.target.set_clock_offset(c.nodes[0], 4.0)
    assert c.until_ok(c.nodes[2], "write", ["after-jump", 1])["type"] == "ok"


def test_no_fsync_writes_survive_a_process_kill(cluster):
    """The no-fsync bug skips fsync, not write: killing every process loses nothing (the
    kernel's cache holds the writes). Only a lost un-fsynced write, as the disk fault makes
    (tests/test_disk_faults.py), shows the bug."""
    c = cluster(3, bugs=["no-fsync"], lazy_sync_interval=3600)
    assert c.invoke(c.nodes[0], "write", ["kept", 1])["type"] == "ok"
    for node in c.nodes:
        c.target.kill(node)
    for node in c.nodes:
        c.target.start(node)
    c.target.wait_healthy(c.nodes, 20)
    assert c.until_ok(c.nodes[0], "read", ["kept", None])["value"] == ["kept", 1]


def test_unknown_bug_is_refused():
    with pytest.raises(ValueError, match="unknown bug 'nope'"):
        RaftKVTarget({"bugs": ["nope"]}, [])


def test_appends_stay_consistent_under_faults(cluster):
    """Clients append unique elements while nodes are killed, paused and clock-skewed.
    Strict serializability means: every acknowledged append is in the final list, no
    failed one is, nothing appears twice, and every read is a prefix of the final list."""
    import random
    import threading

    c = cluster(5)
    rng = random.Random(5)
    keys = ["a", "b", "c"]
    acked, failed, reads = set(), set(), []
    stop = threading.Event()
    lock = threading.Lock()

    def worker(w):
        node = c.nodes[w % 5]
        client = c.target.client(node)
        client.open(node)
        wrng = random.Random(w)
        n = 0
        try:
            while not stop.is_set():
                key = wrng.choice(keys)
                if wrng.random() < 0.7:
                    n += 1
                    element = w * 100_000 + n
                    done = client.invoke({"f": "add", "value": [key, element]}, 2.0)
                    with lock:
                        if done["type"] == "ok":
                            acked.add((key, element))
                        elif done["type"] == "fail":
                            failed.add((key, element))
                else:
                    done = client.invoke({"f": "read-list", "value": [key, None]}, 2.0)
                    if done["type"] == "ok":
                        with lock:
                            reads.append(tuple(done["value"]))
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            victim = rng.choice(c.nodes)
            fault = rng.choice(["kill", "pause", "clock"])
            if fault == "kill":
                c.target.kill(victim)
                time.sleep(0.8)
                c.target.start(victim)
            elif fault == "pause":
                victim = c.target.leader(c.nodes) or victim
                c.target.pause(victim)
                time.sleep(0.8)
                c.target.resume(victim)
            elif c.target.faketime_on(victim):
                c.target.set_clock_offset(victim, rng.choice([-3.0, 3.0]))
                time.sleep(0.8)
                c.target.set_clock_offset(victim, 0.0)
            time.sleep(0.4)
    finally:
        stop.set()
        for t in threads:
            t.join()
    final = {}
    for key in keys:
        done = c.until_ok(c.nodes[0], "read-list", [key, None], within=20)
        assert done["type"] == "ok", done
        final[key] = done["value"][1]
    assert sum(1 for k, _ in acked) > 50, "too few appends succeeded to judge anything"
    for key, elements in final.items():
        assert len(elements) == len(set(elements)), f"{key}: an element appears twice"
        present = set(elements)
        lost = [e for k, e in acked if k == key and e not in present]
        assert not lost, f"{key}: acknowledged appends lost: {lost[:5]}"
        ghosts = [e for k, e in failed if k == key and e in present]
        assert not ghosts, f"{key}: failed appends took effect: {ghosts[:5]}"
    for key, seen in reads:
        assert list(seen) == final[key][:len(seen)], f"{key}: read {seen} is not a prefix"
