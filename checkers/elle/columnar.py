"""The columnar list-append engine: the same analysis as `list_append.ListAppend` over
the same `TxnHistory` numbering, with the history held as arrays instead of a dict per op.

One pass over the ops (a list, or a history.jsonl streamed chunk by chunk, so a
million-transaction file never exists as dicts) keeps per transaction a few machine words
(type, index, process, positions, real-time events) and per micro-op three (transaction,
key number, value); every read is checked against its key's longest read as it streams
by, as the reference does. Where setup.sh built it, the pass is C (`_feed.c`: the same
state as `_Builder._feed`, which stays its reference; from a file most lines are read
from their bytes, no dict made). The edges are then joins of sorted integer codes
`key << 32 | value + 1` (0 is the empty list) in numpy: each append's predecessor from its
key's version order, the writer of that predecessor (ww) and its readers (rw), the writer
of each read's last element (wr). The result is the reference's edge multiset exactly, so
components, cycle search and explanations run unchanged on it.

Ops themselves are fetched again only for what a person reads: the transactions of a
reported cycle and the rare reads that need their whole list (G1b). From a file that is a
seek to the op's line (`core.history.read_op_at`).

What the columns do not hold goes to the reference engine, on the whole history (the
caller catches `Fallback`): malformed ops and pairings (the reference names the error),
duplicate appends, a read that is no prefix of its key's longest read, a repeated element,
a failed transaction's element in a version order, and values that are not integers in
0..2**31-2. These are histories with their own anomalies, small or rare; the common case,
valid or with cycles and per-transaction anomalies, stays here.
"""
from __future__ import annotations

import json
from array import array
from typing import Any, Iterable

import numpy as np

from core.history import COMPLETIONS, NEMESIS, iter_jsonl, iter_jsonl_lines, read_op_at

from .graph import RW, WR, WW, DependencyGraph
from .list_append import INIT, ListAppend, _previous, repeated_keys
from .lost_update import LostUpdates
from .txns import TxnHistory

try:
    from . import _feed as _compiled   # compiled by setup.sh; absent where it could not be built
except ImportError:
    _compiled = None

_VALUE_MAX = 2**31 - 2          # values code as value + 1 in the low 32 bits; 0 is INIT
_NO_PROCESS = -2**63            # a transaction without `process`
_DROP = -2**31                  # an event slot whose transaction never became a node


class Fallback(Exception):
    """The history holds something only the reference engine handles (module doc)."""


# What an op of an unexpected shape raises on its way into the columns (a key that is no
# hashable, a micro-op that is no triple, an integer too wide for a column, ...).
_SHAPE_ERRORS = (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError)


class _ListSource:
    def __init__(self, history: list):
        self.history = history

    def op(self, position: int) -> dict:
        return self.history[position]


class _FileSource:
    """Ops fetched again from their lines; kept once fetched (a cycle's explanation asks
    for the same transaction several times, and only reported ones are ever asked for)."""

    def __init__(self, path: str, offsets: array):
        self.path, self.offsets = path, offsets
        self._fetched: dict[int, dict] = {}

    def op(self, position: int) -> dict:
        op = self._fetched.get(position)
        if op is None:
            op = self._fetched[position] = read_op_at(self.path, self.offsets[position])
        return op


class _Lazy:
    """A read-only sequence whose items come from a function of the node number."""

    def __init__(self, n: int, get):
        self.n, self.get = n, get

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.get(i)

    def __iter__(self):
        return map(self.get, range(self.n))


class ColumnarTxns(TxnHistory):
    """TxnHistory's interface over columns; `ops`, `invocations` and `process` are views
    (ops fetched from the source when asked for)."""

    def __init__(self, source, ok: bytearray, index: array, process: array, position: array,
                 invoke_position: array, events: array):
        n = len(ok)
        self.source = source
        self.ok, self.index, self.position, self.invoke_position = ok, index, position, invoke_position
        self._process = process
        self.events = events
        self.fails = []
        self.ops = _Lazy(n, lambda i: source.op(position[i]))
        self.invocations = _Lazy(n, lambda i: None if invoke_position[i] < 0
                                 else source.op(invoke_position[i]))
        self.process = _Lazy(n, lambda i: None if process[i] == _NO_PROCESS else process[i])

    def __len__(self) -> int:
        return len(self.ok)


