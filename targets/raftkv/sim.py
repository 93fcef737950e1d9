"""A deterministic simulated cluster for the Raft core, with Raft's safety properties checked
after every step.

One seed fixes everything: message loss, delay (hence reordering), duplication, partitions,
crashes (a crash keeps exactly what the node made durable) and restarts, clock jumps, and
which client commands reach which leader. A violation raises SafetyViolation naming the
seed, the step and the property, so `Simulation(seed).run()` reproduces it.

Properties (Raft paper, Figure 3):
  election safety       at most one leader per term
  log matching          two logs with an entry of the same index and term agree up to it
  leader completeness   a new leader's log holds every entry committed before it
  state machine safety  no two nodes apply different entries at one index
and linearizable reads: a read's index covers every entry committed before it began.
"""
from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field, replace

from targets.raftkv.raft import (LEADER, Config, ConfigRefused, Persistent, Raft, Ready, Snapshot,
                                 config_of)


class SafetyViolation(AssertionError):
    pass


@dataclass
class SimConfig:
    nodes: int = 5
    steps: int = 1500
    step_time: float = 0.01
    loss: float = 0.05
    duplicate: float = 0.02
    delay: tuple = (0.001, 0.04)
    slow: float = 0.05               # this share of messages takes slow_delay instead
    slow_delay: tuple = (0.05, 0.5)
    crash_rate: float = 0.003        # per step: one live node crashes
    leader_crash_rate: float = 0.01  # per step: a leader crashes (Jepsen's kill-the-leader)
    leader_isolate_rate: float = 0.01  # per step: a leader is cut off from everyone else
    restart_rate: float = 0.03       # per step: one crashed node restarts
    partition_rate: float = 0.004    # per step: the network splits in two at random
    heal_rate: float = 0.02
    clock_jump_rate: float = 0.002   # per step: one node's clock jumps by up to a second
    propose_rate: float = 0.4        # per step: a client command reaches a leader
    read_rate: float = 0.15
    compact_every: int = 25          # entries applied beyond the snapshot before compacting
    # Membership changes: per step, a leader is asked to remove a member (never below
    # min_members) or to add back a server removed earlier. A server whose removal commits
    # is stopped and wiped, and rejoins later as a new server with no configuration.
    config_change_rate: float = 0.0
    min_members: int = 3
    raft: Config = field(default_factory=lambda: Config(max_entries_per_message=3,
                                                        max_inflight_entries=12))


class Disk:
    """What one node has made durable: all that survives its crash."""

    def __init__(self):
        self.term, self.vote = 0, None
        self.snapshot: Snapshot | None = None
        self.entries: list = []

    def base(self) -> int:
        return self.snapshot.index if self.snapshot else 0

    def save(self, r: Ready) -> None:
        if r.hard_state is not None:
            self.term, self.vote = r.hard_state
        if r.snapshot is not None:
            self.snapshot, self.entries = r.snapshot, []
        if r.truncate_from is not None:
            del self.entries[r.truncate_from - self.base() - 1:]
        for index, term, cmd in r.entries:
            if index != self.base() + len(self.entries) + 1:
                raise SafetyViolation(f"entry {index} written after {self.base() + len(self.entries)}")
            self.entries.append((term, cmd))

    def compact(self, snapshot: Snapshot) -> None:
        del self.entries[:snapshot.index - self.base()]
        self.snapshot = snapshot

    def recover(self) -> Persistent:
        return Persistent(self.term, self.vote, self.snapshot, list(self.entries))


class SimNode:
    def __init__(self, node_id: str):
        self.id = node_id
        self.disk = Disk()
        self.raft: Raft | None = None
        self.applied: list = []       # the state machine: (index, term, cmd) in order
        self.clock_offset = 0.0
        self.led_terms: set[int] = set()
        self.joining = False  # wiped after its removal: boots with no configuration


