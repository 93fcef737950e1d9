"""Fault injection: what each fault kind does to which nodes, and that heal undoes it.

The unit tests drive the nemeses against recording fakes; the integration tests inject
real faults into a 5-node local cluster running a tiny TCP/UDP server per node, and watch
their effect from the nodes and from the controller.
"""
import concurrent.futures
import dataclasses
import json
import os
import random
import secrets
import signal
import socket
import sys
import tempfile
import textwrap
import threading
import time

import pytest

from harness.protocols import Clock, Kill, Node, Pause, Primary
from nemesis import FAULTS, make_nemesis
from nemesis.choose import choose_nodes
from nemesis.clock import REFUSAL, ClockNemesis
from nemesis.kill import KillNemesis
from nemesis.partition import (SHAPES, PartitionNemesis, bridge, halves, isolate,
                               majorities_ring)
from nemesis.rule_check import PROBES, parse_counts
from nemesis.node_fault import UNOBSERVED
from nemesis.observe import FaultWithoutEffect
from nemesis.pause import PauseNemesis
from tests.conftest import needs_root

NAMES5 = ["n1", "n2", "n3", "n4", "n5"]


def fake_nodes(count: int) -> list[Node]:
    return [Node(name=f"n{i}", address=f"10.0.0.{i}", remote=None, dir="/nonexistent")
            for i in range(1, count + 1)]


class RecordingTarget(Kill, Pause, Primary, Clock):
    """Records what the nemesis asked of it; `leader_name` says who leads."""

    name = "recording"

    def __init__(self, leader_name=None, failing=()):
        self.calls: list[tuple[str, str]] = []
        self.offsets: list[tuple[str, float]] = []
        self.leader_name = leader_name
        self.failing = set(failing)
        self.lock = threading.Lock()

    def _record(self, what, node):
        if node.name in self.failing:
            raise RuntimeError(f"{what} {node.name} failed")
        self.calls.append((what, node.name))

    def kill(self, node):
        self._record("kill", node)

    def start(self, node):
        self._record("start", node)

    def pause(self, node):
        self._record("pause", node)

    def resume(self, node):
        self._record("resume", node)

    def leader(self, nodes):
        return next((n for n in nodes if n.name == self.leader_name), None)

    def set_clock_offset(self, node, seconds):
        with self.lock:
            self.offsets.append((node.name, seconds))


# ---------------------------------------------------------------- partition shapes


def sees(grudge, names):
    return {a: {b for b in names if b != a and b not in grudge.get(a, [])
                and a not in grudge.get(b, [])} for a in names}


def test_halves_cut_the_cluster_in_two_smaller_half_first():
    grudge = halves(NAMES5)
    assert sees(grudge, NAMES5) == {"n1": {"n2"}, "n2": {"n1"}, "n3": {"n4", "n5"},
                                    "n4": {"n3", "n5"}, "n5": {"n3", "n4"}}


def test_isolate_cuts_one_node_from_all_others():
    grudge = isolate(NAMES5, "n4")
    assert grudge["n4"] == ["n1", "n2", "n3", "n5"]
    assert all(grudge[n] == ["n4"] for n in NAMES5 if n != "n4")


