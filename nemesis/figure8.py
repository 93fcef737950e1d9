"""Figure 8 of the Raft paper, staged on a real three-node cluster with partitions and delay.

A Raft leader may count replicas only for entries of its own term; one that also counts
older entries (raftkv --bug no-term-check) can call an entry committed that a later leader
overwrites. Random faults almost never line this up on real processes: it takes three
elections in a row, each cut short at the right moment. This fault stages them, watching
the nodes' own status (term, role, commit index) and cutting links the moment each step is
done; delayed links hold each step's next message long enough for the cut to land first
(a packet the delayer releases after the cut meets the receiver's DROP rule):

  1. A leads. Links B<->C are delayed, then A is cut off. A goes on accepting writes from
     its clients for an election timeout: entries of A's term that only A holds.
  2. B or C (call it W) wins a newer term. At once W is cut off too, before its first
     entry (of W's term, at the index of A's first lone entry) reaches the other (L).
  3. A and L are joined, A->L delayed. A wins a third term and sends L its old entries one
     by one (small messages, target_opts.max_entries_per_message=1). With the bug, L's
     acknowledgement of the first one commits it: A applies it and answers its client ok.
     The moment A's commit index moves, A is cut off again, before the commit index (or
     A's own entry) reaches L.
  4. W and L are joined, A stays cut off. W's last entry has a newer term than L's, so L
     votes for W, and W overwrites the entry A acknowledged. A set workload's final read
     misses the acknowledged element.

Without the bug A commits nothing until an entry of its own term is on L (step 3 then cuts
it off after a legitimate commit), L refuses W its vote in step 4, and nothing is lost.

start-figure8 sets the four steps going (they take about 5-20 s) and returns at once, so
the fault's period in the history (and its shading in the plots) begins when they do;
stop-figure8 (and heal) waits for them to end, removes every cut and delay, and records
each step with the seconds since the start, the nodes and terms: {"healed", "steps":
[...], "outcome"}. It needs a target whose status(node) reports state, term and commit
(raftkv). Local backend only (the delay's NFQUEUE delayer).
"""
from __future__ import annotations

import threading
import time

from .choose import names
from .delay import DelayNemesis
from .firewall import chain_name
from .local_only import refuse_unless_local
from .partition import PartitionNemesis, complete_grudge, isolate
from .start_stop import StartStopFault

START, STOP = "start-figure8", "stop-figure8"
DEFAULT_DELAY = 0.3   # seconds each staged message waits: the time a cut has to land
POLL = 0.01           # seconds between looks at the nodes' status
STEP_TIMEOUT = 8.0    # seconds for one election (or commit) before the staging gives up


