"""List-append: infer the dependency graph from reads of append-only lists.

Every read of a key shows a prefix of the key's version order, so the longest read orders
all the appends it contains (and every other read must be a prefix of it, or the history
shows `incompatible-order`). From that order:

- ww: T2 appended the element right after T1's element;
- wr: T2 read a list whose last element T1 appended;
- rw: T1 read the list just before T2's append (T1 did not see T2's element).

An append that no read observed still came after the last observed element, so it gets
ww/rw edges from there. Non-cycle anomalies found on the way: G1a (aborted read), G1b
(intermediate read), internal, future-read, duplicate-elements, incompatible-order,
dirty-update, lost-update.

The common case is kept linear and cheap: reads are checked against the longest read of
their key as they stream by, and only keys that look wrong (a read that is no prefix,
a duplicate, an element of a failed transaction) get the slower exact treatment.
"""
from __future__ import annotations

from typing import Any

from core.history import HistoryError

from .graph import RW, WR, WW, DependencyGraph
from .lost_update import LostUpdates
from .txns import TxnHistory


class _Marker:
    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


INIT = _Marker("__init__")           # the state of a key before any append
UNKNOWN_PREFIX = _Marker("...")      # an expected state whose beginning is not known


def jsonable(x: Any) -> Any:
    return x.text if isinstance(x, _Marker) else x


class DuplicateAppends(ValueError):
    """The same value appended to a key twice: the version order cannot be inferred."""