@pytest.mark.parametrize("count", [3, 4, 5, 6, 7, 8, 9])
def test_majorities_ring_gives_every_node_a_different_majority(count):
    names = [f"n{i}" for i in range(1, count + 1)]
    grudge = majorities_ring(names)
    assert grudge and all(a in grudge[b] for a in grudge for b in grudge[a])  # symmetric
    views = sees(grudge, names)
    assert all(len(v) + 1 >= count // 2 + 1 for v in views.values())
    assert len({frozenset(v | {a}) for a, v in views.items()}) == count


def test_bridge_node_talks_to_both_halves_that_cannot_talk_to_each_other():
    views = sees(bridge(NAMES5), NAMES5)
    assert views["n3"] == {"n1", "n2", "n4", "n5"}
    assert views["n1"] == {"n2", "n3"} and views["n5"] == {"n3", "n4"}


def test_partition_choices_repeat_with_the_seed_and_cover_every_shape():
    def run(seed):
        nem = PartitionNemesis(fake_nodes(5), RecordingTarget("n2"), random.Random(seed), {})
        return [nem.grudge_for(None) for _ in range(40)]
    assert run(7) == run(7)
    assert {shape for shape, _ in run(7)} == set(SHAPES)


def test_isolate_leader_isolates_the_targets_leader_or_nobody():
    nodes = fake_nodes(5)
    nem = PartitionNemesis(nodes, RecordingTarget("n3"), random.Random(1), {})
    assert nem.grudge_for("isolate-leader") == ("isolate-leader", isolate(NAMES5, "n3"))
    nem = PartitionNemesis(nodes, RecordingTarget(None), random.Random(1), {})
    assert nem.grudge_for({"shape": "isolate-leader"}) == ("isolate-leader", {})


def test_drop_counts_are_read_per_source_from_the_chain_listing():
    listing = ("Chain tectonic-1a2b3c-partition (1 references)\n"
               "    pkts      bytes target     prot opt in     out     source               destination\n"
               "      12      960 DROP       0    --  *      *       10.0.0.2             0.0.0.0/0\n"
               "       0        0 DROP       0    --  *      *       10.0.0.3             0.0.0.0/0\n"
               "       3      180 ACCEPT     0    --  *      *       10.0.0.4             0.0.0.0/0\n")
    assert parse_counts(listing) == {"10.0.0.2": 12, "10.0.0.3": 0}
    assert parse_counts("iptables: No chain/target/match by that name.\n") == {}


def test_a_rule_too_unlikely_to_act_on_a_probe_is_recorded_as_not_checked():
    # 12 expected counts at P = 0.001 would take 12,000 datagrams: more than a probe sends.
    from nemesis.rule_check import check_rules
    seen = check_rules(fake_nodes(3), {"n1": ["n2"], "n3": []}, "chain", verb="drops",
                       probability=0.001)
    assert seen == {"n1": "not checked: a probability of 0.001 shows in too few of 3000 probes"}


def test_bad_partition_requests_are_refused():
    nem = PartitionNemesis(fake_nodes(3), RecordingTarget(), random.Random(1), {})
    with pytest.raises(ValueError, match="unknown partition shape"):
        nem.grudge_for("triangle")
    with pytest.raises(ValueError, match="unknown nodes"):
        nem.grudge_for({"grudge": {"n1": ["n9"]}})
    assert nem.grudge_for({"grudge": {"n1": ["n2"], "n3": []}}) == ("custom", {"n1": ["n2"]})
    with pytest.raises(ValueError, match="partition_shapes must be"):
        PartitionNemesis(fake_nodes(3), None, random.Random(1), {"partition_shapes": ["x"]})


# ---------------------------------------------------------------- node selection, kill, pause


@pytest.mark.parametrize("count, sizes", [(3, {"one": 1, "minority": 1, "majority": 2, "all": 3}),
                                          (5, {"one": 1, "minority": 2, "majority": 3, "all": 5})])
def test_selections_have_the_right_sizes(count, sizes):
    nodes = fake_nodes(count)
    for selection, size in sizes.items():
        label, chosen = choose_nodes(selection, nodes, None, random.Random(3), [])
        assert label == selection and len(chosen) == size
        assert chosen == [n for n in nodes if n in chosen]  # cluster order
    assert choose_nodes(["n3", "n1"], nodes, None, random.Random(3), [])[1] == [nodes[0], nodes[2]]
    with pytest.raises(ValueError, match="unknown node selection"):
        choose_nodes("most", nodes, None, random.Random(3), [])


def test_kill_kills_the_chosen_nodes_and_stop_restarts_exactly_them():
    target = RecordingTarget()
    nem = KillNemesis(fake_nodes(5), target, random.Random(5), {})
    op = nem.invoke({"f": "start-kill", "value": "majority", "process": "nemesis"})
    killed = op["value"]["killed"]
    assert op["value"]["targets"] == "majority" and len(killed) == 3
    assert op["process"] == "nemesis"
    assert target.calls == [("kill", n) for n in killed]
    op = nem.invoke({"f": "stop-kill", "value": None})
    assert op["value"] == {"restarted": killed}
    assert target.calls[3:] == [("start", n) for n in killed]
    nem.heal()
    assert len(target.calls) == 6  # nothing left to undo


def test_pause_of_the_leader_resumes_it_on_heal():
    target = RecordingTarget(leader_name="n4")
    nem = PauseNemesis(fake_nodes(5), target, random.Random(5), {"pause_targets": ["leader"]})
    op = nem.invoke({"f": "start-pause", "value": None})
    assert op["value"] == {"targets": "leader", "paused": ["n4"],
                           "observed": {"n4": UNOBSERVED}}  # fake nodes run nothing
    nem.heal()
    nem.heal()
    assert target.calls == [("pause", "n4"), ("resume", "n4")]


def test_heal_tries_every_node_before_reporting_a_failure():
    target = RecordingTarget()
    nem = KillNemesis(fake_nodes(3), target, random.Random(5), {})
    nem.invoke({"f": "start-kill", "value": "all"})
    target.failing = {"n2"}
    with pytest.raises(RuntimeError, match="start n2 failed"):
        nem.heal()
    assert ("start", "n1") in target.calls and ("start", "n3") in target.calls
    target.failing = set()
    nem.heal()
    assert target.calls[-1] == ("start", "n2")


def test_the_rng_picks_among_the_allowed_selections_only():
    nem = KillNemesis(fake_nodes(5), RecordingTarget(), random.Random(9),
                      {"targets": ["one", "minority"]})
    seen = {nem.invoke({"f": "start-kill"})["value"]["targets"] for _ in range(30)}
    assert seen == {"one", "minority"}
    with pytest.raises(ValueError, match="kill_targets must be"):
        KillNemesis(fake_nodes(5), RecordingTarget(), random.Random(9), {"kill_targets": ["x"]})


# ---------------------------------------------------------------- clock


class HostClockFake:
    """A host's clock, as set_offset moved it (or not, when `stuck`), and the node's shell
    answering the clock read with it."""

    def __init__(self, stuck=False):
        self.offsets = []
        self.stuck = stuck

    def set_offset(self, seconds):
        self.offsets.append(seconds)

    def exec(self, argv, **kw):
        from harness.protocols import ExecResult
        now = time.time() + (0.0 if self.stuck or not self.offsets else self.offsets[-1])
        return ExecResult(argv, 0, f"{now!r}\n", "")


def hosts_with_clocks(count, stuck=False):
    nodes = fake_nodes(count)
    for n in nodes:
        n.clock = n.remote = HostClockFake(stuck)
    return nodes


def test_clock_faults_move_hosts_clocks_when_the_nodes_have_their_own():
    nodes = hosts_with_clocks(3)
    target = RecordingTarget()
    nem = make_nemesis(["clock"], nodes, target, random.Random(1), {})
    value = nem.invoke({"f": "start-clock", "value": {"mode": "bump", "targets": ["n2"]}})["value"]
    assert nodes[1].clock.offsets[-1] == value["offsets"]["n2"] != 0
    assert value["observed"] == {"n2": f"clock reads {value['offsets']['n2']:+.3f} s "
                                       f"(set {value['offsets']['n2']:+.3f} s)"}
    nem.heal()
    assert all(n.clock.offsets[-1] == 0.0 for n in nodes)
    assert target.offsets == []  # the target's own clock is left alone


def test_a_clock_that_did_not_move_ends_the_run_with_what_was_seen():
    nodes = hosts_with_clocks(3, stuck=True)
    nem = make_nemesis(["clock"], nodes, RecordingTarget(), random.Random(1), {})
    with pytest.raises(FaultWithoutEffect, match=r"^clock bump had no effect on n2: clock reads "
                                                  r"[+-]0\.\d{3} s off the true time, though set to ") as e:
        nem.invoke({"f": "start-clock", "value": {"mode": "bump", "targets": ["n2"]}})
    assert e.value.value["observed"]["n2"].startswith("clock reads ")


def test_a_shared_kernel_refusal_is_the_error_when_no_clock_can_move():
    class Etcd:
        name = "etcd"
    nodes = fake_nodes(3)
    for n in nodes:
        n.clock_refused = "the hosts share one kernel"
    with pytest.raises(ValueError, match="^clock faults on etcd: the hosts share one kernel; or a "
                                         "target with the Clock capability .* etcd has none$"):
        make_nemesis(["clock"], nodes, Etcd(), random.Random(1), {})
    # a target with a clock of its own still takes clock faults on such hosts
    make_nemesis(["clock"], nodes, RecordingTarget(), random.Random(1), {})


def test_clock_faults_are_refused_for_a_target_without_a_controllable_clock():
    class Etcd(Kill):
        name = "etcd"

        def start(self, node):
            pass

        def kill(self, node):  # has a kill, yet declares no Clock: no clock faults
            pass
    with pytest.raises(ValueError) as e:
        make_nemesis(["partition", "clock"], fake_nodes(3), Etcd(), random.Random(1), {})
    assert str(e.value) == f"clock faults on etcd: {REFUSAL}"
    assert "Clock capability" in REFUSAL


def test_bump_moves_chosen_clocks_within_the_bound_and_stop_resets_all():
    target = RecordingTarget()
    nem = ClockNemesis(fake_nodes(5), target, random.Random(2), {"clock_max_offset": 5})
    value = nem.invoke({"f": "start-clock", "value": {"mode": "bump", "targets": "all"}})["value"]
    assert value["mode"] == "bump" and sorted(value["offsets"]) == NAMES5
    assert all(0 < abs(d) <= 5 for d in value["deltas"].values())
    assert target.offsets == list(value["offsets"].items())
    value2 = nem.invoke({"f": "start-clock", "value": {"mode": "bump", "targets": ["n1"]}})["value"]
    assert value2["offsets"]["n1"] == pytest.approx(value["offsets"]["n1"] + value2["deltas"]["n1"])
    assert nem.invoke({"f": "stop-clock"})["value"] == {"reset": NAMES5}
    assert target.offsets[-5:] == [(n, 0.0) for n in NAMES5]


def test_strobe_flips_clocks_until_stopped():
    target = RecordingTarget()
    nem = ClockNemesis(fake_nodes(3), target, random.Random(4), {"clock_strobe_period": 0.01})
    op = {"f": "start-clock", "value": {"mode": "strobe", "targets": ["n2"]}}
    value = nem.invoke(op)["value"]
    delta = value["deltas"]["n2"]
    time.sleep(0.2)
    nem.heal()
    seen = [s for n, s in target.offsets if n == "n2"]
    assert seen.count(delta) >= 3 and seen.count(0.0) >= 3
    calls = len(target.offsets)
    time.sleep(0.05)
    assert len(target.offsets) == calls  # the thread is gone
    assert target.offsets[-3:] == [("n1", 0.0), ("n2", 0.0), ("n3", 0.0)]


# ---------------------------------------------------------------- combination


def test_faults_table_names_a_start_and_stop_op_per_kind():
    assert set(FAULTS) == {"partition", "kill", "pause", "clock", "loss", "delay", "duplicate",
                           "disk", "figure8", "membership"}
    assert FAULTS["partition"] == ("start-partition", "stop-partition")
    assert all(start.startswith("start-") and stop.startswith("stop-")
               for start, stop in FAULTS.values())


def test_unknown_kinds_and_ops_are_refused_with_what_is_known():
    with pytest.raises(ValueError, match="known: partition, kill, pause, clock, loss, delay, duplicate, disk, figure8, membership"):
        make_nemesis(["kill", "flood"], fake_nodes(3), RecordingTarget(), random.Random(1), {})
    nem = make_nemesis(["kill"], fake_nodes(3), RecordingTarget(), random.Random(1), {})
    with pytest.raises(ValueError, match="start-kill, stop-kill"):
        nem.invoke({"f": "start-partition"})


def test_combined_routes_by_f_and_heals_every_kind():
    target = RecordingTarget()
    nem = make_nemesis(["kill", "pause", "clock"], fake_nodes(3), target, random.Random(1), {})
    assert nem.invoke({"f": "start-pause", "value": ["n1"]})["value"]["paused"] == ["n1"]
    assert nem.invoke({"f": "start-kill", "value": ["n2"]})["value"]["killed"] == ["n2"]
    nem.heal()
    assert target.calls == [("pause", "n1"), ("kill", "n2"), ("resume", "n1"), ("start", "n2")]
    assert target.offsets == [("n1", 0.0), ("n2", 0.0), ("n3", 0.0)]


# ---------------------------------------------------------------- real faults on a real cluster

PORT = 7070

SERVER = textwrap.dedent("""
    import json, os, socket, sys, threading
    address, port, offset_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def echo():
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((address, port))
        while True:
            data, peer = udp.recvfrom(2048)
            udp.sendto(data, peer)

    threading.Thread(target=echo, daemon=True).start()
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((address, port))
    tcp.listen(64)
    while True:
        conn, _ = tcp.accept()
        try:
            with open(offset_file) as f:
                offset = float(f.read() or 0)
        except FileNotFoundError:
            offset = 0.0
        conn.sendall(json.dumps({"pid": os.getpid(), "offset": offset}).encode())
        conn.close()
""")

# Run inside a node: which of the given addresses accept a TCP connection.
REACH = textwrap.dedent("""
    import concurrent.futures, json, socket, sys
    def reach(address):
        s = socket.socket(); s.settimeout(0.5)
        try:
            s.connect((address, int(sys.argv[1]))); return True
        except OSError:
            return False
        finally:
            s.close()
    with concurrent.futures.ThreadPoolExecutor(len(sys.argv) - 2) as pool:
        print(json.dumps(list(pool.map(reach, sys.argv[2:]))))
""")

# Run inside a node: send numbered UDP datagrams to an echo server, count those lost.
# Paced, and answers are drained while sending, so no socket buffer overflows; the wait
# for late answers is long enough that a busy machine does not pass for packet loss.
UDP_LOSS = textwrap.dedent("""
    import socket, sys, threading, time
    address, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    back = set()
    def drain():
        try:
            while len(back) < count:
                back.add(int(s.recv(64)))
        except socket.timeout:
            pass
    receiver = threading.Thread(target=drain)
    receiver.start()
    for i in range(count):
        s.sendto(str(i).encode(), (address, port))
        time.sleep(0.002)
    receiver.join()
    print(count - len(back))
""")


def ask(node, timeout=1.0):
    """The server's answer on node, or None when it does not answer in time."""
    try:
        with socket.create_connection((node.address, PORT), timeout=timeout) as s:
            s.settimeout(timeout)
            return json.loads(s.recv(4096) or b"null")
    except (OSError, ValueError):
        return None


class TinyTarget(Kill, Pause, Primary, Clock):
    """A Target whose process is SERVER: kill/pause/resume by signals, a clock offset file."""

    name = "tiny"

    def __init__(self, leader_name="n3"):
        self.leader_name = leader_name

    def _pid(self, node):
        with open(os.path.join(node.dir, "server.pid")) as f:
            return int(f.read())

    def start(self, node):
        node.remote.spawn([sys.executable, "-c", SERVER, node.address, str(PORT),
                           os.path.join(node.dir, "clock-offset")],
                          log=os.path.join(node.dir, "server.log"),
                          pidfile=os.path.join(node.dir, "server.pid"))
        deadline = time.monotonic() + 10
        while ask(node, timeout=0.2) is None:
            assert time.monotonic() < deadline, f"server on {node.name} did not start"
            time.sleep(0.02)

    def kill(self, node):
        pid = self._pid(node)
        node.remote.signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.01)

    def pause(self, node):
        node.remote.signal(self._pid(node), signal.SIGSTOP)

    def resume(self, node):
        node.remote.signal(self._pid(node), signal.SIGCONT)

    def leader(self, nodes):
        return next((n for n in nodes if n.name == self.leader_name), None)

    def set_clock_offset(self, node, seconds):
        path = os.path.join(node.dir, "clock-offset")
        with open(path + ".tmp", "w") as f:
            f.write(repr(float(seconds)))
        os.replace(path + ".tmp", path)


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("needs root for namespaces and iptables")
    from harness.control.clean import clean
    from harness.control.local import LocalCluster
    test_id = f"nem-{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory() as base:
        local = LocalCluster(test_id, 5, base)
        try:
            local.create()
            target = TinyTarget()
            for node in local.nodes:
                target.start(node)
            yield local, target
        finally:
            local.destroy()
            clean(test_id, force=True)  # this process owns the test


