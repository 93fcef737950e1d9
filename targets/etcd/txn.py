"""Tectonic's transactions (list-append and rw-register micro-ops) over etcd's Txn.

etcd's Txn cannot compute an append, and refuses a key written twice, so the client runs
each transaction itself against a snapshot and lets etcd commit it only if the snapshot
still holds (optimistic concurrency, as Jepsen's etcd client does):

1. `plan`: which keys the transaction reads before writing them -- its reads of keys it
   has not written yet, and every key it appends to before writing it (an append needs
   the list it extends).
2. If there are such keys, read them all in one etcd txn (one revision).
3. `run_against(mops, before)`: the reads' results and the final value of every written key.
4. Commit the writes in one etcd txn guarded by `mod_revision == seen` for every key read
   in step 2 (0 for a key that did not exist). The guard holding means none of those keys
   changed between the snapshot and the commit, so the whole transaction took effect at
   the commit, with exactly the reads reported. A guard that fails commits nothing.

A transaction without reads of outside state is one txn of puts; one without writes is one
read-only txn (linearizable unless the client is serializable).
"""
from __future__ import annotations

import copy


def plan(mops: list) -> list:
    """The keys whose value before the transaction it depends on, in first-use order."""
    written, needed = set(), []
    for mop in mops:
        f, k = _f_key(mop)
        if f in ("r", "append") and k not in written and k not in needed:
            needed.append(k)
        if f in ("w", "append"):
            written.add(k)
    return needed


def writes_anything(mops: list) -> bool:
    return any(_f_key(m)[0] in ("w", "append") for m in mops)


def run_against(mops: list, before: dict) -> tuple[list, dict]:
    """(completed micro-ops, {key: final value}) for mops applied in order to `before`
    (key -> value, absent for a missing key). Reads see the transaction's own writes."""
    local: dict = {}
    done = []
    for mop in mops:
        f, k = _f_key(mop)
        current = local[k] if k in local else before.get(k)
        if f == "r":
            done.append(["r", k, copy.deepcopy(current)])
        elif f == "w":
            local[k] = mop[2]
            done.append(list(mop))
        else:
            if current is not None and not isinstance(current, list):
                raise ValueError(f"append to key {k!r}, which holds {current!r}, not a list")
            local[k] = (current or []) + [mop[2]]
            done.append(list(mop))
    return done, local


def _f_key(mop) -> tuple[str, object]:
    if not isinstance(mop, (list, tuple)) or len(mop) != 3 or mop[0] not in ("r", "w", "append"):
        raise ValueError(f"a txn micro-op is [\"r\"|\"w\"|\"append\", key, value], got {mop!r}")
    return mop[0], mop[1]
