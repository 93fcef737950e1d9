"""The Raft core on a simulated network: safety after every step, across many seeds.

A failure message names the seed; `Simulation(seed, config).run()` replays it exactly.
"""
import random

import pytest

from targets.raftkv.raft import LEADER, Config, Persistent, Raft
from targets.raftkv.sim import SafetyViolation, SimConfig, Simulation, with_raft

FAST_SEEDS = range(8)
SLOW_SEEDS = range(8, 80)


def _run(seed, config=None):
    stats = Simulation(seed, config).run()
    # Faults must not stop progress altogether: a test that commits nothing checks nothing.
    assert stats["committed"] > 20, f"seed {seed}: almost nothing committed: {stats}"
    assert stats["elections"] >= 1 and stats["reads"] > 0, stats
    return stats


@pytest.mark.parametrize("seed", FAST_SEEDS)
def test_safety_under_faults(seed):
    _run(seed)


@pytest.mark.parametrize("seed", range(4))
def test_safety_three_nodes_without_pre_vote(seed):
    _run(seed, with_raft(SimConfig(nodes=3), pre_vote=False))


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SEEDS)
def test_safety_under_faults_many_seeds(seed):
    _run(seed, SimConfig(steps=3000))


def test_same_seed_same_run():
    assert Simulation(3).run() == Simulation(3).run()


def _figure8_config(steps=3000):
    # Leaders that crash or get cut off soon after being elected, slow messages and one
    # entry per message make the Figure 8 interleaving likely: a new leader replicates an
    # old-term entry to a majority, counts it as committed, and is gone before an entry of
    # its own term follows it; a node holding a newer conflicting entry is then elected.
    cfg = SimConfig(steps=steps, crash_rate=0.0, leader_crash_rate=0.05,
                    leader_isolate_rate=0.05, partition_rate=0.0, heal_rate=0.05,
                    restart_rate=0.1, slow=0.2, compact_every=10_000)
    return with_raft(cfg, count_old_terms=True, max_entries_per_message=1,
                     max_inflight_entries=1)


def test_no_term_check_loses_a_committed_entry():
    """With the no-term-check bug, the simulation finds a committed entry that a later
    leader does not have (Figure 8 of the Raft paper)."""
    for seed in range(60):
        try:
            Simulation(seed, _figure8_config()).run()
        except SafetyViolation as e:
            assert "committed" in str(e), e
            return
    pytest.fail("no seed exposed the Figure 8 bug")


@pytest.mark.slow
def test_no_term_check_is_caught_often():
    caught = 0
    for seed in range(60):
        try:
            Simulation(seed, _figure8_config()).run()
        except SafetyViolation:
            caught += 1
    assert caught >= 3, f"only {caught} of 60 seeds exposed the Figure 8 bug"


@pytest.mark.parametrize("seed", range(3))
def test_figure8_schedule_is_safe_with_the_term_check(seed):
    """The very schedules that expose the bug are safe once the term check is back."""
    Simulation(seed, with_raft(_figure8_config(), count_old_terms=False)).run()


def _cluster(n=3):
    ids = [f"n{i + 1}" for i in range(n)]
    return {i: Raft(i, ids, Persistent(), Config(), random.Random(7), 0.0) for i in ids}


def _deliver(nodes, now, outputs=None):
    """Run every node's ready work and deliver messages until the cluster is quiet."""
    pending = []
    for node in nodes.values():
        while node.has_ready():
            r = node.ready()
            pending += [(node.id, to, m) for to, m in r.early_messages + r.messages]
            if outputs is not None:
                outputs.setdefault(node.id, []).append(r)
            node.advance(r)
    while pending:
        frm, to, msg = pending.pop(0)
        nodes[to].step(frm, msg, now)
        while nodes[to].has_ready():
            r = nodes[to].ready()
            pending += [(to, t, m) for t, m in r.early_messages + r.messages]
            if outputs is not None:
                outputs.setdefault(to, []).append(r)
            nodes[to].advance(r)


