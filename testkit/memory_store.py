"""An in-memory database for every workload, correct or with one planted bug, and a
driver that runs a workload's generator against it into a history.

The driver asks the generator for ops as the runner does (`harness.generator.simulate`)
and applies each op to the store at the instant it is invoked, so each op takes effect
inside its own interval: with a correct store the history is linearizable (and strictly
serializable) by construction, and a checker that calls it invalid is wrong. A store made
with `bug=True` breaks the workload's promise in the way its checker exists to catch.
"""
from __future__ import annotations

from harness.generator import simulate


def run(generator, store, *, concurrency: int = 4, seed: int = 0, latency: int = 1_000_000,
        max_ops: int = 100_000) -> list[dict]:
    """The history of `generator` run against `store`: invocations and completions in time
    order (a completion before an invocation of the same instant: the thread was free)."""
    events = []
    for n, op in enumerate(simulate(generator, concurrency=concurrency, seed=seed,
                                    latency=latency, max_ops=max_ops)):
        invocation = {k: v for k, v in op.items() if k != "thread"}
        if op["process"] == "nemesis":
            completion = {**invocation, "type": "info"}
        else:
            completion = {**invocation, **store.apply(op)}
        completion["time"] = op["time"] + latency
        events.append((op["time"], 1, n, invocation))
        events.append((completion["time"], 0, n, completion))
    events.sort(key=lambda e: e[:3])
    return [{**op, "index": i} for i, (_, _, _, op) in enumerate(events)]


class RegisterStore:
    """Keyed registers (read, write, cas). Bug: a read returns a value nobody wrote."""

    def __init__(self, bug: bool = False):
        self.values, self.bug = {}, bug

    def apply(self, op):
        key, arg = op["value"]
        if op["f"] == "read":
            return {"type": "ok", "value": [key, -1 if self.bug else self.values.get(key)]}
        if op["f"] == "write":
            self.values[key] = arg
            return {"type": "ok"}
        expected, new = arg
        if self.values.get(key) != expected:
            return {"type": "fail"}
        self.values[key] = new
        return {"type": "ok"}


class SetStore:
    """Sets per key (add, read-list). Bug: the read forgets the first element added."""

    def __init__(self, bug: bool = False):
        self.sets, self.bug = {}, bug

    def apply(self, op):
        key, element = op["value"]
        if op["f"] == "add":
            self.sets.setdefault(key, []).append(element)
            return {"type": "ok"}
        elements = self.sets.get(key, [])
        return {"type": "ok", "value": [key, elements[1:] if self.bug else list(elements)]}


class TxnStore:
    """Lists (append) or registers (w) under transactions run one at a time. Bug: a read
    sees the key as it was before its latest write (a stale read)."""

    def __init__(self, bug: bool = False):
        self.now, self.before, self.bug = {}, {}, bug

    def apply(self, op):
        mops = []
        for f, key, v in op["value"]:
            if f == "r":
                seen = (self.before if self.bug else self.now).get(key)
                mops.append([f, key, list(seen) if isinstance(seen, list) else seen])
                continue
            self.before[key] = self.now.get(key)
            self.now[key] = self.now.get(key, []) + [v] if f == "append" else v
            mops.append([f, key, v])
        return {"type": "ok", "value": mops}


class LockStore:
    """One lock (acquire, release). Bug: every acquire is granted, held or not."""

    def __init__(self, bug: bool = False):
        self.holder, self.bug = None, bug

    def apply(self, op):
        if op["f"] == "acquire":
            if self.holder is not None and not self.bug:
                return {"type": "fail"}
            self.holder = op["process"]
            return {"type": "ok"}
        if self.holder != op["process"] and not self.bug:
            return {"type": "fail"}
        self.holder = None
        return {"type": "ok"}


class CounterStore:
    """Counters (increment, read). Bug: every third increment is acknowledged and lost."""

    def __init__(self, bug: bool = False):
        self.counts, self.bug, self.increments = {}, bug, 0

    def apply(self, op):
        key, arg = op["value"]
        if op["f"] == "read":
            return {"type": "ok", "value": [key, self.counts.get(key)]}
        self.increments += 1
        if not (self.bug and self.increments % 3 == 0):
            self.counts[key] = self.counts.get(key, 0) + arg
        return {"type": "ok"}


class BankStore:
    """Accounts (open-accounts, transfer, read-balances). Bug: a transfer credits its
    destination one unit more than it debits the source."""

    def __init__(self, bug: bool = False):
        self.balances, self.bug = {}, bug

    def apply(self, op):
        if op["f"] == "open-accounts":
            self.balances = dict(op["value"])
            return {"type": "ok"}
        if op["f"] == "read-balances":
            return {"type": "ok", "value": [[a, self.balances.get(a)] for a, _ in op["value"]]}
        t = op["value"]
        if self.balances[t["from"]] < t["amount"]:
            return {"type": "fail", "error": "insufficient funds"}
        self.balances[t["from"]] -= t["amount"]
        self.balances[t["to"]] += t["amount"] + (1 if self.bug else 0)
        return {"type": "ok"}