@pytest.fixture
def faults(cluster):
    """make(kinds, **opts) builds a nemesis on the cluster; every one is healed afterwards,
    and the test fails if a node is still unreachable or has a chain left."""
    local, target = cluster
    made = []

    def make(kinds, seed=1, **opts):
        nem = make_nemesis(kinds, local.nodes, target, random.Random(seed),
                           {"test_id": local.names.test_id, **opts})
        nem.setup()
        made.append(nem)
        return nem

    yield make
    for nem in made:
        nem.teardown()
    for node in local.nodes:
        assert ask(node) is not None, f"{node.name} still down after heal"
        assert "tectonic" not in node.remote.exec(["iptables", "-S"]).stdout


def reachability(nodes) -> dict[str, set[str]]:
    """For each node, the other nodes it can open a TCP connection to (probed from inside)."""
    def probe(node):
        others = [n for n in nodes if n is not node]
        out = node.remote.exec([sys.executable, "-c", REACH, str(PORT),
                                *[n.address for n in others]]).stdout
        return {n.name for n, ok in zip(others, json.loads(out)) if ok}
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        return dict(zip([n.name for n in nodes], pool.map(probe, nodes)))


@needs_root()
@pytest.mark.integration
@pytest.mark.parametrize("shape", [s if s == "halves" else pytest.param(s, marks=pytest.mark.slow)
                                   for s in SHAPES])
