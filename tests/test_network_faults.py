"""Delay, reordering, duplication and one-way partitions in a real local cluster.

Each node runs the UDP probe server (nemesis/probe.py); probes sent from inside the nodes
measure what a fault does (round trips, order, copies, who hears whom), and the same probes
after heal show it undone. Nothing may be left: no chain in any table, no delayer process.
"""
import json
import os
import random
import secrets
import signal
import statistics
import sys
import tempfile
import time

import pytest

from harness.control.netns import netns_pids, process_description
from harness.protocols import Node
from nemesis import make_nemesis
from nemesis.delay import DelayNemesis
from nemesis.partition import PartitionNemesis
from nemesis.probe import heard
from tests.conftest import needs_root

PORT = 7311


def probe(node, *args) -> dict:
    out = node.remote.exec([sys.executable, "-m", "nemesis.probe", *map(str, args)], timeout=60)
    return json.loads(out.stdout)


def median_rtt(src, dst, count=40) -> float:
    times = probe(src, "rtt", dst.address, PORT, count)["rtt"]
    assert None not in times, f"pings from {src.name} to {dst.name} were lost"
    return statistics.median(times)


def processes(cluster, node) -> list[str]:
    return [process_description(p) for p in netns_pids(cluster.names.node_netns(node.name))]


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("needs root for namespaces and iptables")
    from harness.control.clean import clean
    from harness.control.local import LocalCluster
    test_id = f"netf-{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory() as base:
        local = LocalCluster(test_id, 3, base)
        try:
            local.create()
            for node in local.nodes:
                node.remote.spawn([sys.executable, "-m", "nemesis.probe", "serve", node.address,
                                   str(PORT)], log=os.path.join(node.dir, "probe.log"),
                                  pidfile=os.path.join(node.dir, "probe.pid"))
            deadline = time.monotonic() + 10
            while True:
                try:
                    for node in local.nodes:
                        heard(node.address, PORT)
                    break
                except OSError:
                    assert time.monotonic() < deadline, "probe servers did not start"
            yield local
        finally:
            local.destroy()
            clean(test_id)


@pytest.fixture
def faults(cluster):
    """make(kinds, **opts): a nemesis on the cluster; afterwards it is torn down and the
    test fails if any chain of ours or any delayer is left on a node."""
    made = []

    def make(kinds, seed=1, **opts):
        nem = make_nemesis(kinds, cluster.nodes, None, random.Random(seed),
                           {"test_id": cluster.names.test_id, **opts})
        nem.setup()
        made.append(nem)
        return nem

    yield make
    for nem in made:
        nem.teardown()
    for node in cluster.nodes:
        for table in ("filter", "mangle"):
            rules = node.remote.exec(["iptables", "-t", table, "-S"]).stdout
            assert "tectonic" not in rules, f"{node.name} keeps a {table} chain: {rules}"
        assert not [p for p in processes(cluster, node) if "nemesis.delayer" in p]


@needs_root()
@pytest.mark.integration
@pytest.mark.slow
def test_delay_adds_the_asked_latency_to_exactly_the_delayed_link(cluster, faults):
    n1, n2, n3 = cluster.nodes
    before = median_rtt(n1, n2)
    assert before < 0.01
    nem = faults(["delay"])
    value = nem.invoke({"f": "start-delay", "value": {"links": {"n1": ["n2"]}, "mean": 0.08,
                                                      "jitter": 0.005}})["value"]
    assert value == {"targets": "links", "nodes": ["n1"], "links": {"n1": ["n2"]},
                     "mean": 0.08, "jitter": 0.005, "distribution": "uniform", "reorder": 0.0,
                     "observed": {"n1": "delays packets to n2 (probed with 3 datagrams: 3 counted)"}}
    # One way delayed, the echo back not: the round trip grows by the mean (the shared CPU
    # may add a little, never take away).
    during = median_rtt(n1, n2)
    assert 0.075 < during < 0.12, during
    assert median_rtt(n1, n3) < 0.02  # the other link is untouched
    assert median_rtt(n2, n1) > 0.075  # n2's pings are answered over the delayed link
    assert nem.invoke({"f": "stop-delay"})["value"] == {"healed": ["n1"]}
    assert median_rtt(n1, n2) < 0.01


