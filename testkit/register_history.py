"""Histories of a simulated linearizable register, for tests and benchmarks.

Each operation takes effect at one instant inside its interval (its linearization point),
so the history is linearizable by construction. Clients time out: such an op completes
as `info`, took effect at a random instant after its invocation or never, and its process
retires (the next op on that thread is process p + concurrency, Jepsen's rule). A
`stale_reads` fraction of reads return the value the register held before the last
write instead, which may or may not break linearizability (concurrent ops can hide it).
"""
from __future__ import annotations

import heapq
import random


def register_history(n_ops: int, *, concurrency: int = 5, keys: int | None = None,
                     seed: int = 0, timeout_rate: float = 0.02, stale_reads: float = 0.0,
                     values: int = 5, initial=0, cas: bool = True) -> list[dict]:
    """A history of `n_ops` read / write / cas operations (with `keys`, Jepsen's
    independent [key, value] tuples on that many registers), ordered by time."""
    rng = random.Random(seed)
    effects = []           # (instant, seq, op record) for ops that take effect
    records = []           # (time, seq, op dict): the history before sorting
    seq = 0
    free_at = [0.0] * concurrency
    process = list(range(concurrency))
    for _ in range(n_ops):
        thread = min(range(concurrency), key=free_at.__getitem__)
        start = free_at[thread] + rng.expovariate(1.0)
        end = start + rng.expovariate(0.3) + 0.01
        timed_out = rng.random() < timeout_rate
        f = rng.choice(("read", "write", "cas") if cas else ("read", "write"))
        arg = (None if f == "read" else rng.randrange(values) if f == "write"
               else [rng.randrange(values), rng.randrange(values)])
        op = {"process": process[thread], "f": f, "arg": arg, "start": start, "end": end,
              "key": rng.randrange(keys) if keys else None, "timed_out": timed_out}
        if timed_out:
            if rng.random() < 0.5:
                effects.append((start + rng.expovariate(0.05), seq, op))
            process[thread] += concurrency
        else:
            effects.append((rng.uniform(start, end), seq, op))
        seq += 1
        free_at[thread] = end
        records.append(op)

    registers: dict = {}
    history_of_key: dict = {}
    for _, _, op in sorted(effects, key=lambda e: (e[0], e[1])):
        k = op["key"]
        now = registers.get(k, initial)
        before = history_of_key.setdefault(k, [initial])
        f = op["f"]
        if f == "read":
            op["result"] = before[-2] if len(before) > 1 and rng.random() < stale_reads else now
        elif f == "write":
            registers[k] = op["arg"]
            before.append(op["arg"])
        elif now == op["arg"][0]:
            registers[k] = op["arg"][1]
            before.append(op["arg"][1])
            op["result"] = True
        else:
            op["result"] = False
    return _events(records, keys)


def _events(records: list[dict], keys) -> list[dict]:
    def wrap(op, v):
        return [op["key"], v] if keys else v

    heap = []
    for n, op in enumerate(records):
        heap.append((op["start"], n, 0))
        heap.append((op["end"], n, 1))
    heapq.heapify(heap)
    history = []
    while heap:
        t, n, done = heapq.heappop(heap)
        op = records[n]
        event = {"index": len(history), "time": int(t * 1e6), "process": op["process"], "f": op["f"]}
        if not done:
            event.update(type="invoke", value=wrap(op, op["arg"]))
        elif op["timed_out"]:
            event.update(type="info", value=wrap(op, op["arg"]), error="timeout")
        elif op["f"] == "read":
            event.update(type="ok", value=wrap(op, op["result"]))
        elif op["f"] == "cas" and not op["result"]:
            event.update(type="fail", value=wrap(op, op["arg"]))
        else:
            event.update(type="ok", value=wrap(op, op["arg"]))
        history.append(event)
    return history