def test_partition_cuts_exactly_the_grudge_and_heals(cluster, faults, shape):
    local, _ = cluster
    names = [n.name for n in local.nodes]
    everyone = {a: set(names) - {a} for a in names}
    nem = faults(["partition"])
    op = nem.invoke({"f": "start-partition", "value": shape})
    grudge = op["value"]["grudge"]
    assert op["value"]["shape"] == shape and grudge
    # Each cut node's rule counted a probe datagram from its first cut peer.
    observed = op["value"]["observed"]
    assert sorted(observed) == sorted(grudge)
    assert all(observed[n].startswith(f"drops packets from {peers[0]} (probed with {PROBES} datagrams: ")
               for n, peers in grudge.items()), observed
    assert reachability(local.nodes) == sees(grudge, names)
    assert all(ask(n) is not None for n in local.nodes)  # the controller is never cut off
    healed = nem.invoke({"f": "stop-partition"})["value"]["healed"]
    assert healed == [n for n in names if n in grudge]
    assert reachability(local.nodes) == everyone


@needs_root()
@pytest.mark.integration
def test_a_partition_whose_rules_drop_nothing_ends_the_run_with_what_it_saw(cluster, faults):
    # n2 as the nemesis knows it has an address its packets do not come from (a node given
    # by a name or address other than the one it sends from): n1's rule would drop nothing.
    local, _ = cluster
    nodes = list(local.nodes)
    nodes[1] = dataclasses.replace(nodes[1], address="10.255.255.254")
    nem = make_nemesis(["partition"], nodes, cluster[1], random.Random(1),
                       {"test_id": local.names.test_id})
    try:
        with pytest.raises(FaultWithoutEffect, match=r"^partition custom had no effect on n1: "
                                                      r"3 probe datagrams n2 -> n1 \(10.255.255.254 as the rule on n1 names it\)") as e:
            nem.invoke({"f": "start-partition", "value": {"grudge": {"n1": ["n2"], "n3": ["n1"]}}})
        # What it did and saw is kept for the history: the rules, and n3's that did drop.
        assert e.value.value["grudge"] == {"n1": ["n2"], "n3": ["n1"]}
        assert e.value.value["observed"]["n1"].startswith("no effect: ")
        assert e.value.value["observed"]["n3"].startswith("drops packets from n1 (probed with ")
    finally:
        nem.teardown()
    assert all("tectonic" not in n.remote.exec(["iptables", "-S"]).stdout for n in local.nodes)