@needs_root()
@pytest.mark.integration
@pytest.mark.slow
def test_a_killed_delayer_lets_traffic_through_and_heal_still_cleans_up(cluster, faults):
    n1, n2, _ = cluster.nodes
    nem = faults(["delay"], delay_mean=0.2, delay_jitter=0.0)
    nem.invoke({"f": "start-delay", "value": ["n1"]})
    assert median_rtt(n1, n2, count=5) > 0.19
    pid = nem.parts["delay"].delayers["n1"]
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    # The queue's rule stays, but with no delayer bound the kernel lets packets pass.
    assert "NFQUEUE" in n1.remote.exec(["iptables", "-S"]).stdout
    assert median_rtt(n1, n2) < 0.01
    assert nem.invoke({"f": "stop-delay"})["value"] == {"healed": ["n1"]}


@needs_root()
@pytest.mark.integration
@pytest.mark.slow
def test_jitter_and_reorder_deliver_packets_out_of_order(cluster, faults):
    n1, n2, _ = cluster.nodes
    assert probe(n1, "burst", n2.address, PORT, 100)["order"] == list(range(100))
    nem = faults(["delay"])
    nem.invoke({"f": "start-delay", "value": {"links": {"n1": ["n2"]}, "mean": 0.05,
                                              "jitter": 0.0, "reorder": 0.3}})
    order = probe(n1, "burst", n2.address, PORT, 100)["order"]
    assert sorted(order) == list(range(100))  # reordered, none lost
    # About 30% are sent at once, ahead of the held ones sent before them.
    ahead = sum(1 for j, x in enumerate(order) if any(y < x for y in order[j + 1:]))
    assert 12 <= ahead <= 50, order
    nem.invoke({"f": "stop-delay"})
    assert probe(n1, "burst", n2.address, PORT, 100)["order"] == list(range(100))


@needs_root()
@pytest.mark.integration
@pytest.mark.slow
def test_duplication_delivers_copies_on_the_chosen_nodes_links(cluster, faults):
    n1, n2, n3 = cluster.nodes
    assert probe(n1, "rtt", n2.address, PORT, 100)["extra"] == 0
    nem = faults(["duplicate"])
    value = nem.invoke({"f": "start-duplicate",
                        "value": {"targets": ["n2"], "probability": 0.5}})["value"]
    assert value["copies"] == {"n1": ["n2"], "n2": ["n1", "n3"], "n3": ["n2"]}
    # Each sender's TEE rule counted some of the probe datagrams sent over one of its links.
    assert {n: v.split(" (")[0] for n, v in value["observed"].items()} == {
        "n1": "copies packets to n2", "n2": "copies packets to n1", "n3": "copies packets to n2"}
    # Request and echo are each copied with P = 0.5: 1.5 * 1.5 = 2.25 echoes per ping.
    extra = probe(n1, "rtt", n2.address, PORT, 200)["extra"]
    assert 150 < extra < 350, extra
    assert probe(n1, "rtt", n3.address, PORT, 100)["extra"] == 0
    assert nem.invoke({"f": "stop-duplicate"})["value"] == {"healed": ["n1", "n2", "n3"]}
    assert probe(n1, "rtt", n2.address, PORT, 100)["extra"] == 0


@needs_root()
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("shape", ["one-way-isolate", "one-way-mute", "one-way-bridge"])
def test_one_way_partitions_cut_one_direction_only(cluster, faults, shape):
    names = [n.name for n in cluster.nodes]
    address = {n.name: n.address for n in cluster.nodes}
    nem = faults(["partition"])
    grudge = nem.invoke({"f": "start-partition", "value": shape})["value"]["grudge"]
    assert any(a not in grudge.get(b, []) for a, peers in grudge.items() for b in peers), \
        f"{shape} should leave some cut link open the other way: {grudge}"
    for node in cluster.nodes:
        heard(node.address, PORT)  # forget earlier tests' senders
    for src in cluster.nodes:
        for dst in cluster.nodes:
            if dst is not src:
                probe_no_output(src, "hello", dst.address, PORT)
    time.sleep(0.5)  # a first datagram may wait for ARP
    for name in names:
        senders = heard(address[name], PORT)
        got = {n for n in names if address[n] in senders}
        assert got == {n for n in names if n != name and n not in grudge.get(name, [])}, (name, grudge)
    nem.invoke({"f": "stop-partition"})


def probe_no_output(node, *args) -> None:
    node.remote.exec([sys.executable, "-m", "nemesis.probe", *map(str, args)])