class _Builder:
    """The single pass over the ops: columns, per-key longest reads, per-transaction
    anomalies. `feed` takes the ops in history order, in as many chunks as come."""

    def __init__(self):
        self.pos = -1
        self.open: dict = {}                # process -> (invocation position, event slot)
        self.ok = bytearray()
        self.index = array("q")
        self.process = array("q")
        self.position = array("q")
        self.invoke_position = array("q")
        self.events = array("i")
        self.a_node, self.a_key, self.a_val = array("i"), array("i"), array("q")
        self.r_node, self.r_key, self.r_last = array("i"), array("i"), array("q")
        self.f_key, self.f_val = array("i"), array("q")     # failed transactions' appends
        self.key_ids: dict = {}
        self.keys: list = []
        self.longest: dict[int, list] = {}
        self.intermediate: dict = {}
        self.internal: list = []
        self.future: list = []
        self.lost = LostUpdates("append")

    def feed(self, ops: Iterable[dict]) -> None:
        try:
            if _compiled is not None and isinstance(ops, list):   # History is a list
                self._feed_compiled(ops)
            else:
                self._feed(ops)
        except _SHAPE_ERRORS:
            raise Fallback() from None

    def _feed_compiled(self, ops: list) -> None:
        """The compiled loop (_feed.c) takes the transactions and stops before any other
        op; that op goes through `_feed`."""
        _alternate(len(ops), lambda i: _compiled.feed(self, ops, i, repeated_keys),
                   lambda i, j: self._feed(ops[i:j]))

    def _feed(self, ops) -> None:
        pos = self.pos
        open_ops, events, ok_col = self.open, self.events, self.ok
        index, process, position, invoke_position = (self.index, self.process, self.position,
                                                     self.invoke_position)
        a_node, a_key, a_val = self.a_node.append, self.a_key.append, self.a_val.append
        r_node, r_key, r_last = self.r_node.append, self.r_key.append, self.r_last.append
        key_ids, keys, longest = self.key_ids, self.keys, self.longest
        n = len(ok_col)
        for op in ops:
            pos += 1
            if type(op) is not dict:
                raise Fallback()
            t = op.get("type")
            p = op.get("process")
            txn = p != NEMESIS and op.get("f", "txn") in ("txn", None)
            value = op.get("value") if txn else None
            if value is not None and type(value) is not list:
                raise Fallback()
            if t == "invoke":
                if p in open_ops:
                    raise Fallback()
                if txn:
                    open_ops[p] = (pos, len(events))
                    events.append(_DROP)
                else:
                    open_ops[p] = (pos, -1)
                continue
            if t not in COMPLETIONS:
                raise Fallback()
            inv_pos, slot = open_ops.pop(p, (-1, -2))
            if slot != -2 and (slot >= 0) != txn:
                raise Fallback()     # a transaction paired with another kind of op
            if not txn:
                continue
            if t == "fail":
                self._failed(op, value)
                continue
            ok = t == "ok"
            i = op.get("index", pos)
            if type(i) is not int:
                raise Fallback()
            if p is None:
                process.append(_NO_PROCESS)
            elif type(p) is int:
                process.append(p)
            else:
                raise Fallback()
            ok_col.append(ok)
            index.append(i)
            position.append(pos)
            invoke_position.append(inv_pos)
            if slot >= 0:
                events[slot] = ~n
            if ok:
                events.append(n)
            if value:
                if len(value) > 1:
                    if len({m[1] for m in value}) != len(value):
                        repeated_keys(n, op, value, ok, self.intermediate, self.internal,
                                      self.future, self.lost)
                for mop in value:
                    if type(mop) is not list or len(mop) != 3:
                        raise Fallback()
                    f, k, v = mop
                    kid = key_ids.get(k)
                    if kid is None:
                        kid = key_ids[k] = len(keys)
                        keys.append(k)
                    if f == "append":
                        if type(v) is not int or not 0 <= v <= _VALUE_MAX:
                            raise Fallback()
                        a_node(n), a_key(kid), a_val(v)
                    elif f == "r":
                        if v is None and not ok:
                            continue  # an info op's nil read is the unknown result, not []
                        if v:
                            if type(v) is not list:
                                raise Fallback()
                            last = v[-1]
                            if type(last) is not int or not 0 <= last <= _VALUE_MAX:
                                raise Fallback()
                            top = longest.get(kid)
                            if top is None:
                                longest[kid] = v
                            elif len(v) > len(top):
                                if top != v[:len(top)]:
                                    raise Fallback()   # incompatible orders
                                longest[kid] = v
                            elif v != top[:len(v)]:
                                raise Fallback()
                            r_node(n), r_key(kid), r_last(last + 1)
                        else:
                            r_node(n), r_key(kid), r_last(0)
                    else:
                        raise Fallback()
            n += 1
        self.pos = pos

    def _failed(self, op: dict, value) -> None:
        seen: dict = {}
        for mop in value or ():
            if type(mop) is not list or len(mop) != 3:
                raise Fallback()
            if mop[0] == "append":
                k, v = mop[1], mop[2]
                if type(v) is not int or not 0 <= v <= _VALUE_MAX:
                    raise Fallback()
                if k in seen:
                    self.intermediate.setdefault(k, {})[seen[k]] = op.get("index")
                seen[k] = v
                kid = self.key_ids.get(k)
                if kid is None:
                    kid = self.key_ids[k] = len(self.keys)
                    self.keys.append(k)
                self.f_key.append(kid)
                self.f_val.append(v)