@needs_root()
@pytest.mark.integration
@pytest.mark.slow
def test_packet_loss_drops_a_fraction_on_the_chosen_nodes_links(cluster, faults):
    local, _ = cluster
    n1, n2, n3 = local.nodes[:3]

    def lost(src, dst, count=300):
        return int(src.remote.exec([sys.executable, "-c", UDP_LOSS, dst.address, str(PORT),
                                    str(count)]).stdout) / count

    assert lost(n1, n2) == 0
    nem = faults(["loss"])
    value = nem.invoke({"f": "start-loss",
                        "value": {"targets": ["n2"], "probability": 0.5}})["value"]
    assert value["nodes"] == ["n2"] and value["probability"] == 0.5
    assert value["drops"]["n2"] == ["n1", "n3", "n4", "n5"] and value["drops"]["n1"] == ["n2"]
    # About half of 24 probe datagrams over one lossy link of each node were counted dropped.
    assert value["observed"]["n2"].startswith("drops packets from n1 (probed with 24 datagrams: ")
    assert value["observed"]["n1"].startswith("drops packets from n2 (probed with 24 datagrams: ")
    # A round trip crosses the lossy link twice: about 1 - 0.5 * 0.5 = 75% are lost.
    assert 0.55 < lost(n1, n2) < 0.92
    assert lost(n1, n3) == 0
    nem.invoke({"f": "stop-loss"})
    assert lost(n1, n2) == 0