class ListAppend:
    """The analysis of one list-append history: graph, anomalies, and pair explanations."""

    name = "list-append"
    # Elle explains a pair by the first of its explainers that can: ww, then wr, then rw.
    explain_order = (WW, WR, RW)

    def __init__(self, txns: TxnHistory):
        self.txns = txns
        self.anomalies: dict[str, list] = {}
        self.graph = DependencyGraph(len(txns))
        self._scan()
        self._orders()
        self._edges()
        self._dirty_updates()
        for name, cases in (("internal", self._internal), ("future-read", self._future),
                            ("lost-update", self._lost.cases()), ("G1b", self._g1b)):
            if cases:
                self.anomalies[name] = cases

    # -- pass 1: indices, longest reads, per-transaction checks -----------------------------

    def _scan(self) -> None:
        txns = self.txns
        write_index: dict[Any, dict[Any, int]] = {}
        read_index: dict[Any, dict[Any, list[int]]] = {}
        longest: dict[Any, list] = {}
        broken: set = set()
        append_counts: dict[Any, int] = {}
        self._internal: list[dict] = []
        self._future: list[dict] = []
        self._lost = LostUpdates("append")
        intermediate: dict[Any, dict[Any, Any]] = {}
        duplicates_of: list[tuple[Any, Any]] = []
        for n, op in enumerate(txns.ops):
            value = op.get("value") or ()
            ok = txns.ok[n]
            if len(value) > 1:
                keys = [m[1] for m in value]
                if len(set(keys)) != len(keys):
                    repeated_keys(n, op, value, ok, intermediate, self._internal,
                                  self._future, self._lost)
            for mop in value:
                try:
                    f, k, v = mop
                except (TypeError, ValueError):
                    raise HistoryError(f"op {txns.index[n]}: micro-op {mop!r} is not [f, key, value]") from None
                if f == "append":
                    wk = write_index.get(k)
                    if wk is None:
                        write_index[k] = {v: n}
                        append_counts[k] = 1
                    else:
                        size = len(wk)
                        wk[v] = n
                        if len(wk) == size:
                            duplicates_of.append((k, v))
                        append_counts[k] += 1
                elif f == "r":
                    if v is None and not ok:
                        continue  # an info op's nil read is the unknown result, not []
                    if v:
                        if type(v) is not list:
                            v = list(v)
                        last = v[-1]
                        top = longest.get(k)
                        if top is None:
                            longest[k] = v
                        elif len(v) > len(top):
                            if top != v[:len(top)]:
                                broken.add(k)
                            longest[k] = v
                        elif v != top[:len(v)]:
                            broken.add(k)
                    else:
                        last = INIT
                    # One reader of a state is the common case: a bare node id, and a
                    # list only from the second reader on (memory: a million txns).
                    rk = read_index.get(k)
                    if rk is None:
                        read_index[k] = {last: n}
                    else:
                        readers = rk.get(last)
                        if readers is None:
                            rk[last] = n
                        elif type(readers) is int:
                            if readers != n:
                                rk[last] = [readers, n]
                        elif readers[-1] != n:
                            readers.append(n)
                else:
                    raise HistoryError(f"op {txns.index[n]}: list-append micro-ops are append and r, "
                                       f"got {mop!r}")
        failed: dict[Any, dict[Any, Any]] = {}
        for op in txns.fails:
            value = op.get("value") or ()
            seen: dict = {}
            for mop in value:
                if mop[0] == "append":
                    k, v = mop[1], mop[2]
                    failed.setdefault(k, {})[v] = op.get("index")
                    if k in seen:
                        intermediate.setdefault(k, {})[seen[k]] = op.get("index")
                    seen[k] = v
                    wk = write_index.get(k)
                    if wk is not None and v in wk:
                        duplicates_of.append((k, v))
        if duplicates_of:
            k, v = duplicates_of[0]
            raise DuplicateAppends(f"value {v!r} appended to key {k!r} more than once "
                                   f"({len(duplicates_of)} duplicate appends in all): the "
                                   f"list-append checker needs unique appends")
        self._write_index, self._read_index = write_index, read_index
        self._longest, self._broken = longest, broken
        self._append_counts, self._failed = append_counts, failed
        self._intermediate = intermediate

    # -- version orders ------------------------------------------------------------------

    def _orders(self) -> None:
        """Each key's version order: its longest read, or its single append when unread.
        Orders longer than SHORT_ORDER also get a position index; short ones are scanned,
        which saves a dict per key (memory: a million transactions)."""
        slow = set(self._broken)
        order: dict[Any, list] = {}
        self._positions: dict[Any, dict] = {}
        duplicates: list[dict] = []
        for k, top in self._longest.items():
            if k in self._broken:
                continue
            distinct = top if len(set(top)) == len(top) else list(dict.fromkeys(top))
            if len(distinct) != len(top):
                slow.add(k)
            failed = self._failed.get(k)
            if failed and any(e in failed for e in distinct):
                slow.add(k)
            self._set_order(order, k, distinct)
        if slow:
            duplicates, incompatible = self._slow_keys(slow, order)
            if incompatible:
                self.anomalies["incompatible-order"] = incompatible
        if duplicates:
            self.anomalies["duplicate-elements"] = duplicates
        for k, count in self._append_counts.items():
            if count == 1 and k not in order:
                order[k] = list(self._write_index[k])
        self._order = order

    def _set_order(self, order: dict, k, values: list) -> None:
        order[k] = values
        if len(values) > SHORT_ORDER:
            self._positions[k] = {e: i for i, e in enumerate(values)}

    def _slow_keys(self, keys: set, order: dict) -> tuple[list, list]:
        """Exact treatment of suspicious keys: every read of them is looked at."""
        txns = self.txns
        reads: dict[Any, list[tuple[int, Any]]] = {k: [] for k in keys}
        for n, op in enumerate(txns.ops):
            for mop in op.get("value") or ():
                if mop[0] == "r" and mop[1] in reads and mop[2]:
                    reads[mop[1]].append((n, mop))
        duplicates, incompatible, g1a = [], [], []
        for k in sorted(keys, key=repr):
            distinct: dict[tuple, None] = {}
            failed = self._failed.get(k, {})
            for n, mop in reads[k]:
                v = list(mop[2])
                distinct.setdefault(tuple(v), None)
                counts: dict = {}
                for e in v:
                    counts[e] = counts.get(e, 0) + 1
                dups = {e: c for e, c in counts.items() if c > 1}
                if dups:
                    duplicates.append({"op": txns.index[n], "mop": list(mop),
                                       "duplicates": {str(e): c for e, c in sorted(dups.items(), key=repr)}})
                if failed and txns.ok[n]:
                    g1a.extend({"op": txns.index[n], "mop": list(mop), "writer": failed[e],
                                "element": e} for e in v if e in failed)
            if k in self._broken:
                values = sorted((list(t) for t in distinct), key=len)
                for a, b in zip(values, values[1:]):
                    if b[:len(a)] != a:
                        incompatible.append({"key": k, "values": [a, b]})
                        break
                self._set_order(order, k, list(dict.fromkeys(values[-1])))
        if g1a:
            g1a.sort(key=lambda c: (c["op"] if isinstance(c["op"], int) else 0))
            self.anomalies["G1a"] = g1a
        duplicates.sort(key=lambda c: (c["op"] if isinstance(c["op"], int) else 0))
        return duplicates, incompatible

    # -- pass 2: dependency edges --------------------------------------------------------

    def _edges(self) -> None:
        txns, order, positions = self.txns, self._order, self._positions
        write_index, read_index = self._write_index, self._read_index
        intermediate = self._intermediate
        src, dst, rel = self.graph.src.append, self.graph.dst.append, self.graph.rel.append
        g1b = []
        no_readers: dict = {}
        for n, op in enumerate(txns.ops):
            for f, k, v in op.get("value") or ():
                if f == "r":
                    if v:
                        w = write_index.get(k, no_readers).get(v[-1])
                        if w is not None and w != n:
                            src(w), dst(n), rel(WR)
                        if intermediate and txns.ok[n]:
                            writer = intermediate.get(k, no_readers).get(v[-1])
                            if writer is not None and writer != txns.index[n]:
                                g1b.append({"op": txns.index[n], "mop": ["r", k, v],
                                            "writer": writer, "element": v[-1]})
                    continue
                values = order.get(k)
                prev = INIT if values is None else _previous(values, positions.get(k), v)
                if prev is not INIT:
                    w = write_index.get(k, no_readers).get(prev)
                    if w is not None and w != n:
                        src(w), dst(n), rel(WW)
                readers = read_index.get(k, no_readers).get(prev)
                if readers is not None:
                    if type(readers) is int:
                        if readers != n:
                            src(readers), dst(n), rel(RW)
                    else:
                        for r in readers:
                            if r != n:
                                src(r), dst(n), rel(RW)
        self._g1b = g1b

    def _previous(self, k, v):
        values = self._order.get(k)
        return INIT if values is None else _previous(values, self._positions.get(k), v)

    # -- dirty updates -------------------------------------------------------------------

    def _dirty_updates(self) -> None:
        """A committed append right after aborted ones: the committed transaction built on
        state that never existed. Only keys whose order holds a failed element can show it."""
        cases = []
        txns = self.txns
        for k, failed in self._failed.items():
            values = self._order.get(k)
            if values is None or not any(e in failed for e in values):
                continue
            last_type, last_index, span = "ok", None, []
            for e in values:
                span.append(e)
                if e in failed:
                    typ, idx = "fail", failed[e]
                else:
                    w = self._write_index.get(k, {}).get(e)
                    typ = "info" if w is None or not txns.ok[w] else "ok"
                    idx = None if w is None else txns.index[w]
                if typ == "ok":
                    if last_type == "fail":
                        cases.append({"key": k, "values": list(span),
                                      "txns": [last_index, "...", idx]})
                    last_type, last_index, span = "ok", idx, [e]
                elif typ == "fail" and last_type != "fail":
                    last_type, last_index, span = "fail", idx, [e]
                # An info writer may or may not have committed: it moves no boundary.
        if cases:
            self.anomalies["dirty-update"] = cases

    # -- explanations --------------------------------------------------------------------

    def explain(self, a: int, b: int, rel: int) -> dict:
        """Why b depends on a through `rel`, as data: Elle's step maps."""
        b_value = self.txns.value(b)
        if rel == WR:
            for f, k, v in b_value:
                if f == "r" and v and self._writer(k, v[-1]) == a:
                    return {"type": "wr", "key": k, "value": v[-1], "mop": ["r", k, v]}
        elif rel == WW:
            for f, k, v in b_value:
                if f == "append":
                    prev = self._previous(k, v)
                    if prev is not INIT and self._writer(k, prev) == a:
                        return {"type": "ww", "key": k, "value": prev, "value'": v}
        elif rel == RW:
            for f, k, v in b_value:
                if f == "append":
                    prev = self._previous(k, v)
                    if a in self._readers(k, prev):
                        return {"type": "rw", "key": k, "value": jsonable(prev), "value'": v,
                                "mop": self._read_of(a, k, prev)}
        raise AssertionError(f"no {rel} dependency from node {a} to node {b}")

    def _writer(self, k, v) -> int | None:
        return self._write_index.get(k, {}).get(v)

    def _readers(self, k, state) -> list[int]:
        readers = self._read_index.get(k, {}).get(state, ())
        return [readers] if type(readers) is int else list(readers)

    def _read_of(self, a: int, k, prev) -> list | None:
        for f, key, v in self.txns.value(a):
            if f == "r" and key == k and ((not v and prev is INIT) or (v and v[-1] == prev)):
                return ["r", k, v]
        return None

    def step_text(self, step: dict, a: str, b: str) -> str:
        k, after = step["key"], step.get("value'")
        if step["type"] == "wr":
            return (f"{b} read {k} = {_list(step['mop'][2])}, which ends with {a}'s append of "
                    f"{step['value']}, so {b} saw {a}'s write")
        if step["type"] == "ww":
            return (f"{a} appended {step['value']} to {k}, and {b} appended {after} right after "
                    f"it in {k}'s version order")
        seen = step.get("mop")
        read = f"{a} read {k} = {_list(seen[2]) if seen else '[]'}"
        if step["value"] == "__init__":
            return (f"{read}, the initial empty list, but {b} appended {after}, the first "
                    f"element of {k}: {a} did not see {b}'s append")
        return (f"{read}, which does not include {b}'s append of {after} (the element after "
                f"{step['value']}): {a} did not see {b}'s append")