class Simulation:
    def __init__(self, seed: int, config: SimConfig | None = None):
        self.seed = seed
        self.cfg = config or SimConfig()
        self.rng = random.Random(seed)
        self.ids = [f"n{i + 1}" for i in range(self.cfg.nodes)]
        self.nodes = {i: SimNode(i) for i in self.ids}
        self.now = 0.0
        self.step_no = 0
        self._queue: list = []
        self._sent = 0
        self._blocked: set[tuple[str, str]] = set()
        self._next_cmd = 0
        self._next_read = 0
        self._reads: dict[int, int] = {}   # read id -> highest committed index when issued
        self.leaders: dict[int, str] = {}  # term -> leader
        self.committed: dict[int, tuple] = {}  # index -> (term, cmd), as applied anywhere
        self._config_applied = 0
        self._to_wipe: list[str] = []
        self.stats = {"elections": 0, "crashes": 0, "reads": 0, "partitions": 0,
                      "snapshots": 0, "config_changes": 0, "wiped": 0}
        self.committed_config = list(self.ids)
        self.spares: list[str] = []  # removed, wiped, not yet asked back
        for node in self.nodes.values():
            self._boot(node)

    def fail(self, what: str) -> None:
        raise SafetyViolation(f"seed {self.seed}, step {self.step_no} (t={self.now:.2f}s): {what}")

    # ---- the world -----------------------------------------------------------------------

    def _boot(self, node: SimNode) -> None:
        persistent = node.disk.recover()
        node.raft = Raft(node.id, [] if node.joining else self.ids, persistent, self.cfg.raft,
                         random.Random(self.rng.random()), self.now + node.clock_offset)
        snap = persistent.snapshot
        node.applied = list(snap.data) if snap else []

    def _send(self, frm: str, to: str, msg: dict) -> None:
        if (frm, to) in self._blocked or self.rng.random() < self.cfg.loss:
            return
        copies = 2 if self.rng.random() < self.cfg.duplicate else 1
        for _ in range(copies):
            self._sent += 1
            slow = self.rng.random() < self.cfg.slow
            at = self.now + self.rng.uniform(*(self.cfg.slow_delay if slow else self.cfg.delay))
            heapq.heappush(self._queue, (at, self._sent, frm, to, msg))

    def _node_now(self, node: SimNode) -> float:
        return self.now + node.clock_offset

    def _drain(self, node: SimNode) -> None:
        raft = node.raft
        while raft.has_ready():
            r = raft.ready()
            for to, msg in r.early_messages:
                self._send(node.id, to, msg)
            node.disk.save(r)
            for to, msg in r.messages:
                self._send(node.id, to, msg)
            if r.snapshot is not None:
                self.stats["snapshots"] += 1
                node.applied = list(r.snapshot.data)
                self._check_applied_prefix(node)
            for index, term, cmd in r.committed:
                self._apply(node, index, term, cmd)
            for read_id, index in r.reads:
                self._check_read(node, read_id, index)
            raft.advance(r)
        if raft.applied - raft.snapshot.index >= self.cfg.compact_every:
            snap_index = raft.applied
            raft.compact(snap_index, tuple(node.applied[:snap_index]))
            node.disk.compact(raft.snapshot)
        self._check_leader(node)

    def _apply(self, node: SimNode, index: int, term: int, cmd) -> None:
        if index != len(node.applied) + 1:
            self.fail(f"{node.id} applied index {index} after {len(node.applied)}")
        entry = (index, term, cmd)
        seen = self.committed.setdefault(index, (term, cmd))
        if seen != (term, cmd):
            self.fail(f"state machine safety: {node.id} applied {entry} at {index}, "
                      f"but {seen} was applied there before")
        node.applied.append(entry)
        members = config_of(cmd)
        if members is not None and index > self._config_applied:
            self._config_applied = index
            self._config_committed(sorted(members))

    def _config_committed(self, members: list[str]) -> None:
        self.stats["config_changes"] += 1
        self._to_wipe += sorted(set(self.committed_config) - set(members))
        self.committed_config = members

    def _wipe_removed(self) -> None:
        """What an operator does once a removal commits: stop the server, wipe its data."""
        for gone in self._to_wipe:
            node = self.nodes[gone]
            node.raft, node.disk, node.applied, node.joining = None, Disk(), [], True
            self.spares.append(gone)
            self.stats["wiped"] += 1
        self._to_wipe = []

    def _check_applied_prefix(self, node: SimNode) -> None:
        for index, term, cmd in node.applied:
            seen = self.committed.setdefault(index, (term, cmd))
            if seen != (term, cmd):
                self.fail(f"state machine safety: {node.id} installed a snapshot with "
                          f"{(index, term, cmd)}, but {seen} was applied there")

    def _check_read(self, node: SimNode, read_id: int, index: int) -> None:
        self.stats["reads"] += 1
        floor = self._reads.pop(read_id)
        if index < floor:
            self.fail(f"stale read on {node.id}: read index {index}, but {floor} was "
                      f"committed before the read began")

    def _check_leader(self, node: SimNode) -> None:
        raft = node.raft
        if raft.state != LEADER or raft.term in node.led_terms:
            return
        node.led_terms.add(raft.term)
        self.stats["elections"] += 1
        other = self.leaders.setdefault(raft.term, node.id)
        if other != node.id:
            self.fail(f"election safety: {node.id} and {other} both lead term {raft.term}")
        for index, (term, cmd) in self.committed.items():
            if index <= raft.snapshot.index:
                if tuple(raft.snapshot.data[index - 1]) != (index, term, cmd):
                    self.fail(f"leader completeness: {node.id}'s snapshot lost committed {index}")
            elif index > raft.last_index() or raft.entry(index) != (term, cmd):
                have = raft.entry(index) if index <= raft.last_index() else "nothing"
                self.fail(f"leader completeness: {node.id} leads term {raft.term} without "
                          f"committed entry {index} {(term, cmd)} (has {have}): "
                          f"a committed entry is lost")

    def _check_log_matching(self) -> None:
        live = [n.raft for n in self.nodes.values() if n.raft is not None]
        for i, a in enumerate(live):
            for b in live[i + 1:]:
                lo = max(a.snapshot.index, b.snapshot.index) + 1
                hi = min(a.last_index(), b.last_index())
                top = next((k for k in range(hi, lo - 1, -1) if a.term_at(k) == b.term_at(k)), None)
                if top is None:
                    continue
                for k in range(lo, top + 1):
                    if a.entry(k) != b.entry(k):
                        self.fail(f"log matching: {a.id} and {b.id} agree at {top} "
                                  f"but differ at {k}: {a.entry(k)} vs {b.entry(k)}")

    # ---- random events -------------------------------------------------------------------

    def _events(self) -> None:
        rng, cfg = self.rng, self.cfg
        live = [n for n in self.nodes.values() if n.raft is not None]
        dead = [n for n in self.nodes.values() if n.raft is None]
        if live and rng.random() < cfg.crash_rate:
            victim = rng.choice(live)
            victim.raft = None
            self.stats["crashes"] += 1
        leaders = [n for n in live if n.raft is not None and n.raft.state == LEADER]
        if leaders and rng.random() < cfg.leader_crash_rate:
            rng.choice(leaders).raft = None
            self.stats["crashes"] += 1
        if dead and rng.random() < cfg.restart_rate:
            self._boot(rng.choice(dead))
        if rng.random() < cfg.partition_rate:
            side = set(rng.sample(self.ids, rng.randint(1, len(self.ids) - 1)))
            self._blocked = {(a, b) for a in self.ids for b in self.ids
                             if (a in side) != (b in side)}
            self.stats["partitions"] += 1
        if leaders and rng.random() < cfg.leader_isolate_rate:
            alone = rng.choice(leaders).id
            self._blocked = {(a, b) for a in self.ids for b in self.ids
                             if a != b and alone in (a, b)}
            self.stats["partitions"] += 1
        if self._blocked and rng.random() < cfg.heal_rate:
            self._blocked = set()
        if live and rng.random() < cfg.clock_jump_rate:
            rng.choice(live).clock_offset += rng.uniform(-1.0, 1.0)
        leaders = [n for n in self.nodes.values() if n.raft is not None and n.raft.state == LEADER]
        if leaders and rng.random() < cfg.propose_rate:
            self._next_cmd += 1
            node = rng.choice(leaders)
            node.raft.propose(f"c{self._next_cmd}", self._node_now(node))
        if leaders and rng.random() < cfg.config_change_rate:
            self._change_members(rng.choice(leaders))
        if leaders and rng.random() < cfg.read_rate:
            self._next_read += 1
            node = rng.choice(leaders)
            self._reads[self._next_read] = max(self.committed, default=0)
            node.raft.read_index(self._next_read, self._node_now(node))

    def _change_members(self, node: SimNode) -> None:
        raft = node.raft
        if raft.state != LEADER:
            return  # removed itself and stepped down this step
        members = list(raft.members)
        if self.spares and (len(members) <= self.cfg.min_members or self.rng.random() < 0.5):
            spare = self.spares[0]
            if spare in members:
                return
            members.append(spare)
        elif len(members) > self.cfg.min_members:
            members.remove(self.rng.choice(members))  # the leader itself, sometimes
        else:
            return
        try:
            raft.propose_config(members, self._node_now(node))
        except ConfigRefused:
            return  # another change is still uncommitted, or the leader is new
        for spare in [m for m in members if m in self.spares]:
            self.spares.remove(spare)
            if self.nodes[spare].raft is None:
                self._boot(self.nodes[spare])

    def step(self) -> None:
        self.step_no += 1
        self.now += self.cfg.step_time
        while self._queue and self._queue[0][0] <= self.now:
            _, _, frm, to, msg = heapq.heappop(self._queue)
            node = self.nodes[to]
            if node.raft is not None and (frm, to) not in self._blocked:
                node.raft.step(frm, msg, self._node_now(node))
                self._drain(node)
        self._events()
        for node in self.nodes.values():
            if node.raft is not None:
                node.raft.tick(self._node_now(node))
                self._drain(node)
        self._wipe_removed()
        self._check_log_matching()

    def run(self) -> dict:
        for _ in range(self.cfg.steps):
            self.step()
        self.stats["committed"] = len(self.committed)
        return self.stats


def with_raft(config: SimConfig, **raft_changes) -> SimConfig:
    """config with some Raft settings changed (e.g. a bug switch on)."""
    return replace(config, raft=replace(config.raft, **raft_changes))
