"""Membership changes: the nemesis on a fake, and on real clusters in network namespaces.

On a real cluster a member is removed (its data wiped, its process a spare serving
nothing), added back (it catches up), `heal` restores the full membership, and teardown
leaves no process behind; a whole test under `--nemesis membership` is valid.
"""
import os
import random
import secrets
import subprocess
import sys
import time

import pytest

from core.history import read_jsonl
from core.history.faults import fault_periods
from harness.protocols import Membership, NoopTarget
from nemesis.combined import make_nemesis
from tests.conftest import ROOT, needs_root


class FakeMembers(NoopTarget, Membership):
    """Keeps a member list; records every change."""

    def __init__(self, names):
        self.current = list(names)
        self.calls = []

    def members(self, nodes):
        return sorted(self.current)

    def add_member(self, node, nodes):
        self.calls.append(("add", node.name))
        self.current.append(node.name)
        return sorted(self.current)

    def remove_member(self, node, nodes):
        self.calls.append(("remove", node.name))
        self.current.remove(node.name)
        return sorted(self.current)


def _nodes(count):
    from tests.test_nemesis import fake_nodes
    return fake_nodes(count)


@pytest.mark.parametrize("count, floor", [(3, 2), (5, 3), (7, 4)])
def test_start_shrinks_never_below_a_majority_and_stop_grows_back(count, floor):
    nodes = _nodes(count)
    target = FakeMembers([n.name for n in nodes])
    nem = make_nemesis(["membership"], nodes, target, random.Random(1), {})
    nem.setup()
    for seed in range(20):
        nem.parts["membership"].rng = random.Random(seed)
        value = nem.invoke({"f": "start-membership", "value": None})["value"]
        assert floor <= len(value["members"]) < count, value
        assert all("removed" in c and "members" in c for c in value["changes"])
        assert value["members"] == value["changes"][-1]["members"]
        # A second start at the floor does nothing, and says so.
        while len(target.current) > floor:
            nem.invoke({"f": "start-membership", "value": None})
        assert "skipped" in nem.invoke({"f": "start-membership", "value": None})["value"]
        back = nem.invoke({"f": "stop-membership", "value": None})["value"]
        assert back["members"] == sorted(n.name for n in nodes)
        assert all("added" in c for c in back["changes"])
    nem.heal()
    assert target.members(nodes) == sorted(n.name for n in nodes)


def test_heal_records_the_members_it_added_back():
    from nemesis.healing import HEAL, HealingNemesis
    nodes = _nodes(5)
    target = FakeMembers([n.name for n in nodes])
    nem = HealingNemesis(make_nemesis(["membership"], nodes, target, random.Random(1), {}))
    assert nem.invoke(dict(HEAL))["value"] == "healed every fault"  # nothing to add back
    nem.invoke({"f": "start-membership", "value": {"remove": "n4"}})
    value = nem.invoke(dict(HEAL))["value"]
    assert value == {"healed": "every fault", "membership": {
        "changes": [{"added": "n4", "members": ["n1", "n2", "n3", "n4", "n5"]}],
        "members": ["n1", "n2", "n3", "n4", "n5"]}}


def test_explicit_changes_and_a_failed_change_are_recorded():
    nodes = _nodes(5)
    target = FakeMembers([n.name for n in nodes])
    nem = make_nemesis(["membership"], nodes, target, random.Random(1), {})
    value = nem.invoke({"f": "start-membership", "value": {"remove": "n2"}})["value"]
    assert value == {"changes": [{"removed": "n2", "members": ["n1", "n3", "n4", "n5"]}],
                     "members": ["n1", "n3", "n4", "n5"]}

    def refuse(node, nodes):
        raise RuntimeError("no quorum")
    target.add_member = refuse
    value = nem.invoke({"f": "start-membership", "value": {"add": "n2"}})["value"]
    assert value["changes"] == [{"error": "add n2: no quorum"}]
    with pytest.raises(RuntimeError, match="add n2: no quorum"):
        nem.heal()  # a heal that could not restore the membership does not pass for done
    with pytest.raises(ValueError, match="unknown node 'n9'"):
        nem.invoke({"f": "start-membership", "value": {"remove": "n9"}})


def test_membership_is_refused_for_a_target_without_it():
    with pytest.raises(ValueError, match="Membership capability; 'noop' has none"):
        make_nemesis(["membership"], _nodes(5), NoopTarget({}, []), random.Random(1), {})