@needs_root()
@pytest.mark.integration
def test_kill_stops_the_process_and_stop_restarts_it(cluster, faults):
    local, _ = cluster
    by_name = {n.name: n for n in local.nodes}
    before = {n.name: ask(n)["pid"] for n in local.nodes}
    nem = faults(["kill"], seed=3)
    value = nem.invoke({"f": "start-kill", "value": "minority"})["value"]
    killed = value["killed"]
    assert len(killed) == 2
    assert all(value["observed"][n].startswith(f"gone (pid {before[n]} (") for n in killed)
    for name, node in by_name.items():
        assert (ask(node) is None) == (name in killed)
    assert nem.invoke({"f": "stop-kill"})["value"] == {"restarted": killed}
    for name in killed:
        assert ask(by_name[name])["pid"] != before[name]


@needs_root()
@pytest.mark.integration
def test_pause_freezes_the_process_and_resume_thaws_it(cluster, faults):
    local, _ = cluster
    by_name = {n.name: n for n in local.nodes}
    before = {n.name: ask(n)["pid"] for n in local.nodes}
    nem = faults(["pause"])
    value = nem.invoke({"f": "start-pause", "value": "leader"})["value"]
    assert value == {"targets": "leader", "paused": ["n3"],
                     "observed": {"n3": f"stopped (pid {before['n3']})"}}
    assert ask(by_name["n3"], timeout=0.5) is None
    assert ask(by_name["n1"])["pid"] == before["n1"]
    nem.invoke({"f": "stop-pause"})
    assert ask(by_name["n3"])["pid"] == before["n3"]