def _alternate(end: int, compiled, python) -> None:
    """Items 0..end-1 taken by `compiled(i)` (takes items from i on, returns the first
    it did not take) and, where it stops, by `python(i, j)` (takes i..j-1): one item
    each time, and after 8 calls in a row in which the compiled loop took none, runs
    that double up to 1024, so a stretch of items the compiled loop leaves is not a
    call into it per item."""
    i, misses = 0, 0
    while i < end:
        stop = compiled(i)
        misses = misses + 1 if stop == i else 0
        if stop < end:
            j = min(end, stop + (1 if misses < 8 else 1 << min(misses - 7, 10)))
            python(stop, j)
            stop = j
        i = stop


def _np(a: array, dtype) -> np.ndarray:
    return np.frombuffer(a, dtype=dtype) if len(a) else np.zeros(0, dtype=dtype)


def _codes(keys: np.ndarray, coded_values: np.ndarray) -> np.ndarray:
    return (keys.astype(np.int64) << 32) | coded_values


def _member(sorted_codes: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(whether each code is in sorted_codes, its position there where it is)."""
    i = np.searchsorted(sorted_codes, codes)
    j = np.minimum(i, max(len(sorted_codes) - 1, 0))
    found = (i < len(sorted_codes)) & (sorted_codes[j] == codes) if len(sorted_codes) else \
        np.zeros(len(codes), dtype=bool)
    return found, j


class ColumnarListAppend(ListAppend):
    """ListAppend's results (graph, anomalies, explanations) from a _Builder's columns."""

    def __init__(self, builder: _Builder, source):
        b = builder
        # Invocations never completed, or failed, left their event slots empty.
        ev = _np(b.events, np.int32)
        events = array("i", ev[ev != _DROP].tobytes())
        self.txns = ColumnarTxns(source, b.ok, b.index, b.process, b.position,
                                 b.invoke_position, events)
        self.anomalies = {}
        self._key_ids = b.key_ids
        self._longest = b.longest
        self._edges_from(b)
        self._g1b = self._g1b_cases(b)
        for name, cases in (("internal", b.internal), ("future-read", b.future),
                            ("lost-update", b.lost.cases()), ("G1b", self._g1b)):
            if cases:
                self.anomalies[name] = cases

    def _edges_from(self, b: _Builder) -> None:
        n = len(b.ok)
        a_node = _np(b.a_node, np.int32)
        a_key = _np(b.a_key, np.int32)
        a_code = _codes(a_key, _np(b.a_val, np.int64) + 1)
        by_code = np.argsort(a_code, kind="stable")
        w_codes, w_nodes = a_code[by_code], a_node[by_code]
        if len(w_codes) > 1 and bool((w_codes[1:] == w_codes[:-1]).any()):
            raise Fallback()                                   # duplicate appends
        f_code = _codes(_np(b.f_key, np.int32), _np(b.f_val, np.int64) + 1)
        if len(f_code) and bool(_member(w_codes, f_code)[0].any()):
            raise Fallback()                                   # a failed append's duplicate

        # Version orders: each key's longest read, or its single append when unread.
        nkeys = len(b.keys)
        counts = np.bincount(a_key, minlength=nkeys) if len(a_key) else np.zeros(nkeys, np.int64)
        okeys, flat = [], []
        for kid, top in b.longest.items():
            if len(set(top)) != len(top):
                raise Fallback()                               # duplicate elements
            okeys.append(kid)
            flat.extend(top)
        o_val = np.array(flat) if flat else np.zeros(0, np.int64)
        if flat and (o_val.dtype.kind not in "iu" or o_val.min() < 0 or o_val.max() > _VALUE_MAX):
            raise Fallback()                                   # not all small integers
        o_val = o_val.astype(np.int64)
        o_len = np.zeros(nkeys, dtype=np.int64)
        o_len[okeys] = [len(b.longest[k]) for k in okeys]
        has_order = o_len > 0
        single = np.flatnonzero((counts == 1) & ~has_order)
        if len(single):
            first = np.zeros(nkeys, dtype=np.int64)
            first[a_key[::-1]] = np.arange(len(a_key))[::-1]   # the one append of each
            o_val = np.concatenate([o_val, _np(b.a_val, np.int64)[first[single]]])
            okeys = okeys + single.tolist()
            o_len[single] = 1
        okeys_arr = np.asarray(okeys, dtype=np.int64)
        lens = o_len[okeys_arr] if len(okeys_arr) else np.zeros(0, np.int64)
        o_start = np.zeros(nkeys, dtype=np.int64)
        o_start[okeys_arr] = np.cumsum(lens) - lens
        o_keys = np.repeat(okeys_arr, lens)
        o_pos = np.arange(len(o_val)) - np.repeat(o_start[okeys_arr], lens)
        o_code = _codes(o_keys, o_val + 1)
        if len(f_code) and bool(_member(np.sort(o_code), f_code)[0].any()):
            raise Fallback()                                   # failed element in an order
        self._single = {int(k): int(v) for k, v in
                        zip(single, _np(b.a_val, np.int64)[first[single]])} if len(single) else {}

        # Each append's predecessor in its key's order (the last element for an append
        # no read observed), as a code; INIT codes as value 0.
        o_by_code = np.argsort(o_code, kind="stable")
        found, j = _member(o_code[o_by_code], a_code)
        pos = np.where(found, o_pos[o_by_code[j]] if len(o_code) else 0, o_len[a_key])
        prev_val = np.where(pos > 0, o_val[np.maximum(o_start[a_key] + pos - 1, 0)] + 1
                            if len(o_val) else 0, 0)
        prev = _codes(a_key, prev_val)

        # ww: the writer of the predecessor.
        found, j = _member(w_codes, prev)
        ww = found & (prev_val > 0)
        ww_src, ww_dst = w_nodes[j[ww]], a_node[ww]
        keep = ww_src != ww_dst
        ww_src, ww_dst = ww_src[keep], ww_dst[keep]

        # Readers: one per (state, transaction).
        r_node = _np(b.r_node, np.int32)
        r_code = _codes(_np(b.r_key, np.int32), _np(b.r_last, np.int64))
        order = np.lexsort((r_node, r_code))
        rc, rn = r_code[order], r_node[order]
        if len(rc):
            first_of = np.r_[True, (rc[1:] != rc[:-1]) | (rn[1:] != rn[:-1])]
            rc, rn = rc[first_of], rn[first_of]

        # rw: every reader of the predecessor, to the appender.
        lo = np.searchsorted(rc, prev, "left")
        hi = np.searchsorted(rc, prev, "right")
        many = hi - lo
        total = int(many.sum())
        starts = np.repeat(lo - (np.cumsum(many) - many), many)
        rw_src = rn[starts + np.arange(total)] if total else np.zeros(0, np.int32)
        rw_dst = np.repeat(a_node, many)
        keep = rw_src != rw_dst
        rw_src, rw_dst = rw_src[keep], rw_dst[keep]

        # wr: the writer of each read's last element.
        found, j = _member(w_codes, r_code)
        wr = found & ((r_code & 0xFFFFFFFF) > 0)
        wr_src, wr_dst = w_nodes[j[wr]], r_node[wr]
        keep = wr_src != wr_dst
        wr_src, wr_dst = wr_src[keep], wr_dst[keep]

        self._w_codes, self._w_nodes, self._rc, self._rn = w_codes, w_nodes, rc, rn
        graph = DependencyGraph(n)
        for s, d, rel in ((wr_src, wr_dst, WR), (ww_src, ww_dst, WW), (rw_src, rw_dst, RW)):
            graph.src.frombytes(s.astype(np.int32).tobytes())
            graph.dst.frombytes(d.astype(np.int32).tobytes())
            graph.rel.frombytes(np.full(len(s), rel, dtype=np.uint8).tobytes())
        self.graph = graph
        self._r_code, self._r_node = r_code, r_node

    def _g1b_cases(self, b: _Builder) -> list[dict]:
        """Reads whose last element a transaction overwrote within itself: the candidates
        by code, then the reference's test on those transactions' ops."""
        codes, writers = [], []
        for k, by_value in b.intermediate.items():
            kid = self._key_ids.get(k)
            for e, writer in by_value.items():
                if kid is not None and type(e) is int and 0 <= e <= _VALUE_MAX:
                    codes.append((kid << 32) | (e + 1))
                    # A transaction's read of its own intermediate state is no G1b.
                    writers.append(writer if type(writer) is int else _NO_PROCESS)
        if not codes:
            return []
        codes_arr = np.array(codes, dtype=np.int64)
        by_code = np.argsort(codes_arr)
        found, j = _member(codes_arr[by_code], self._r_code)
        writer = np.array(writers, dtype=np.int64)[by_code][j]
        index = _np(self.txns.index, np.int64)[self._r_node]
        hit = found & ((writer != index) | (writer == _NO_PROCESS))
        txns, cases = self.txns, []
        for n in sorted(set(self._r_node[hit].tolist())):
            if not txns.ok[n]:
                continue
            for f, k, v in txns.value(n):
                if f == "r" and v:
                    writer = b.intermediate.get(k, {}).get(v[-1])
                    if writer is not None and writer != txns.index[n]:
                        cases.append({"op": txns.index[n], "mop": ["r", k, v],
                                      "writer": writer, "element": v[-1]})
        return cases

    # -- lookups for explanations (ListAppend.explain) ------------------------------------

    def _code(self, k, v) -> int | None:
        kid = self._key_ids.get(k)
        if kid is None:
            return None
        if v is INIT:
            return kid << 32
        if type(v) is not int or not 0 <= v <= _VALUE_MAX:
            return None
        return (kid << 32) | (v + 1)

    def _writer(self, k, v) -> int | None:
        code = self._code(k, v)
        if code is None or v is INIT:
            return None
        i = int(np.searchsorted(self._w_codes, code))
        if i < len(self._w_codes) and self._w_codes[i] == code:
            return int(self._w_nodes[i])
        return None

    def _readers(self, k, state) -> list[int]:
        code = self._code(k, state)
        if code is None:
            return []
        lo = int(np.searchsorted(self._rc, code, "left"))
        hi = int(np.searchsorted(self._rc, code, "right"))
        return self._rn[lo:hi].tolist()

    def _previous(self, k, v):
        kid = self._key_ids.get(k)
        if kid is None:
            return INIT
        values = self._longest.get(kid)
        if values is None:
            values = [self._single[kid]] if kid in self._single else None
        return INIT if values is None else _previous(values, None, v)


def analyse_history(history: list[dict]) -> ColumnarListAppend:
    """The columnar analysis of an in-memory history; raises Fallback (module doc)."""
    builder = _Builder()
    builder.feed(history)
    return _analysis(builder, _ListSource(history))


def _analysis(builder: _Builder, source) -> ColumnarListAppend:
    try:
        return ColumnarListAppend(builder, source)
    except _SHAPE_ERRORS:
        raise Fallback() from None


def analyse_file(path: str) -> ColumnarListAppend:
    """The columnar analysis of a history.jsonl, streamed; raises Fallback (module doc)
    and HistoryError for a file that is not JSON lines."""
    builder = _Builder()
    offsets = array("q")
    if _compiled is None:
        for starts, ops in iter_jsonl(path):
            offsets.extend(starts)
            builder.feed(ops)
    else:
        # Most lines straight from their bytes into the columns (no dict is made), the
        # others through json.loads and the compiled loop's dict path; it stops before
        # a line that is no op (blank, torn, not JSON) or an op it does not take, which
        # is parsed as iter_jsonl parses it (its errors too) and fed to the Python loop.
        def parsed(chunk, i: int, j: int) -> None:
            starts, ops = chunk.parse(i, j)
            offsets.extend(starts)
            builder.feed(ops)

        for chunk in iter_jsonl_lines(path):
            _alternate(len(chunk.lines),
                       lambda i: _compiled.feed_lines(builder, chunk.lines, i, chunk.starts, offsets,
                                                      repeated_keys, json.loads),
                       lambda i, j: parsed(chunk, i, j))
    return _analysis(builder, _FileSource(path, offsets))