SHORT_ORDER = 32


def _previous(values: list, positions: dict | None, v):
    """The element appended just before v: from the key's order, or, for an append no
    read observed, the last observed element (it came after all of them)."""
    if positions is not None:
        i = positions.get(v)
    else:
        i = values.index(v) if v in values else None
    if i is None:
        return values[-1] if values else INIT
    return values[i - 1] if i else INIT


def _list(v) -> str:
    return "[" + " ".join(map(str, v or [])) + "]"


def repeated_keys(n: int, op: dict, value, ok: bool, intermediate: dict, internal: list,
                  future: list, lost: LostUpdates) -> None:
    """The checks that need two micro-ops on one key in one transaction."""
    last_append: dict = {}
    for mop in value:
        if mop[0] == "append":
            k = mop[1]
            if k in last_append:
                intermediate.setdefault(k, {})[last_append[k]] = op.get("index")
            last_append[k] = mop[2]
    if not ok:
        return
    case = internal_case(op)
    if case:
        internal.append(case)
    case = _future_read_case(op)
    if case:
        future.append(case)
    lost.add(n, op, value)


def internal_case(op: dict) -> dict | None:
    """A read inconsistent with the transaction's own earlier reads and appends of the key
    (Cerone et al.'s INT axiom). `expected` is a list, or ["...", x, ...] when only the
    end of the list is known."""
    state: dict = {}
    for mop in op.get("value") or ():
        f, k, v = mop
        if f == "append":
            if k in state:
                state[k] = list(state[k] or []) + [v]
            else:
                state[k] = [UNKNOWN_PREFIX, v]
        elif f == "r":
            s = state.get(k)
            if s is not None:
                seen = list(v) if v is not None else None
                if s and s[0] is UNKNOWN_PREFIX:
                    i = len(seen or ()) + 1 - len(s)
                    bad = i < 0 or s[1:] != (seen or [])[i:]
                else:
                    bad = s != seen
                if bad:
                    return {"op": op.get("index"), "mop": list(mop),
                            "expected": [jsonable(x) for x in s]}
            state[k] = v
    return None


def _future_read_case(op: dict) -> dict | None:
    """A read that already shows an element the transaction appends only later."""
    reads: dict = {}
    for mop in op.get("value") or ():
        f, k, v = mop
        if f == "append":
            read = reads.get(k, {}).get(v)
            if read is not None:
                return {"op": op.get("index"), "mop": list(read), "element": v}
        elif f == "r":
            per_key = reads.setdefault(k, {})
            for e in v or ():
                per_key.setdefault(e, mop)
    return None


def internal_cases(history: list[dict]) -> list[dict]:
    """The per-transaction internal-consistency check alone, over the ok ops of a history."""
    return [c for op in history if op.get("type") == "ok" for c in [internal_case(op)] if c]