@needs_root()
@pytest.mark.integration
def test_clock_offsets_reach_the_nodes_and_reset(cluster, faults):
    local, _ = cluster
    by_name = {n.name: n for n in local.nodes}
    nem = faults(["clock"], clock_max_offset=20, clock_strobe_period=0.02)
    value = nem.invoke({"f": "start-clock", "value": {"mode": "bump", "targets": "all"}})["value"]
    assert {n: ask(by_name[n])["offset"] for n in NAMES5} == value["offsets"]
    nem.invoke({"f": "start-clock", "value": {"mode": "strobe", "targets": ["n4"]}})
    seen = set()
    deadline = time.monotonic() + 3
    while len(seen) < 2 and time.monotonic() < deadline:
        seen.add(ask(by_name["n4"])["offset"])
        time.sleep(0.005)
    assert len(seen) == 2
    nem.invoke({"f": "stop-clock"})
    assert all(ask(n)["offset"] == 0.0 for n in local.nodes)


@needs_root()
@pytest.mark.integration
def test_heal_undoes_every_kind_at_once(cluster, faults):
    local, _ = cluster
    # The disk fault needs lazy filesystems mounted before the target starts
    # (tests/test_disk_faults.py), figure8 a Raft target on 3 nodes and no delay fault
    # beside it (tests/test_e2e_raftkv.py), membership changes a target that reconfigures
    # (tests/test_membership.py); every other kind is here.
    nem = faults([k for k in FAULTS if k not in ("disk", "figure8", "membership")], seed=11)
    for kind in ("partition", "loss", "delay", "duplicate", "clock", "pause", "kill"):
        nem.invoke({"f": FAULTS[kind][0], "value": None})
    nem.heal()
    nem.heal()
    for node in local.nodes:
        assert "tectonic" not in node.remote.exec(["iptables", "-t", "mangle", "-S"]).stdout
    names = [n.name for n in local.nodes]
    assert reachability(local.nodes) == {a: set(names) - {a} for a in names}
    assert all(ask(n)["offset"] == 0.0 for n in local.nodes)


