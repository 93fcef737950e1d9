"""The interpreter: turns a generator into real calls, and every call into history.

One interpreter loop (the calling thread) asks the generator for ops and hands them to
worker threads, one per client thread plus one for the nemesis. Thread t talks to node
t mod len(nodes). Only the interpreter writes the history: an invocation when it hands
the op out, a completion when the worker's answer reaches it. The worker stamps the
completion's time (monotonic nanoseconds since the test began) when the call returns, so
times are exact; a completion may land in the file a little after an invocation that
followed it, which makes the two look concurrent: checkers that read real-time order from
positions then assume less, never more (no false anomalies). A single writer also means no
lock on the hot path.

The history is flushed before the interpreter waits and every FLUSH_EVERY_NS while ops
stream, so what a killed controller leaves on disk is all but the last milliseconds.

Timeouts: every client call gets `op_timeout`; clients must honour it, and a watchdog in
the interpreter makes sure: a call still running `grace` seconds later is recorded as
`info` (error "timeout") on the worker's behalf, the stuck thread is abandoned (its late
answer is dropped) and a fresh worker with a fresh client takes the thread over. A process
that got `info` is retired: its thread continues as process p + concurrency (Jepsen's rule),
so a process never has two ops open.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from typing import Any, Callable

from .generator import NEMESIS_THREAD, NS, PENDING, Context, lift
from core.history import HistoryWriter, retire
from nemesis.observe import FaultWithoutEffect

log = logging.getLogger("tectonic.runner")

# The history reaches the OS at least this often while ops stream in, and always before
# the interpreter waits: a SIGKILLed controller loses at most this much of its history,
# and at 20,000 ops/s one write call carries dozens of lines instead of one.
FLUSH_EVERY_NS = 10_000_000


class _Worker:
    """One thread of the test. `epoch` changes when the watchdog abandons the thread, so a
    stuck call that returns late cannot record anything."""

    def __init__(self, runner: "Runner", thread: int, epoch: int):
        self.runner, self.thread, self.epoch = runner, thread, epoch
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.client = None
        self.current: dict | None = None
        self.started_ns = 0
        self.t = threading.Thread(target=self._loop, daemon=True,
                                  name=f"worker-{'nemesis' if thread == NEMESIS_THREAD else thread}")
        self.t.start()

    def _loop(self):
        r = self.runner
        while True:
            op = self.inbox.get()
            if op is None:
                self._close_client()
                return
            if op.get("type") == "sleep":
                # Woken by a stop: an interrupted test must not wait out a fault's interval.
                r.stop.wait(float(op.get("value") or 0))
                r._post(self, None)
                continue
            completion = self._call(op)
            completion["time"] = r.now()
            r._post(self, completion)
            if r.epochs[self.thread] != self.epoch:
                self._close_client()
                return  # abandoned by the watchdog: a new worker owns this thread now

    def _call(self, op: dict) -> dict:
        r = self.runner
        is_nemesis = self.thread == NEMESIS_THREAD
        node = None
        try:
            if is_nemesis:
                out = r.nemesis.invoke(dict(op))
                node = None
            else:
                node = r.node_for(self.thread)
                if self.client is None:
                    try:
                        self.client = r.target.client(node)
                        self.client.open(node)
                    except Exception as e:  # noqa: BLE001 - nothing was sent: a certain failure
                        self.client = None
                        return self._completion(op, {"type": "fail", "error": f"client open failed: {e}"}, node)
                out = self.client.invoke(op, r.op_timeout)
        except FaultWithoutEffect as e:
            # Recorded with what it did and saw, then the test stops: an error of the run.
            out = {"type": "info", "value": e.value if e.value is not None else op.get("value"),
                   "error": f"fault without effect: {e}"}
            r.abort(f"fault without effect: {e}")
        except Exception as e:  # noqa: BLE001 - an exception's effect is unknown: info
            log.warning("%s raised on %s: %s", "nemesis" if is_nemesis else f"client {self.thread}",
                        op.get("f"), traceback.format_exc())
            out = {"type": "info", "error": f"{type(e).__name__}: {e}", "exception": type(e).__name__}
        if is_nemesis:
            out = {**out, "type": "info"}
        return self._completion(op, out, node)

    def _completion(self, op: dict, out: dict, node) -> dict:
        c = {"type": out.get("type", "info"), "process": op["process"], "f": op.get("f"),
             "value": out.get("value", op.get("value"))}
        if c["type"] not in ("ok", "fail", "info"):
            c["error"] = f"client returned type {c['type']!r}"
            c["type"] = "info"
        if node is not None:
            c["node"] = node.name
        for k in ("error", "exception"):
            if out.get(k) is not None:
                c[k] = out[k]
        if c["type"] == "info" and self.client is not None:
            self._close_client()  # a fresh connection for the thread's next process
        return c

    def _close_client(self):
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - closing a broken client may fail; it is gone either way
                pass
            self.client = None


class Runner:
    def __init__(self, *, generator, target, nemesis, nodes: list, history: HistoryWriter,
                 concurrency: int, op_timeout: float = 5.0, seed: int = 0,
                 grace: float = 2.0, on_op: Callable[[dict], None] | None = None,
                 stop: threading.Event | None = None, t0_ns: int | None = None):
        self.gen = lift(generator)
        self.target, self.nemesis, self.nodes = target, nemesis, nodes
        self.history = history
        self.concurrency = concurrency
        self.op_timeout, self.grace = op_timeout, grace
        self.seed = seed
        self.on_op = on_op or (lambda op: None)
        self.stop = stop or threading.Event()
        self.t0 = t0_ns if t0_ns is not None else time.monotonic_ns()
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.process_of: dict[int, Any] = {t: t for t in range(concurrency)}
        self.process_of[NEMESIS_THREAD] = "nemesis"
        self.threads = frozenset(self.process_of)
        self.free = set(self.threads)
        self.workers: dict[int, _Worker] = {}
        self.epochs = dict.fromkeys(self.threads, 0)
        self._flushed_ns = 0
        # Why the test was stopped as an error of the run (a fault without effect), or None.
        self.aborted: str | None = None

    def now(self) -> int:
        return time.monotonic_ns() - self.t0

    def abort(self, why: str) -> None:
        """Stop the test as an error of the run: no verdict will be given (run.py)."""
        if self.aborted is None:
            self.aborted = why
            log.error("%s; stopping the test", why)
        self.stop.set()

    def node_for(self, thread: int):
        return self.nodes[thread % len(self.nodes)]

    # -- called from worker threads
    def _post(self, worker: _Worker, completion: dict | None) -> None:
        self.events.put((worker.thread, worker.epoch, completion))

    # -- the interpreter
    def run(self) -> None:
        for t in sorted(self.threads):
            self.workers[t] = _Worker(self, t, 0)
        try:
            self._interpret()
        finally:
            self._drain()
            for w in self.workers.values():
                w.inbox.put(None)

    def _interpret(self):
        gen = self.gen
        while gen is not None and not self.stop.is_set():
            self._handle_events(block=0)
            now = self.now()
            ctx = Context(now, self.threads, frozenset(self.free), self.process_of, self.seed)
            op, nxt = gen.op(ctx)
            if op is None:
                return
            if op is PENDING:
                self._handle_events(block=self._wait_budget(0.1))
                continue
            at = op.get("time", now)
            if at > now:
                got = self._wait_event(min((at - now) / NS, self._wait_budget(1.0)))
                if got is not None:
                    self._apply(*got)
                    continue  # the context changed: ask again (the op not taken changed nothing)
                if self.now() < at:
                    continue  # woken early to run the watchdog: ask again
            gen = nxt
            if op.get("type") == "log":
                log.info("%s", op.get("value"))
                continue
            self._dispatch(op)

    def _dispatch(self, op: dict) -> None:
        thread = op.pop("thread")
        self.free.discard(thread)
        w = self.workers[thread]
        if op.get("type") != "sleep":
            op["time"] = self.now()
            self.history.append(op)
            self.on_op(op)
            w.current, w.started_ns = op, op["time"]
        w.inbox.put(dict(op))  # the worker's own copy: the recorded op stays as recorded

    def _wait_budget(self, cap: float) -> float:
        """How long the interpreter may block before the watchdog must look again."""
        deadline = None
        limit = int((self.op_timeout + self.grace) * NS)
        for t, w in self.workers.items():
            if w.current is not None and t != NEMESIS_THREAD:
                d = w.started_ns + limit
                deadline = d if deadline is None else min(deadline, d)
        if deadline is None:
            return cap
        return max(0.0, min(cap, (deadline - self.now()) / NS))

    def _flush(self, now_ns: int | None = None) -> None:
        self.history.flush()
        self._flushed_ns = self.now() if now_ns is None else now_ns

    def _wait_event(self, timeout: float):
        if timeout > 0:
            self._flush()  # everything handled so far is on disk before we block
        try:
            return self.events.get(timeout=max(timeout, 0))
        except queue.Empty:
            self._watchdog()
            return None

    def _handle_events(self, block: float) -> None:
        if block:
            got = self._wait_event(block)
            if got is not None:
                self._apply(*got)
        while True:
            try:
                got = self.events.get_nowait()
            except queue.Empty:
                now = self.now()
                if now - self._flushed_ns >= FLUSH_EVERY_NS:
                    self._flush(now)
                return
            self._apply(*got)

    def _apply(self, thread: int, epoch: int, completion: dict | None) -> None:
        if epoch != self.epochs[thread]:
            return  # a late answer from a worker the watchdog gave up on
        self.workers[thread].current = None
        self.free.add(thread)
        if completion is None:
            return
        self.history.append(completion)
        self.on_op(completion)
        if completion["type"] == "info" and thread != NEMESIS_THREAD:
            self.process_of[thread] = retire(self.process_of[thread], self.concurrency)

    def _watchdog(self):
        """Record `info` for client calls that overran their timeout and replace the worker."""
        limit = int((self.op_timeout + self.grace) * NS)
        now = self.now()
        for t, w in list(self.workers.items()):
            if t == NEMESIS_THREAD or w.current is None or now - w.started_ns < limit:
                continue
            op = w.current
            self.epochs[t] += 1
            c = {"type": "info", "process": op["process"], "f": op.get("f"), "value": op.get("value"),
                 "node": self.node_for(t).name, "time": self.now(),
                 "error": f"timeout: no answer within {self.op_timeout + self.grace:.1f}s"}
            log.warning("client %d stuck on %s for %.1fs: recording info, replacing the worker",
                        t, op.get("f"), (now - w.started_ns) / NS)
            self.workers[t] = _Worker(self, t, self.epochs[t])
            self.events.put((t, self.epochs[t], c))

    def _drain(self, nemesis_patience: float = 300.0):
        """Wait for every op in flight to complete. The watchdog bounds client ops; a nemesis
        op is waited for up to `nemesis_patience` (its commands have timeouts of their own)."""
        give_up = time.monotonic() + nemesis_patience
        while len(self.free) < len(self.threads) and time.monotonic() < give_up:
            got = self._wait_event(0.2)
            if got is not None:
                self._apply(*got)
        if len(self.free) < len(self.threads):
            log.error("nemesis op still running after %.0fs; giving up on it", nemesis_patience)
