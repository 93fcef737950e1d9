"""The Raft consensus core (Ongaro & Ousterhout) as a pure, deterministic state machine.

Nothing here touches a socket, a disk or a clock. Events come in: `step` (a message from a
peer), `tick` (the current time), `propose` (a command for the log), `read_index` (a
linearizable read), `compact` (a snapshot of the applied state). Their consequences come out
of `ready()` as one batch of work, which the driver must carry out in this order:

  1. send `early_messages`: the leader's replication traffic, which may overlap its own disk
     write because the leader counts itself toward a quorum only once `advance` says its log
     is durable (thesis, section 10.2.1);
  2. make durable (write and fsync): `hard_state`, `snapshot`, `truncate_from`, `entries`;
  3. send `messages`: votes and acknowledgements promise what step 2 made durable;
  4. apply `committed` to the state machine, answer `reads` once applied >= their index, and
     fail `dropped_reads`;
  5. call `advance(ready)`.

The server (targets/raftkv/server.py) and the simulation (targets/raftkv/sim.py) run this
same code, so the simulation tests what is deployed. Messages are plain JSON-able dicts.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

FOLLOWER = "follower"
PRE_CANDIDATE = "pre-candidate"
CANDIDATE = "candidate"
LEADER = "leader"

# How the leader replicates to one follower (etcd's progress states).
PROBE = "probe"          # match unknown: one AppendEntries at a time until one succeeds
REPLICATE = "replicate"  # match known: stream entries optimistically
SNAPSHOT = "snapshot"    # the follower needs entries we compacted: an InstallSnapshot is out


@dataclass
class Config:
    election_timeout_min: float = 0.3
    election_timeout_max: float = 0.6
    heartbeat_interval: float = 0.05
    max_entries_per_message: int = 512
    max_inflight_entries: int = 8192
    pre_vote: bool = True
    # The leader steps down when it has not heard from a quorum for an election timeout.
    check_quorum: bool = True
    # Bug switch no-term-check: commit by counting replicas of entries from earlier terms
    # (the Figure 8 bug of the Raft paper).
    count_old_terms: bool = False
    # Bug switch lease-reads: the leader answers reads while a lease measured by its own
    # clock says no other leader can exist, without a round of heartbeats; and it trusts
    # that clock throughout, so it does not re-base its timers when the clock steps back.
    lease_reads: bool = False


@dataclass
class Snapshot:
    """The state machine as of log index `index` (whose entry had term `term`), and the
    configuration then (`members`; None: the initial one the node was started with)."""
    index: int
    term: int
    data: Any
    members: list | None = None


class ConfigRefused(Exception):
    """A configuration change the leader will not start now; str(e) says why."""


def config_of(command: Any) -> list | None:
    """The members a configuration entry's command names, or None for other commands.

    Single-server changes (Raft dissertation, section 4.1): a configuration entry takes
    effect on a node as soon as it is in its log, committed or not, and names the whole
    new set of voting members; each differs from the one before by one server."""
    if isinstance(command, dict) and "config" in command:
        return command["config"]
    return None


@dataclass
class Persistent:
    """What a node recovers from its disk: everything Raft requires to be durable."""
    term: int = 0
    vote: str | None = None
    snapshot: Snapshot | None = None
    entries: list = field(default_factory=list)  # (term, command) from snapshot.index + 1


@dataclass
class Ready:
    """One batch of work for the driver; see the module docstring for the order."""
    hard_state: tuple | None = None        # (term, vote) to make durable
    snapshot: Snapshot | None = None       # received from the leader: replaces log and state
    truncate_from: int | None = None       # drop durable entries with index >= this first
    entries: list = field(default_factory=list)          # (index, term, command) to append
    early_messages: list = field(default_factory=list)   # (to, message)
    messages: list = field(default_factory=list)         # (to, message)
    committed: list = field(default_factory=list)        # (index, term, command) to apply
    reads: list = field(default_factory=list)            # (read_id, index)
    dropped_reads: list = field(default_factory=list)    # read ids


class Progress:
    """The leader's view of one follower."""
    __slots__ = ("match", "next", "mode", "probe_sent", "snapshot_index", "snapshot_sent_at",
                 "last_ack", "acked_seq", "check_gap")

    def __init__(self, next_index: int, now: float):
        self.match = 0
        self.next = next_index
        self.mode = PROBE
        self.probe_sent = False
        self.snapshot_index = 0
        self.snapshot_sent_at = now
        self.last_ack = now  # a new leader gives every follower an election timeout of grace
        self.acked_seq = 0
        # Replicating, everything sent, yet unacknowledged at a heartbeat: something may
        # have been lost. An empty AppendEntries at the end of the log finds out.
        self.check_gap = False