@needs_root()
@pytest.mark.integration
@pytest.mark.slow
def test_every_fault_kind_on_raftkv_and_raftkv_recovers_after_heal(tmp_path):
    from harness.control.local import LocalCluster
    from targets.raftkv import RaftKVTarget
    with LocalCluster(f"nemrk-{secrets.token_hex(3)}", 5, str(tmp_path),
                      RaftKVTarget.needs) as local:
        target = RaftKVTarget({"bugs": []}, local.nodes)
        try:
            for node in local.nodes:
                target.setup(node)
            target.wait_healthy(local.nodes, timeout=30)
            # The disk fault needs lazy filesystems mounted before the target starts, figure8
            # 3 nodes and no delay fault beside it: they have tests of their own.
            nem = make_nemesis([k for k in FAULTS if k not in ("disk", "figure8")], local.nodes, target, random.Random(3),
                               {"test_id": local.names.test_id})
            nem.setup()
            leader = target.leader(local.nodes).name
            value = nem.invoke({"f": "start-kill", "value": "leader"})["value"]
            assert value["killed"] == [leader] and value["targets"] == "leader"
            assert value["observed"][leader].startswith("gone (pid ")
            for kind in ("partition", "pause", "clock", "loss"):
                nem.invoke({"f": FAULTS[kind][0], "value": None})
            nem.heal()
            target.wait_healthy(local.nodes, timeout=30)
        finally:
            for node in local.nodes:
                target.teardown(node)