class Figure8Nemesis(StartStopFault):
    kind = "figure8"

    def __init__(self, nodes: list, target, rng, opts: dict):
        refuse_unless_local(nodes, "figure8", "the delay fault's NFQUEUE delayer")
        if len(nodes) != 3:
            raise ValueError(f"figure8 stages its elections on exactly 3 nodes; this cluster "
                             f"has {len(nodes)} (--node-count 3)")
        if not callable(getattr(target, "status", None)):
            raise ValueError("figure8 watches each node's Raft status (state, term, commit); "
                             f"target {getattr(target, 'name', target)!r} does not report it")
        self.nodes = list(nodes)
        self.target = target
        self.delay_s = checked_delay(opts.get("figure8_delay", DEFAULT_DELAY))
        own = {"test_id": opts["test_id"]} if "test_id" in opts else {}
        self.partition = PartitionNemesis(nodes, target, rng, own)
        self.partition.chain = chain_name("f8-partition", opts)  # chain names stay under 29 characters
        self.delay = DelayNemesis(nodes, target, rng, own, chain_kind="f8-delay")
        self._staging: threading.Thread | None = None
        self._staged: dict = {}

    def start(self, value) -> dict:
        self.stop()
        self._staged = {}
        self._staging = threading.Thread(target=self._run, name="tectonic-figure8", daemon=True)
        self._staging.start()
        return {"staging": "started", "delay": self.delay_s}

    def stop(self) -> dict:
        staged = {}
        if self._staging is not None:
            self._staging.join()  # bounded: each step gives up after STEP_TIMEOUT
            self._staging, staged = None, self._staged
        healed = set(self.partition.stop()["healed"]) | set(self.delay.stop()["healed"])
        return {"healed": [n for n in names(self.nodes) if n in healed], **staged}

    def _run(self) -> None:
        steps: list[dict] = []
        try:
            self._staged = self._stage(steps)
        except Exception as e:  # noqa: BLE001 - recorded in the stop op, as a nemesis error is
            self._staged = {"steps": steps, "outcome": f"failed: {type(e).__name__}: {e}"}

    def _stage(self, steps: list) -> dict:
        t0 = time.monotonic()
        by_name = {n.name: n for n in self.nodes}
        all_names = names(self.nodes)

        def note(step: str, **what) -> None:
            steps.append({"at": round(time.monotonic() - t0, 3), "step": step, **what})

        def cut(grudge: dict) -> None:
            self.partition.start({"shape": "figure8", "grudge": grudge})

        def done(outcome: str) -> dict:
            note(outcome)
            return {"steps": steps, "outcome": outcome, "delay": self.delay_s}

        first = self._wait(lambda s: _leader_of(s, all_names, 0))
        if first is None:
            return done("no leader to start from")
        a, term_a = first
        b, c = [n for n in all_names if n != a]
        self.delay.start({"links": {b: [c], c: [b]}, "mean": self.delay_s, "jitter": 0.0})
        cut(isolate(all_names, a))
        note("cut off the leader", node=a, term=term_a, delayed=[b, c])

        second = self._wait(lambda s: _leader_of(s, [b, c], term_a))
        if second is None:
            return done("no new leader among the others")
        w, term_w = second
        cut(complete_grudge([[n] for n in all_names]))
        lone = c if w == b else b
        note("cut off the new leader before its first entry spread", node=w, term=term_w)

        self.delay.start({"links": {a: [lone]}, "mean": self.delay_s, "jitter": 0.0})
        cut(isolate(all_names, w))
        note("joined the first leader and the other", nodes=[a, lone], delayed=[a])
        third = self._wait(lambda s: _leader_of(s, [a], term_w))
        if third is None:
            return done("the first leader did not win again")
        commit = self._status(by_name[a])
        commit = commit["commit"] if commit else None
        note("the first leader won again", node=a, term=third[1], commit=commit)
        moved = self._wait(lambda s: _commit_past(s.get(a), commit))
        cut(isolate(all_names, a))
        self.delay.stop()
        note("cut off the first leader" + (" after its commit index moved" if moved else ""),
             node=a, commit=moved)

        fourth = self._wait(lambda s: _leader_of(s, [w, lone], third[1]))
        if fourth is None:
            return done("no leader after the last cut")
        return done(f"{fourth[0]} leads term {fourth[1]}")

    def _status(self, node) -> dict | None:
        try:
            return self.target.status(node, timeout=0.3)
        except Exception:  # noqa: BLE001 - an unreachable node has no status to give now
            return None

    def _wait(self, found):
        """Poll every node's status until found(statuses) gives a value; None on timeout."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            value = found({n.name: self._status(n) for n in self.nodes})
            if value:
                return value
            time.sleep(POLL)
        return None


def _leader_of(statuses: dict, among: list[str], above: int):
    """(node, term) of a node in `among` leading a term above `above`, or None."""
    for name in among:
        s = statuses.get(name)
        if s and s.get("state") == "leader" and s.get("term", 0) > above:
            return name, s["term"]
    return None


def _commit_past(status: dict | None, commit):
    if status is None or commit is None or status.get("commit", 0) <= commit:
        return None
    return status["commit"]


def checked_delay(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.05 <= value <= 5:
        raise ValueError(f"figure8_delay must be seconds from 0.05 to 5, got {value!r}")
    return float(value)