def test_membership_periods_are_fault_periods():
    history = [{"type": "info", "process": "nemesis", "f": "start-membership", "time": 5,
                "value": {"changes": [{"removed": "n1", "members": ["n2", "n3"]}]}},
               {"type": "info", "process": "nemesis", "f": "stop-membership", "time": 9,
                "value": {"changes": [{"added": "n1", "members": ["n1", "n2", "n3"]}]}}]
    (period,) = fault_periods(history)
    assert (period.kind, period.start, period.end, period.stopped) == ("membership", 5, 9, True)


@pytest.mark.parametrize("args, message", [
    (["--target", "postgres", "--workload", "list-append", "--node-count", "1",
      "--nemesis", "membership"],
     "membership faults need a target with the Membership capability; postgres has none"),
    (["--target", "raftkv", "--nemesis", "membership", "--node-count", "2"],
     "membership changes need at least 3 nodes"),
])
def test_cli_refuses_membership_before_any_cluster(args, message):
    r = subprocess.run([sys.executable, "-m", "harness.cli", "test", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 254, r.stderr
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


# ---------------------------------------------------------------- real clusters


def _wait(what, condition, within=30.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {within}s: {what}")


def _processes_under(path):
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if path in line]


@needs_root()
@pytest.mark.integration
@pytest.mark.slow
def test_raftkv_member_removed_added_and_heal_restores_all(tmp_path):
    from harness.control.local import LocalCluster
    from targets.raftkv import RaftKVTarget
    with LocalCluster(f"mem-{secrets.token_hex(3)}", 5, str(tmp_path),
                      RaftKVTarget.needs) as local:
        nodes = local.nodes
        names = [n.name for n in nodes]
        target = RaftKVTarget({"bugs": []}, nodes)
        try:
            for node in nodes:
                target.setup(node)
            target.wait_healthy(nodes, timeout=30)
            nem = make_nemesis(["membership"], nodes, target, random.Random(3),
                               {"test_id": local.names.test_id})
            nem.setup()
            leader = target.leader(nodes)
            # Remove the leader: its removal commits, it steps down, another leads.
            value = nem.invoke({"f": "start-membership", "value": {"remove": leader.name}})["value"]
            rest = sorted(set(names) - {leader.name})
            assert value["changes"] == [{"removed": leader.name, "members": rest}]
            assert target.members(nodes) == rest
            spare = _wait("the removed server back as a spare", lambda: target.status(leader))
            assert spare["members"] == [] and spare["last_index"] == 0, spare  # wiped, a spare
            others = [n for n in nodes if n.name != leader.name]
            client = target.client(others[0])
            client.open(others[0])
            try:
                assert _wait("a write after the removal", lambda: client.invoke(
                    {"f": "write", "value": ["k", 7]}, 3.0)["type"] == "ok")
            finally:
                client.close()
            # The spare's clients fail cleanly: it belongs to no configuration.
            spare_client = target.client(leader)
            spare_client.open(leader)
            try:
                assert spare_client.invoke({"f": "read", "value": ["k", None]}, 3.0)["type"] == "fail"
            finally:
                spare_client.close()
            # Added back as a new server, it catches up with the log.
            value = nem.invoke({"f": "start-membership", "value": {"add": leader.name}})["value"]
            assert value["members"] == names
            _wait("the added server catches up", lambda: (
                (s := target.status(leader)) and s["members"] == names
                and s["commit"] >= target.status(target.leader(nodes))["commit"] - 1
                and s["last_index"] > 1))
            # Shrink by two more, then heal grows the cluster back to all five.
            nem.invoke({"f": "start-membership", "value": {"remove": names[1]}})
            nem.invoke({"f": "start-membership", "value": {"remove": names[2]}})
            assert target.members(nodes) == sorted(set(names) - {names[1], names[2]})
            nem.heal()
            assert target.members(nodes) == names
            # Committed on a majority; every server learns it within a few heartbeats.
            _wait("every server in the full configuration", lambda: all(
                (s := target.status(n)) and s["members"] == names for n in nodes))
            nem.teardown()
        finally:
            for node in nodes:
                target.teardown(node)
        assert _processes_under(str(tmp_path)) == []
    assert _processes_under(str(tmp_path)) == []


def _run_spec(tmp_path, **kw):
    from harness.run import run_test
    spec = {"target": "raftkv", "workload": "register", "node_count": 5, "concurrency": 10,
            "rate": 100, "nemesis_interval": 3, "recovery_time": 5, "time_limit": 24,
            "store": str(tmp_path / "store"), **kw}
    out = run_test(spec)
    history = read_jsonl(os.path.join(out.run_dir, "history.jsonl"))
    changes = [c for op in history if op.get("process") == "nemesis" and op["type"] == "info"
               and op["f"] in ("start-membership", "stop-membership")
               for c in op["value"]["changes"]]
    return out, history, changes


@needs_root()
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("nemesis, opts", [(["membership"], {}),
                                           (["membership", "partition", "kill"], {"together": 2})],
                         ids=["membership", "membership-partition-kill"])
def test_raftkv_register_valid_under_membership_changes(tmp_path, nemesis, opts):
    out, history, changes = _run_spec(tmp_path, nemesis=nemesis, nemesis_opts=opts, seed=5)
    assert any("removed" in c for c in changes) and any("added" in c for c in changes), changes
    assert out.valid is True, out.results


ETCD = "/usr/bin/etcd"
needs_etcd = pytest.mark.skipif(not os.access(ETCD, os.X_OK), reason="needs etcd (apt-get install etcd-server)")


@needs_root()
@needs_etcd
@pytest.mark.integration
@pytest.mark.slow
def test_etcd_member_removed_added_and_heal_restores_all(tmp_path):
    from harness.control.local import LocalCluster
    from targets.etcd import EtcdTarget
    with LocalCluster(f"meme-{secrets.token_hex(3)}", 5, str(tmp_path), EtcdTarget.needs) as local:
        nodes = local.nodes
        names = [n.name for n in nodes]
        target = EtcdTarget({"target_opts": {}}, nodes)
        try:
            for node in nodes:
                target.setup(node)
            target.wait_healthy(nodes, timeout=30)
            nem = make_nemesis(["membership"], nodes, target, random.Random(3),
                               {"test_id": local.names.test_id})
            nem.setup()
            leader = target.leader(nodes)
            value = nem.invoke({"f": "start-membership", "value": {"remove": leader.name}})["value"]
            rest = sorted(set(names) - {leader.name})
            assert value["changes"] == [{"removed": leader.name, "members": rest}]
            # Stopped, its data dir gone; a kill nemesis's restart leaves it down.
            assert target._running_pid(leader) is None
            assert leader.remote.exec(["test", "-e", target.data_dir(leader)], check=False).returncode != 0
            target.start(leader)
            assert target._running_pid(leader) is None
            others = [n for n in nodes if n.name != leader.name]
            assert _wait("a write after the removal",
                         lambda: target._probe_write(others[0])["type"] == "ok")
            value = nem.invoke({"f": "start-membership", "value": {"add": leader.name}})["value"]
            assert value["members"] == names and target.status(leader) is not None
            assert _wait("a write through the re-added member",
                         lambda: target._probe_write(leader)["type"] == "ok")
            # etcd derives a new member's ID from its peer URL and the second it is added
            # in: added, removed and added again within one second, the node gets the ID
            # just removed, which etcd refuses ("member not found"). Start on a second's
            # boundary so the second add falls in the first one's second.
            nem.invoke({"f": "start-membership", "value": {"remove": leader.name}})
            time.sleep(1.02 - time.time() % 1)
            started = time.time()
            nem.invoke({"f": "start-membership", "value": {"add": leader.name}})
            nem.invoke({"f": "start-membership", "value": {"remove": leader.name}})
            readded = nem.invoke({"f": "start-membership", "value": {"add": leader.name}})["value"]
            assert readded["members"] == names, (readded, time.time() - started)
            nem.invoke({"f": "start-membership", "value": {"remove": names[1]}})
            nem.invoke({"f": "start-membership", "value": {"remove": names[2]}})
            assert target.members(nodes) == sorted(set(names) - {names[1], names[2]})
            nem.heal()
            assert target.members(nodes) == names
            _wait("every member up", lambda: all(target.status(n) for n in nodes))
            nem.teardown()
        finally:
            for node in nodes:
                target.teardown(node)
        assert _processes_under(str(tmp_path)) == []


@needs_root()
@needs_etcd
@pytest.mark.integration
@pytest.mark.slow
def test_etcd_register_valid_under_membership_changes(tmp_path):
    out, history, changes = _run_spec(tmp_path, target="etcd", nemesis=["membership"], seed=3)
    assert any("removed" in c for c in changes) and any("added" in c for c in changes), changes
    assert out.valid is True, out.results
