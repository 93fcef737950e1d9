"""What a running test is doing, on the terminal: phase, time, throughput, outcomes, faults.

The runner calls `op` for every op it records (20,000+ a second), so `op` only counts,
under a lock held for a few instructions; drawing happens elsewhere: a rich live display
refreshed 4 times a second on a terminal, or a plain log line every few seconds when the
stream is a file or a pipe (CI logs stay readable).
"""
from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from core.history import NEMESIS
from core.history.faults import ALL_FAULTS, fault_action

_PHASE_STYLE = {"setup": "cyan", "running": "green", "healing": "yellow", "checking": "magenta",
                "teardown": "cyan"}
_FAULT_NOTE_LIMIT = 60


class Progress:
    """Progress of one test. Methods may be called from any thread; `close` is idempotent.

    Phases are setup, running, healing, checking and teardown (any name is shown as is).
    `spec` supplies the name and time_limit (remaining time counts from the start of the
    running phase); `log_interval` is the seconds between plain lines off a terminal.
    """

    def __init__(self, spec: dict, stream: TextIO = sys.stderr, *, log_interval: float = 5.0):
        self.name = spec.get("name") or f"{spec.get('target', '?')}-{spec.get('workload', '?')}"
        self.time_limit = spec.get("time_limit")
        self.stream = stream
        self._lock = threading.Lock()
        self._ok = self._fail = self._info = 0
        self._faults: dict[str, str] = {}
        self._phase = "setup"
        self._started = time.monotonic()
        self._running_since: float | None = None
        self._samples: deque[tuple[float, int]] = deque(maxlen=64)
        self._closed = threading.Event()
        self._tty = _is_terminal(stream)
        self._live: Live | None = None
        self._thread: threading.Thread | None = None
        if self._tty:
            console = Console(file=stream, force_terminal=True)
            self._live = Live(get_renderable=self._renderable, console=console, refresh_per_second=4,
                              transient=False, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        else:
            self._thread = threading.Thread(target=self._log_lines, args=(log_interval,),
                                            name="tectonic-progress", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------ called by the runner

    def phase(self, name: str) -> None:
        with self._lock:
            self._phase = name
            if name == "running" and self._running_since is None:
                self._running_since = time.monotonic()
                # The first look's rate counts from here, not from a look that never was.
                self._samples.append((self._running_since, self._ok + self._fail + self._info))
        if not self._tty:
            self._write(f"{self.name}: {name} ({self._elapsed():.1f}s)")

    def op(self, op: dict) -> None:
        kind = op.get("type")
        if op.get("process") == NEMESIS:
            if kind != "invoke":
                self._nemesis(op)
            return
        if kind == "ok":
            with self._lock:
                self._ok += 1
        elif kind == "fail":
            with self._lock:
                self._fail += 1
        elif kind == "info":
            with self._lock:
                self._info += 1

    def close(self, summary: bool = True) -> None:
        """Stop the display; with summary, end with the run's counts (not after a test
        that never ran: its one error line is all the user needs)."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._live is not None:
            self._live.stop()
        if self._thread is not None:
            self._thread.join()
        if summary:
            self._write(f"{self.name}: done in {self._elapsed():.1f}s: {self._counts_line()}")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------- internals

    def _nemesis(self, op: dict) -> None:
        action = fault_action(op.get("f"))
        if action is None:
            return
        what, kind = action
        with self._lock:
            if what == "start":
                self._faults[kind] = _short(op.get("value"))
            elif kind == ALL_FAULTS:
                self._faults.clear()
            else:
                self._faults.pop(kind, None)

    def snapshot(self) -> dict[str, Any]:
        """The figures shown, as data (also what the plain lines print)."""
        now = time.monotonic()
        with self._lock:
            ok, fail, info = self._ok, self._fail, self._info
            faults = dict(self._faults)
            phase, running_since = self._phase, self._running_since
        total = ok + fail + info
        # Throughput since the newest sample at least a second old (or the oldest there
        # is), not since the start: it should show a partition's stall while it happens.
        t0, n0 = next((s for s in reversed(self._samples) if now - s[0] >= 1.0),
                      self._samples[0] if self._samples else (now, total))
        self._samples.append((now, total))
        rate = (total - n0) / (now - t0) if now > t0 else 0.0
        remaining = None
        if self.time_limit and running_since is not None:
            remaining = max(0.0, float(self.time_limit) - (now - running_since))
        return {"phase": phase, "elapsed": now - self._started, "remaining": remaining,
                "ops_per_s": rate, "ok": ok, "fail": fail, "info": info, "faults": faults}

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    def _counts_line(self) -> str:
        with self._lock:
            ok, fail, info = self._ok, self._fail, self._info
        return f"{ok + fail + info} ops (ok {ok}, fail {fail}, info {info})"

    def _renderable(self) -> Table:
        s = self.snapshot()
        grid = Table.grid(padding=(0, 2))
        grid.add_row(Text(self.name, style="bold"),
                     Text(s["phase"], style=_PHASE_STYLE.get(s["phase"], "white")),
                     f"elapsed {s['elapsed']:.0f}s" +
                     (f", {s['remaining']:.0f}s left" if s["remaining"] is not None and s["phase"] == "running" else ""),
                     f"{s['ops_per_s']:.0f} ops/s")
        grid.add_row(Text.assemble(("ok ", "green"), str(s["ok"])),
                     Text.assemble(("fail ", "red"), str(s["fail"])),
                     Text.assemble(("info ", "yellow"), str(s["info"])),
                     Text("faults: " + (", ".join(f"{k} {v}".strip() for k, v in s["faults"].items()) or "none"),
                          style="bold red" if s["faults"] else "dim"))
        return grid

    def _log_lines(self, interval: float) -> None:
        while not self._closed.wait(interval):
            s = self.snapshot()
            left = f", {s['remaining']:.0f}s left" if s["remaining"] is not None and s["phase"] == "running" else ""
            faults = ", ".join(s["faults"]) or "none"
            self._write(f"{self.name}: {s['phase']} {s['elapsed']:.0f}s{left}; {s['ops_per_s']:.0f} ops/s; "
                        f"ok {s['ok']} fail {s['fail']} info {s['info']}; faults: {faults}")

    def _write(self, line: str) -> None:
        if self._live is not None:
            self._live.console.print(line, highlight=False, markup=False)
            return
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed stream must not take the test down with it


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if value is not None else ""
    return text if len(text) <= _FAULT_NOTE_LIMIT else text[:_FAULT_NOTE_LIMIT - 1] + "…"
