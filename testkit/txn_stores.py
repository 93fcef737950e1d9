"""Simulated transactional databases that produce histories for the Elle checker's tests
and benchmark. Each store implements one isolation level on purpose, so the checker's
verdicts can be judged against what that level allows.

A scheduler interleaves `concurrency` processes step by step. Every transaction is
invoked, then executed (all at once, or one micro-op per step, depending on the store),
then completed, and each of these is a separate step, so transactions overlap in real time
the way client requests do.

Stores:
- serializable: each transaction runs atomically at one step between its invocation and
  completion: strict serializability. `stale_rate` plants stale reads (a read that misses
  the key's last committed write), `info_rate` crashes some completions (effects kept or
  not).
- snapshot-isolation: reads from the snapshot taken when the transaction starts; at commit
  the first committer wins (a transaction whose written keys changed since its snapshot
  fails).
- read-committed: reads see the latest committed state (plus the transaction's own
  writes); writes take an exclusive lock held to commit; a transaction waiting too long
  for a lock fails.
- read-uncommitted: like read-committed, but writes go straight into the shared state,
  visible before commit; some transactions abort and roll back.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

STORES = ("serializable", "snapshot-isolation", "read-committed", "read-uncommitted")


@dataclass
class _Txn:
    process: int
    mops: list                       # the invocation's micro-ops
    results: list = field(default_factory=list)
    pc: int = 0                      # next micro-op to run
    phase: str = "pending"           # pending -> running -> done
    snapshot: int = 0
    writes: dict = field(default_factory=dict)   # key -> own appended elems / written value
    locks: set = field(default_factory=set)
    waited: int = 0
    outcome: str = "ok"


class _Generator:
    """Random transactions over a pool of active keys; appends/writes are unique per key
    and a key is retired after `max_writes` writes (Elle's generator does the same)."""

    def __init__(self, rng: random.Random, workload: str, keys: int, min_mops: int,
                 max_mops: int, max_writes: int, write_skew: bool):
        self.rng, self.workload = rng, workload
        self.active = list(range(keys))
        self.next_key = keys
        self.writes: dict[int, int] = {}
        self.min_mops, self.max_mops, self.max_writes = min_mops, max_mops, max_writes
        self.write_skew = write_skew
        self.write_f = "append" if workload == "list-append" else "w"

    def _write(self, k: int) -> list:
        n = self.writes.get(k, 0) + 1
        self.writes[k] = n
        if n >= self.max_writes:
            i = self.active.index(k)
            self.active[i] = self.next_key
            self.next_key += 1
        return [self.write_f, k, n]

    def txn(self) -> list:
        rng = self.rng
        if self.write_skew:
            # Read both keys of a pair, write one: the shape of write skew.
            i = rng.randrange(0, len(self.active) - 1, 2)
            x, y = self.active[i], self.active[i + 1]
            return [["r", x, None], ["r", y, None], self._write(rng.choice((x, y)))]
        mops = []
        for _ in range(rng.randint(self.min_mops, self.max_mops)):
            k = rng.choice(self.active)
            mops.append(["r", k, None] if rng.random() < 0.5 else self._write(k))
        return mops


class _Store:
    """Committed state: per key, versions (commit sequence, value) in commit order."""

    def __init__(self, workload: str):
        self.append = workload == "list-append"
        self.versions: dict[int, list[tuple[int, object]]] = {}
        self.seq = 0

    def latest(self, k):
        vs = self.versions.get(k)
        if not vs:
            return () if self.append else None
        return vs[-1][1]

    def at(self, k, snapshot: int):
        for seq, value in reversed(self.versions.get(k, ())):
            if seq <= snapshot:
                return value
        return () if self.append else None

    def before_latest(self, k):
        """The key as it was before its last committed write: a stale read."""
        vs = self.versions.get(k, ())
        if len(vs) < 2:
            return () if self.append else None
        return vs[-2][1]

    def changed_since(self, k, snapshot: int) -> bool:
        vs = self.versions.get(k)
        return bool(vs) and vs[-1][0] > snapshot

    def commit(self, writes: dict) -> None:
        if not writes:
            return
        self.seq += 1
        for k, w in writes.items():
            value = self.latest(k) + tuple(w) if self.append else w
            self.versions.setdefault(k, []).append((self.seq, value))


def _observe(value):
    return list(value) if isinstance(value, tuple) else value


def simulate(store: str = "serializable", n: int = 1000, *, workload: str = "list-append",
             keys: int = 100, concurrency: int = 10, min_mops: int = 1, max_mops: int = 5,
             seed: int = 0, write_skew: bool = False, max_writes: int = 32,
             stale_rate: float = 0.0, info_rate: float = 0.0, abort_rate: float = 0.1,
             lock_patience: int = 20) -> list[dict]:
    """A history of `n` transactions from the given store (see the module doc)."""
    if store not in STORES:
        raise ValueError(f"unknown store {store!r}; expected one of {', '.join(STORES)}")
    rng = random.Random(seed)
    gen = _Generator(rng, workload, keys, min_mops, max_mops, max_writes, write_skew)
    db = _Store(workload)
    history: list[dict] = []
    running: dict[int, _Txn] = {}
    dirty: dict[int, list] = {}        # read-uncommitted: key -> shared uncommitted state
    lock_owner: dict[int, int] = {}    # key -> process holding its write lock
    started = 0
    step = 0

    def record(typ: str, txn: _Txn, value: list) -> None:
        history.append({"index": len(history), "time": step * 1000, "type": typ,
                        "process": txn.process, "f": "txn", "value": value})

    def read(txn: _Txn, k):
        if store == "snapshot-isolation":
            base = db.at(k, txn.snapshot)
        elif store == "read-uncommitted":
            return _observe(dirty[k] if k in dirty else db.latest(k))
        else:
            base = db.latest(k)
        own = txn.writes.get(k)
        if own is None:
            return _observe(base)
        return list(base) + own if db.append else own

    def write(txn: _Txn, k, v) -> bool:
        if store in ("read-committed", "read-uncommitted"):
            owner = lock_owner.get(k)
            if owner is not None and owner != txn.process:
                txn.waited += 1
                return False
            lock_owner[k] = txn.process
            txn.locks.add(k)
        if db.append:
            txn.writes.setdefault(k, []).append(v)
        else:
            txn.writes[k] = v
        if store == "read-uncommitted":
            if db.append:
                dirty[k] = tuple(dirty.get(k, db.latest(k))) + (v,)
            else:
                dirty[k] = v
        return True

    def release(txn: _Txn) -> None:
        for k in txn.locks:
            lock_owner.pop(k, None)
            dirty.pop(k, None)

    def run_one(txn: _Txn) -> bool:
        """Runs the next micro-op; False when it has to wait for a lock."""
        f, k, v = txn.mops[txn.pc]
        if f == "r":
            if stale_rate and k not in txn.writes and rng.random() < stale_rate:
                value = _observe(db.before_latest(k))
            else:
                value = read(txn, k)
            txn.results.append([f, k, value])
        else:
            if not write(txn, k, v):
                return False
            txn.results.append([f, k, v])
        txn.pc += 1
        return True

    def finish(txn: _Txn) -> None:
        if store == "snapshot-isolation" and any(db.changed_since(k, txn.snapshot)
                                                 for k in txn.writes):
            txn.outcome = "fail"
        elif store == "read-uncommitted" and rng.random() < abort_rate:
            txn.outcome = "fail"
        elif info_rate and rng.random() < info_rate:
            # The client never learns the outcome; the effects happen half of the time.
            txn.outcome = "info" if rng.random() < 0.5 else "info-lost"
        if txn.outcome in ("ok", "info"):
            db.commit(txn.writes)
        release(txn)
        txn.phase = "done"

    while started < n or running:
        step += 1
        idle = [p for p in range(concurrency) if p not in running]
        if started < n and idle and (not running or rng.random() < 0.5):
            p = rng.choice(idle)
            txn = _Txn(p, gen.txn())
            running[p] = txn
            started += 1
            record("invoke", txn, [list(m) for m in txn.mops])
            continue
        p = rng.choice(list(running))
        txn = running[p]
        if txn.phase == "pending":
            txn.phase = "running"
            txn.snapshot = db.seq
            if store == "serializable":
                while txn.pc < len(txn.mops):
                    run_one(txn)
                finish(txn)
            continue
        if txn.phase == "running":
            if txn.pc < len(txn.mops):
                if not run_one(txn) and txn.waited > lock_patience:
                    txn.outcome = "fail"
                    release(txn)
                    txn.phase = "done"
            else:
                finish(txn)
            continue
        del running[p]
        if txn.outcome == "ok":
            record("ok", txn, txn.results)
        else:
            record("fail" if txn.outcome == "fail" else "info", txn, [list(m) for m in txn.mops])
    return history