def test_election_then_replication_and_read():
    nodes = _cluster()
    nodes["n1"].tick(1.0)  # past every election timeout: n1 campaigns
    _deliver(nodes, 1.0)
    assert nodes["n1"].state == LEADER and nodes["n1"].term == 1
    assert all(n.leader == "n1" for n in nodes.values())
    index, term = nodes["n1"].propose("x", 1.0)
    out = {}
    _deliver(nodes, 1.0, out)
    committed = [e for r in out["n1"] for e in r.committed]
    assert (index, term, "x") in committed
    assert nodes["n1"].read_index("r1", 1.0)
    out = {}
    _deliver(nodes, 1.0, out)
    assert ("r1", index) in [rd for r in out["n1"] for rd in r.reads]


def test_votes_are_persisted_before_they_are_sent():
    nodes = _cluster()
    nodes["n1"].tick(1.0)
    r = nodes["n1"].ready()           # pre-votes: no term change yet
    assert r.hard_state is None and all(m["t"] == "pv" for _, m in r.messages)
    nodes["n2"].step("n1", {"t": "v", "term": 1, "li": 0, "lt": 0}, 2.0)
    r = nodes["n2"].ready()
    assert r.hard_state == (1, "n1")
    assert r.messages == [("n1", {"t": "vr", "term": 1, "ok": True})]
    assert r.early_messages == []     # a vote waits for the disk


def test_pre_vote_keeps_a_partitioned_node_from_raising_terms():
    nodes = _cluster()
    for t in range(1, 20):
        nodes["n3"].tick(float(t))    # campaigns again and again, nobody answers
        nodes["n3"].ready()
    assert nodes["n3"].term == 0


def test_leader_steps_down_without_a_quorum():
    nodes = _cluster()
    nodes["n1"].tick(1.0)
    _deliver(nodes, 1.0)
    assert nodes["n1"].state == LEADER
    nodes["n1"].tick(1.0 + Config().election_timeout_max + 0.01)
    assert nodes["n1"].state != LEADER


def test_a_leader_in_lease_ignores_disruptive_votes():
    nodes = _cluster()
    nodes["n1"].tick(1.0)
    _deliver(nodes, 1.0)
    nodes["n2"].step("n3", {"t": "v", "term": 5, "li": 99, "lt": 9}, 1.05)
    assert nodes["n2"].term == 1 and nodes["n2"].leader == "n1"


def _lease_config(clock_jump_rate):
    cfg = SimConfig(clock_jump_rate=clock_jump_rate, leader_isolate_rate=0.02, read_rate=0.5)
    return with_raft(cfg, lease_reads=True)


def test_lease_reads_go_stale_when_clocks_jump():
    """The lease-reads bug: a deposed leader whose clock fell behind still trusts its
    lease and answers a read that misses newer committed writes."""
    for seed in range(30):
        try:
            Simulation(seed, _lease_config(0.05)).run()
        except SafetyViolation as e:
            assert "stale read" in str(e), e
            return
    pytest.fail("no seed exposed the lease-reads bug")


@pytest.mark.parametrize("seed", range(2))
def test_lease_reads_hold_while_clocks_agree(seed):
    Simulation(seed, _lease_config(0.0)).run()


def test_a_clock_stepped_back_does_not_stall_elections():
    nodes = _cluster()
    n3 = nodes["n3"]
    n3.step("n1", {"t": "hb", "term": 1, "c": 0, "s": 1}, 10.0)
    assert n3.leader == "n1"
    n3.tick(-20.0)      # the clock jumps back half a minute; the leader then goes silent
    n3.tick(-20.0 + Config().election_timeout_max + 0.01)
    assert n3.state != "follower", "waited out the clock step before campaigning"


def _membership_config(steps=2000, **changes):
    return SimConfig(steps=steps, config_change_rate=0.05, min_members=3, **changes)