def wait_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if ") Z " in f.read():
                    return
        except OSError:
            return
        assert time.monotonic() < deadline, f"pid {pid} survives SIGKILL"
        time.sleep(0.01)


def test_one_way_shapes_are_asymmetric_grudges():
    from nemesis.partition import one_way_bridge, one_way_isolate, one_way_mute
    names = ["n1", "n2", "n3", "n4", "n5"]
    assert one_way_isolate(names, "n2") == {"n2": ["n1", "n3", "n4", "n5"]}
    assert one_way_mute(names, "n2") == {"n1": ["n2"], "n3": ["n2"], "n4": ["n2"], "n5": ["n2"]}
    # n3 bridges n1,n2 | n4,n5 and hears only n1,n2; n4 and n5 still hear n3.
    assert one_way_bridge(names) == {"n1": ["n4", "n5"], "n2": ["n4", "n5"], "n3": ["n4", "n5"],
                                     "n4": ["n1", "n2"], "n5": ["n1", "n2"]}


def test_delay_parameters_are_checked_and_other_backends_refused():
    local = [Node(name=f"n{i}", address=f"10.0.0.{i}", remote=None, dir="/nonexistent",
                  backend="local") for i in (1, 2, 3)]
    for bad in ({"delay_mean": -1}, {"delay_jitter": float("nan")}, {"delay_mean": True},
                {"delay_distribution": "pareto"}, {"delay_reorder": 2}):
        with pytest.raises(ValueError, match="delay"):
            DelayNemesis(local, None, random.Random(1), bad)
    docker = [Node(name="n1", address="10.0.0.1", remote=None, dir="/x",
                   backend="docker")]
    with pytest.raises(ValueError, match="delay faults need the local backend.*docker"):
        DelayNemesis(docker, None, random.Random(1), {})
    with pytest.raises(ValueError, match="unknown nodes"):
        DelayNemesis(local, None, random.Random(1), {}).start({"links": {"n9": ["n1"]}})
    assert PartitionNemesis(local, None, random.Random(1), {}).grudge_for("one-way-mute")[1]


def test_figure8_is_refused_where_it_cannot_stage_its_elections():
    from nemesis.figure8 import Figure8Nemesis
    from targets.raftkv import RaftKVTarget

    def nodes(n, backend="local"):
        return [Node(name=f"n{i}", address=f"10.0.0.{i}", remote=None, dir="/nonexistent",
                     backend=backend) for i in range(1, n + 1)]
    raftkv = RaftKVTarget({}, nodes(3))
    with pytest.raises(ValueError, match="exactly 3 nodes; this cluster has 5"):
        Figure8Nemesis(nodes(5), raftkv, random.Random(1), {})
    with pytest.raises(ValueError, match="does not report it"):
        Figure8Nemesis(nodes(3), object(), random.Random(1), {})
    with pytest.raises(ValueError, match="figure8_delay"):
        Figure8Nemesis(nodes(3), raftkv, random.Random(1), {"figure8_delay": 0})
    with pytest.raises(ValueError, match="figure8 faults need the local backend.*ssh"):
        Figure8Nemesis(nodes(3, "ssh"), raftkv, random.Random(1), {})
    with pytest.raises(ValueError, match="cannot be combined with delay"):
        make_nemesis(["figure8", "delay"], nodes(3), raftkv, random.Random(1), {})


@pytest.mark.parametrize("fault", ["delay", "disk", "figure8"])
@pytest.mark.parametrize("backend", ["docker", "ssh"])
def test_faults_that_need_the_local_backend_are_refused_before_any_cluster(fault, backend):
    from core.errors import SpecError
    from harness.spec import resolve_spec
    spec = {"nemesis": [fault], "backend": backend,
            "backend_opts": {"nodes": ["h1", "h2", "h3"]} if backend == "ssh" else {}}
    with pytest.raises(SpecError, match=f"{fault} faults need the local backend"):
        resolve_spec(spec)


def test_disk_rolling_is_checked_before_any_cluster():
    from nemesis.combined import check_options
    with pytest.raises(ValueError, match="disk_rolling must be true or false"):
        check_options(["disk"], {"disk_rolling": "yes"})
    with pytest.raises(ValueError, match="disk_rolling.*for the disk fault"):
        check_options(["partition"], {"disk_rolling": True})
    check_options(["partition", "disk"], {"disk_rolling": True, "together": 2})