class Raft:
    def __init__(self, node_id: str, members: list[str], persistent: Persistent,
                 config: Config, rng: random.Random, now: float):
        # `members` is the initial configuration, in force until the log (or the snapshot)
        # holds one; a new server joining a running cluster starts with none ([]) and
        # learns its configuration from the leader. A node outside its configuration never
        # campaigns, and its votes count for no one.
        self.id = node_id
        self.initial_members = sorted(members)
        self.cfg = config
        self.rng = rng
        self.term = persistent.term
        self.vote = persistent.vote
        self.snapshot = persistent.snapshot or Snapshot(0, 0, None)
        self.entries: list = [tuple(e) for e in persistent.entries]
        self._configs: list = []  # (index, members) of the configuration entries in `entries`
        base = self.snapshot.index
        for k, (_, command) in enumerate(self.entries):
            if config_of(command) is not None:
                self._configs.append((base + k + 1, sorted(config_of(command))))
        self.members: list[str] = []
        self.peers: list[str] = []
        self.quorum = 1
        self.commit = self.snapshot.index
        self.applied = self.snapshot.index
        self.state = FOLLOWER
        self.leader: str | None = None
        self.progress: dict[str, Progress] = {}
        self._now = now
        self._durable_hs = (self.term, self.vote)
        self._unstable = self.last_index() + 1   # first entry not yet handed to storage
        self._durable = self.last_index()        # last entry known durable
        self._truncate_from: int | None = None
        self._received_snapshot: Snapshot | None = None
        self._early: list = []
        self._msgs: list = []
        self._votes: set[str] = set()
        self._heard_from_leader = float("-inf")
        self._election_deadline = 0.0
        self._heartbeat_due = 0.0
        # Linearizable reads: a read waits for a quorum to answer a heartbeat numbered
        # at least `seq`, sent after the read arrived.
        self._seq = 0
        self._seq_sent_at: dict[int, float] = {}
        self._read_round = False
        self._reads: list = []            # (read_id, index, seq)
        self._reads_before_commit: list = []   # read ids waiting for this term's first commit
        self._ready_reads: list = []
        self._dropped_reads: list = []
        self._lease_until = float("-inf")
        self._update_members()
        self._reset_election_deadline()

    # ---- configuration -------------------------------------------------------------------

    def _config_at_snapshot(self) -> list[str]:
        members = self.snapshot.members
        return self.initial_members if members is None else sorted(members)

    def config_index(self) -> int:
        """The log index of the configuration in force (the snapshot's index when it
        predates the log)."""
        return self._configs[-1][0] if self._configs else self.snapshot.index

    def _update_members(self) -> None:
        """Take the latest configuration in the log as the one in force."""
        members = self._configs[-1][1] if self._configs else self._config_at_snapshot()
        if members == self.members:
            return
        self.members = list(members)
        self.peers = [m for m in self.members if m != self.id]
        self.quorum = len(self.members) // 2 + 1
        if self.state == LEADER:
            for p in self.peers:
                if p not in self.progress:
                    # A new server catches up from here: probed back to where logs agree.
                    self.progress[p] = Progress(self.last_index() + 1, self._now)
            for p in [p for p in self.progress if p not in self.members]:
                del self.progress[p]

    def _counts_itself(self) -> bool:
        return self.id in self.members

    def _note_appended(self, index: int, command: Any) -> None:
        members = config_of(command)
        if members is not None:
            self._configs.append((index, sorted(members)))
            self._update_members()

    def propose_config(self, members: list[str], now: float) -> tuple[int, int] | None:
        """Append a configuration entry naming `members` if we lead; (index, term), else
        None. Raises ConfigRefused when the change must wait or is not one server's.

        One change at a time: none may start while another is uncommitted, nor before an
        entry of this leader's term has committed (otherwise a change made by an earlier
        leader and lost could overlap this one; the 2015 single-server-change fix)."""
        self._set_time(now)
        if self.state != LEADER:
            return None
        members = sorted(members)
        if not members:
            raise ConfigRefused("a configuration needs at least one member")
        if len(set(members) ^ set(self.members)) != 1:
            raise ConfigRefused(f"a change adds or removes exactly one server: "
                                f"{self.members} -> {members}")
        if self.config_index() > self.commit:
            raise ConfigRefused("config-change-in-progress")
        if self.term_at(self.commit) != self.term:
            raise ConfigRefused("leader-not-ready: no entry of this term committed yet")
        return self.propose({"config": members}, now)

    # ---- the log -------------------------------------------------------------------------

    def last_index(self) -> int:
        return self.snapshot.index + len(self.entries)

    def last_term(self) -> int:
        return self.entries[-1][0] if self.entries else self.snapshot.term

    def term_at(self, index: int) -> int | None:
        """The term of the entry at index, or None when compacted away or past the end."""
        if index == self.snapshot.index:
            return self.snapshot.term
        if index < self.snapshot.index or index > self.last_index():
            return None
        return self.entries[index - self.snapshot.index - 1][0]

    def entry(self, index: int) -> tuple:
        return self.entries[index - self.snapshot.index - 1]

    def _truncate(self, index: int) -> None:
        # Committed entries are never overwritten (Log Matching + Leader Completeness).
        assert index > self.commit, f"{self.id}: truncating committed entry {index}"
        del self.entries[index - self.snapshot.index - 1:]
        if self._configs and self._configs[-1][0] >= index:
            # A configuration entry undone: the one before it is in force again.
            self._configs = [c for c in self._configs if c[0] < index]
            self._update_members()
        if self._truncate_from is None or index < self._truncate_from:
            self._truncate_from = index
        self._unstable = min(self._unstable, index)
        self._durable = min(self._durable, index - 1)

    # ---- events --------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        self._set_time(now)
        if self.state == LEADER:
            if self.cfg.check_quorum and not self._quorum_recently_active():
                self._become_follower(self.term, None)
            elif now >= self._heartbeat_due:
                self._broadcast_heartbeat()
        elif now >= self._election_deadline:
            if self._counts_itself():
                self._campaign()
            else:
                self._reset_election_deadline()

    def propose(self, command: Any, now: float) -> tuple[int, int] | None:
        """Append command to the log if we lead; return its (index, term), else None.

        The command takes effect exactly when an entry with that index AND term is
        committed; a different term at that index means it never will.
        """
        self._set_time(now)
        if self.state != LEADER:
            return None
        self.entries.append((self.term, command))
        self._note_appended(self.last_index(), command)
        if self.quorum == 1:
            self._maybe_commit()
        return self.last_index(), self.term

    def read_index(self, read_id: Any, now: float) -> bool:
        """Start a linearizable read; False if we do not lead. It comes out of `ready` in
        `reads` as (read_id, index): answer it from the state once applied >= index."""
        self._set_time(now)
        if self.state != LEADER:
            return False
        if self.term_at(self.commit) != self.term:
            # Until an entry of our term commits, our commit index may lag the cluster's.
            self._reads_before_commit.append(read_id)
        elif self.cfg.lease_reads and now < self._lease_until:
            self._ready_reads.append((read_id, self.commit))
        else:
            self._reads.append((read_id, self.commit, self._seq + 1))
            self._read_round = True
            if self.quorum == 1:
                self._seq += 1
                self._release_reads()
        return True

    def compact(self, index: int, data: Any) -> None:
        """The driver applied the log up to index and took `data` as the state there."""
        if index <= self.snapshot.index:
            return
        if index > self.applied or index >= self._unstable:
            raise ValueError(f"cannot compact to {index}: applied {self.applied}")
        term = self.term_at(index)
        older = [c for c in self._configs if c[0] <= index]
        members = older[-1][1] if older else self.snapshot.members
        del self.entries[:index - self.snapshot.index]
        self._configs = self._configs[len(older):]
        self.snapshot = Snapshot(index, term, data, members)

    def step(self, frm: str, msg: dict, now: float) -> None:
        self._set_time(now)
        kind = msg["t"]
        term = msg["term"]
        if term > self.term:
            if kind == "pv" or (kind == "pvr" and msg["ok"]):
                pass  # a pre-vote changes no term: granted replies carry the proposed one
            elif kind == "v" and self._in_leader_lease():
                return  # disruptive server (thesis 4.2.3): ignore, keep the term
            else:
                self._become_follower(term, frm if kind in ("ae", "hb", "is") else None)
        elif term < self.term:
            if kind in ("ae", "hb", "is"):
                # Tell the stale leader about our term so it steps down.
                self._msgs.append((frm, {"t": "hbr", "term": self.term, "s": 0}))
            elif kind in ("pv", "v"):
                self._msgs.append((frm, {"t": kind + "r", "term": self.term, "ok": False}))
            return
        handler = _HANDLERS.get(kind)
        if handler is None:
            raise ValueError(f"unknown Raft message type {kind!r} from {frm}")
        handler(self, frm, msg)

    # ---- output --------------------------------------------------------------------------

    def has_ready(self) -> bool:
        if self.state == LEADER and (self._read_round or self._replication_pending()):
            return True
        return bool(self._early or self._msgs or self._ready_reads or self._dropped_reads
                    or self._received_snapshot or self._truncate_from is not None
                    or self._unstable <= self.last_index() or self.commit > self.applied
                    or (self.term, self.vote) != self._durable_hs)

    def ready(self) -> Ready:
        if self.state == LEADER:
            if self._read_round:
                self._broadcast_heartbeat()
            self._send_appends()
        r = Ready()
        if (self.term, self.vote) != self._durable_hs:
            r.hard_state = self._durable_hs = (self.term, self.vote)
        r.snapshot, self._received_snapshot = self._received_snapshot, None
        r.truncate_from, self._truncate_from = self._truncate_from, None
        last = self.last_index()
        if self._unstable <= last:
            base = self.snapshot.index + 1
            r.entries = [(i, *self.entries[i - base]) for i in range(self._unstable, last + 1)]
            self._unstable = last + 1
        r.early_messages, self._early = self._early, []
        r.messages, self._msgs = self._msgs, []
        if self.commit > self.applied:
            base = self.snapshot.index + 1
            r.committed = [(i, *self.entries[i - base]) for i in range(self.applied + 1, self.commit + 1)]
            self.applied = self.commit
        r.reads, self._ready_reads = self._ready_reads, []
        r.dropped_reads, self._dropped_reads = self._dropped_reads, []
        return r

    def advance(self, ready: Ready) -> None:
        """The driver has done everything `ready` asked."""
        if ready.entries:
            self._durable = max(self._durable, ready.entries[-1][0])
            if self.state == LEADER:
                self._maybe_commit()

    def lease_valid(self, now: float) -> bool:
        return self.state == LEADER and now < self._lease_until

    def _set_time(self, now: float) -> None:
        if now < self._now and not self.cfg.lease_reads:
            # The clock was stepped back. Elapsed times measured across the step would
            # be negative, so they restart from here: a node must not wait out the size of
            # the step before it campaigns, steps down or grants votes again.
            self._heard_from_leader = min(self._heard_from_leader, now)
            if self._election_deadline - now > self.cfg.election_timeout_max:
                self._now = now
                self._reset_election_deadline()
            self._heartbeat_due = min(self._heartbeat_due, now)
            for pr in self.progress.values():
                pr.last_ack = min(pr.last_ack, now)
                pr.snapshot_sent_at = min(pr.snapshot_sent_at, now)
        self._now = now

    # ---- roles ---------------------------------------------------------------------------

    def _reset_election_deadline(self) -> None:
        self._election_deadline = self._now + self.rng.uniform(
            self.cfg.election_timeout_min, self.cfg.election_timeout_max)

    def _in_leader_lease(self) -> bool:
        if self.state == LEADER:
            return self.cfg.check_quorum  # a leader that steps down without a quorum
        return (self.leader is not None
                and self._now - self._heard_from_leader < self.cfg.election_timeout_min)

    def _become_follower(self, term: int, leader: str | None) -> None:
        if term > self.term:
            self.term = term
            self.vote = None
        if self.state == LEADER:
            self._dropped_reads.extend(read_id for read_id, _, _ in self._reads)
            self._dropped_reads.extend(self._reads_before_commit)
            self._reads, self._reads_before_commit = [], []
            self._read_round = False
            self._lease_until = float("-inf")
            self.progress = {}
        self.state = FOLLOWER
        self.leader = leader
        self._reset_election_deadline()

    def _campaign(self) -> None:
        self._reset_election_deadline()
        self.leader = None
        if not self.cfg.pre_vote:
            self._become_candidate()
            return
        self.state = PRE_CANDIDATE
        self._votes = {self.id}
        msg = {"t": "pv", "term": self.term + 1, "li": self.last_index(), "lt": self.last_term()}
        self._msgs.extend((p, msg) for p in self.peers)
        if len(self._votes) >= self.quorum:
            self._become_candidate()

    def _become_candidate(self) -> None:
        self.state = CANDIDATE
        self.term += 1
        self.vote = self.id
        self.leader = None
        self._votes = {self.id}
        self._reset_election_deadline()
        msg = {"t": "v", "term": self.term, "li": self.last_index(), "lt": self.last_term()}
        self._msgs.extend((p, msg) for p in self.peers)
        if len(self._votes) >= self.quorum:
            self._become_leader()

    def _become_leader(self) -> None:
        self.state = LEADER
        self.leader = self.id
        nxt = self.last_index() + 1
        self.progress = {p: Progress(nxt, self._now) for p in self.peers}
        self._seq_sent_at = {}
        self._lease_until = float("-inf")
        # A no-op of our own term: committing it commits everything before it, and lets
        # reads know the commit index is current.
        self.entries.append((self.term, None))
        self._heartbeat_due = self._now
        if self.quorum == 1:
            self._maybe_commit()

    def _log_up_to_date(self, msg: dict) -> bool:
        return (msg["lt"], msg["li"]) >= (self.last_term(), self.last_index())

    def _quorum_recently_active(self) -> bool:
        window = self.cfg.election_timeout_max
        active = int(self._counts_itself()) + sum(
            1 for pr in self.progress.values() if self._now - pr.last_ack <= window)
        return active >= self.quorum

    # ---- message handlers ----------------------------------------------------------------

    def _on_pre_vote(self, frm: str, msg: dict) -> None:
        grant = (msg["term"] > self.term and not self._in_leader_lease()
                 and self._log_up_to_date(msg))
        self._msgs.append((frm, {"t": "pvr", "term": msg["term"] if grant else self.term,
                                 "ok": grant}))

    def _on_pre_vote_reply(self, frm: str, msg: dict) -> None:
        if (self.state == PRE_CANDIDATE and msg["ok"] and msg["term"] == self.term + 1
                and frm in self.members):
            self._votes.add(frm)
            if len(self._votes) >= self.quorum:
                self._become_candidate()

    def _on_vote(self, frm: str, msg: dict) -> None:
        free = self.vote == frm or (self.vote is None and self.leader is None)
        grant = free and self._log_up_to_date(msg)
        if grant:
            self.vote = frm
            self._reset_election_deadline()
        self._msgs.append((frm, {"t": "vr", "term": self.term, "ok": grant}))

    def _on_vote_reply(self, frm: str, msg: dict) -> None:
        if self.state == CANDIDATE and msg["ok"] and frm in self.members:
            self._votes.add(frm)
            if len(self._votes) >= self.quorum:
                self._become_leader()

    def _hear_leader(self, frm: str) -> bool:
        """A message from the leader of our term; False if we lead this term ourselves
        (only possible when a bug switch let two nodes win one term)."""
        if self.state == LEADER:
            return False
        if self.state != FOLLOWER:
            self._become_follower(self.term, frm)
        self.leader = frm
        self._heard_from_leader = self._now
        self._reset_election_deadline()
        return True

    def _commit_to(self, index: int) -> None:
        if index > self.commit:
            self.commit = index

    def _on_append(self, frm: str, msg: dict) -> None:
        if not self._hear_leader(frm):
            return
        prev, prev_term, ents = msg["pi"], msg["pt"], msg["e"]
        if prev < self.commit:
            # Everything up to our commit index matches the leader's log already.
            skip = self.commit - prev
            if skip >= len(ents):
                self._ack(frm, msg, self.commit)
                return
            ents = ents[skip:]
            prev, prev_term = self.commit, self.term_at(self.commit)
        if self.term_at(prev) != prev_term:
            self._msgs.append((frm, {"t": "aer", "term": self.term, "ok": False, "ri": prev,
                                     "hint": self._conflict_hint(prev), "s": msg["s"]}))
            return
        index = prev
        for k, (term, command) in enumerate(ents):
            index += 1
            existing = self.term_at(index)
            if existing == term:
                continue
            if existing is not None:
                self._truncate(index)
            for t, c in ents[k:]:
                self.entries.append((t, c))
                self._note_appended(self.last_index(), c)
            break
        last_new = prev + len(ents)
        self._commit_to(min(msg["c"], last_new))
        self._ack(frm, msg, last_new)

    def _conflict_hint(self, prev: int) -> int:
        """The highest index the leader should try next: skip a whole conflicting term."""
        if prev > self.last_index():
            return self.last_index()
        conflict_term = self.term_at(prev)
        index = prev
        while index - 1 > self.commit and self.term_at(index - 1) == conflict_term:
            index -= 1
        return index - 1

    def _ack(self, frm: str, msg: dict, match: int) -> None:
        self._msgs.append((frm, {"t": "aer", "term": self.term, "ok": True, "li": match,
                                 "s": msg["s"]}))

    def _on_heartbeat(self, frm: str, msg: dict) -> None:
        if not self._hear_leader(frm):
            return
        self._commit_to(min(msg["c"], self.last_index()))
        self._msgs.append((frm, {"t": "hbr", "term": self.term, "s": msg["s"]}))

    def _on_install_snapshot(self, frm: str, msg: dict) -> None:
        if not self._hear_leader(frm):
            return
        index, term = msg["i"], msg["st"]
        if index <= self.commit:
            self._ack(frm, msg, self.commit)
            return
        if self.term_at(index) == term:
            # We hold that entry, hence the whole prefix: keep our log, apply it normally.
            self._commit_to(index)
            self._ack(frm, msg, index)
            return
        snap = Snapshot(index, term, msg["d"], msg.get("m"))
        self.snapshot = snap
        self.entries = []
        self._configs = []
        self._update_members()
        self.commit = self.applied = index
        self._received_snapshot = snap
        self._truncate_from = None
        self._unstable = index + 1
        self._durable = index
        self._ack(frm, msg, index)

    def _on_reply_common(self, frm: str, msg: dict) -> Progress | None:
        if self.state != LEADER:
            return None
        pr = self.progress.get(frm)
        if pr is None:
            return None  # from a server no longer (or not yet) in the configuration
        pr.last_ack = self._now
        if msg["s"] > pr.acked_seq:
            pr.acked_seq = msg["s"]
            self._release_reads()
        return pr

    def _on_append_reply(self, frm: str, msg: dict) -> None:
        pr = self._on_reply_common(frm, msg)
        if pr is None:
            return
        if msg["ok"]:
            match = msg["li"]
            if match > pr.match:
                pr.match = match
            if pr.next <= match:
                pr.next = match + 1
            if pr.mode == PROBE or (pr.mode == SNAPSHOT and pr.match >= pr.snapshot_index):
                pr.mode = REPLICATE
                pr.next = pr.match + 1
            pr.probe_sent = False
            self._maybe_commit()
            return
        rejected = msg["ri"]
        if pr.mode == SNAPSHOT:
            return
        if pr.mode == REPLICATE:
            if rejected <= pr.match:
                return  # a stale rejection
            pr.mode = PROBE
        elif pr.next - 1 != rejected:
            return  # a stale rejection of an earlier probe
        pr.next = max(min(rejected, msg["hint"] + 1), pr.match + 1)
        pr.probe_sent = False

    def _on_heartbeat_reply(self, frm: str, msg: dict) -> None:
        pr = self._on_reply_common(frm, msg)
        if pr is None:
            return
        if pr.mode == PROBE:
            pr.probe_sent = False  # the probe may have been lost: send it again
        elif pr.mode == REPLICATE and pr.match < self.last_index():
            pr.check_gap = True
        elif pr.mode == SNAPSHOT and self._now - pr.snapshot_sent_at > self.cfg.election_timeout_max:
            pr.mode = PROBE
            pr.probe_sent = False

    # ---- the leader's work ---------------------------------------------------------------

    def _maybe_commit(self) -> None:
        # A leader outside the configuration (removing itself) manages the cluster but is
        # not part of its majorities (dissertation 4.2.2).
        own = [self._durable] if self._counts_itself() else []
        matches = sorted(own + [pr.match for pr in self.progress.values()], reverse=True)
        if len(matches) < self.quorum:
            return
        n = matches[self.quorum - 1]
        if n <= self.commit:
            return
        if not self.cfg.count_old_terms and self.term_at(n) != self.term:
            return  # Figure 8: only entries of our own term commit by counting replicas
        first_of_term = self.term_at(self.commit) != self.term
        self._commit_to(n)
        if not self._counts_itself() and self.config_index() <= self.commit:
            # Our removal is committed: tell the others, then step down; we never campaign.
            self._broadcast_heartbeat()
            self._become_follower(self.term, None)
            return
        if first_of_term and self.term_at(self.commit) == self.term and self._reads_before_commit:
            waiting, self._reads_before_commit = self._reads_before_commit, []
            for read_id in waiting:
                self.read_index(read_id, self._now)

    def _release_reads(self) -> None:
        own = [self._seq] if self._counts_itself() else []
        acked = sorted(own + [pr.acked_seq for pr in self.progress.values()], reverse=True)
        if len(acked) < self.quorum:
            return
        confirmed = acked[self.quorum - 1]
        if self._reads and self._reads[0][2] <= confirmed:
            keep = []
            for read in self._reads:
                if read[2] <= confirmed:
                    self._ready_reads.append((read[0], read[1]))
                else:
                    keep.append(read)
            self._reads = keep
        sent_at = self._seq_sent_at.get(confirmed)
        if sent_at is not None:
            # A quorum heard us after sent_at, so none of them votes before
            # sent_at + election_timeout_min -- if every clock runs at the same rate.
            self._lease_until = max(self._lease_until, sent_at + self.cfg.election_timeout_min)
            for seq in [s for s in self._seq_sent_at if s <= confirmed]:
                del self._seq_sent_at[seq]

    def _broadcast_heartbeat(self) -> None:
        self._seq += 1
        self._seq_sent_at[self._seq] = self._now
        self._read_round = False
        self._heartbeat_due = self._now + self.cfg.heartbeat_interval
        for p, pr in self.progress.items():
            self._early.append((p, {"t": "hb", "term": self.term,
                                    "c": min(pr.match, self.commit), "s": self._seq}))

    def _replication_pending(self) -> bool:
        last = self.last_index()
        for pr in self.progress.values():
            if pr.mode == PROBE and not pr.probe_sent and pr.match < last:
                return True
            if pr.mode == REPLICATE and (pr.check_gap or (
                    pr.next <= last and pr.next - 1 - pr.match < self.cfg.max_inflight_entries)):
                return True
        return False

    def _send_appends(self) -> None:
        last = self.last_index()
        for p, pr in self.progress.items():
            if pr.mode == PROBE:
                if not pr.probe_sent and pr.match < last:
                    self._send_append(p, pr)
                    pr.probe_sent = True
            elif pr.mode == REPLICATE:
                sent = False
                while pr.next <= last and pr.next - 1 - pr.match < self.cfg.max_inflight_entries:
                    sent = True
                    if not self._send_append(p, pr):
                        break
                if pr.check_gap and not sent and pr.mode == REPLICATE:
                    self._send_append(p, pr)
                pr.check_gap = False

    def _send_append(self, p: str, pr: Progress) -> bool:
        """Send p the entries from pr.next on; False if it needed a snapshot instead."""
        prev = pr.next - 1
        prev_term = self.term_at(prev)
        if prev_term is None:
            snap = self.snapshot
            self._early.append((p, {"t": "is", "term": self.term, "i": snap.index,
                                    "st": snap.term, "d": snap.data,
                                    "m": self._config_at_snapshot(), "s": self._seq}))
            pr.mode = SNAPSHOT
            pr.snapshot_index = snap.index
            pr.snapshot_sent_at = self._now
            return False
        hi = min(self.last_index(), prev + self.cfg.max_entries_per_message)
        base = self.snapshot.index + 1
        ents = [self.entries[i - base] for i in range(prev + 1, hi + 1)]
        self._early.append((p, {"t": "ae", "term": self.term, "pi": prev, "pt": prev_term,
                                "e": ents, "c": self.commit, "s": self._seq}))
        if pr.mode == REPLICATE:
            pr.next = hi + 1
        return True


_HANDLERS = {
    "pv": Raft._on_pre_vote,
    "pvr": Raft._on_pre_vote_reply,
    "v": Raft._on_vote,
    "vr": Raft._on_vote_reply,
    "ae": Raft._on_append,
    "aer": Raft._on_append_reply,
    "hb": Raft._on_heartbeat,
    "hbr": Raft._on_heartbeat_reply,
    "is": Raft._on_install_snapshot,
}