@pytest.mark.parametrize("seed", range(6))
def test_safety_under_membership_changes(seed):
    """Single-server changes (removing leaders too, wiping removed servers, adding them back
    as new servers) amid crashes, partitions and loss keep every Raft property."""
    stats = _run(seed, _membership_config())
    assert stats["config_changes"] >= 4 and stats["wiped"] >= 2, stats


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6, 40))
def test_safety_under_membership_changes_many_seeds(seed):
    _run(seed, _membership_config(steps=3000))


def _elect(nodes, ids, now):
    """Run a little cluster of Raft cores with a perfect network until one leads."""
    for _ in range(400):
        now += 0.01
        for r in nodes.values():
            r.tick(now)
        _deliver_among(nodes, now)
        leaders = [r for r in nodes.values() if r.state == LEADER]
        if leaders and leaders[0].term_at(leaders[0].commit) == leaders[0].term:
            return leaders[0], now
    raise AssertionError("no leader")


def _deliver_among(nodes, now):
    moved = True
    while moved:
        moved = False
        for r in list(nodes.values()):
            while r.has_ready():
                ready = r.ready()
                for to, msg in ready.early_messages + ready.messages:
                    if to in nodes:
                        nodes[to].step(r.id, msg, now)
                        moved = True
                r.advance(ready)


def _settle(nodes, now, steps=100):
    for _ in range(steps):
        now += 0.01
        for r in nodes.values():
            r.tick(now)
        _deliver_among(nodes, now)
    return now


def test_config_change_adds_catches_up_and_removes_the_leader():
    from targets.raftkv.raft import ConfigRefused
    ids = ["n1", "n2", "n3"]
    nodes = {i: Raft(i, ids, Persistent(), Config(), random.Random(k), 0.0)
             for k, i in enumerate(ids)}
    leader, now = _elect(nodes, ids, 0.0)
    for k in range(5):
        leader.propose(f"c{k}", now)
    now = _settle(nodes, now, 5)
    # A new server starts with no configuration: it never campaigns on its own.
    nodes["n4"] = Raft("n4", [], Persistent(), Config(), random.Random(9), now)
    now = _settle(nodes, now, 100)
    assert nodes["n4"].state != LEADER and nodes["n4"].term == 0
    assert leader.propose_config(ids + ["n4"], now) is not None
    # One change at a time: the next waits until this one commits.
    with pytest.raises(ConfigRefused, match="in-progress"):
        leader.propose_config(ids, now)
    with pytest.raises(ConfigRefused, match="exactly one"):
        leader.propose_config(["n1"], now + 0.001)
    now = _settle(nodes, now, 50)
    assert all(r.members == ["n1", "n2", "n3", "n4"] for r in nodes.values())
    assert nodes["n4"].last_index() == leader.last_index() and nodes["n4"].commit == leader.commit
    assert leader.quorum == 3
    # Removing the leader: it commits its removal, then steps down; the others elect one.
    rest = [i for i in ["n1", "n2", "n3", "n4"] if i != leader.id]
    assert leader.propose_config(rest, now) is not None
    now = _settle(nodes, now, 200)
    assert leader.state != LEADER and leader.members == rest
    new = [nodes[i] for i in rest if nodes[i].state == LEADER]
    assert len(new) == 1 and new[0].members == rest
    # The removed server stays quiet: it is outside its own configuration.
    term = new[0].term
    now = _settle(nodes, now, 200)
    assert leader.state != LEADER and new[0].state == LEADER and new[0].term == term


def test_an_uncommitted_config_entry_truncated_brings_back_the_old_one():
    ids = ["n1", "n2", "n3"]
    r = Raft("n2", ids, Persistent(), Config(), random.Random(1), 0.0)
    r.step("n1", {"t": "ae", "term": 1, "pi": 0, "pt": 0, "e": [[1, {"config": ["n1", "n2"]}]],
                  "c": 0, "s": 1}, 0.0)
    assert r.members == ["n1", "n2"] and r.quorum == 2
    # A new leader of term 2 overwrites the entry: the configuration reverts.
    r.step("n3", {"t": "ae", "term": 2, "pi": 0, "pt": 0, "e": [[2, None]], "c": 0, "s": 1}, 0.1)
    assert r.members == ids
