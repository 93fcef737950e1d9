"""Clock faults: move nodes' clocks by offsets, or strobe them back and forth.

Nodes on hosts of their own carry `clock` (ssh backend: set_offset moves the host's real
clock). Otherwise only a target with the Clock capability can take them: its
set_clock_offset(node, seconds) is the offset from true time its process should see from
now on (raftkv reads it through libfaketime). The local backend shares one kernel among all
nodes, so the real clock cannot be moved per node, and etcd (Go) reads the time without
libc, out of libfaketime's reach: such targets are refused when the nemesis is built.
"""
from __future__ import annotations

import logging
import threading

from harness.protocols import Clock

from .choose import allowed_selections, choose_nodes, names
from .clock_check import observe_offset
from .firewall import on_each_node
from .observe import FaultWithoutEffect
from .options import name_list, positive_seconds
from .start_stop import StartStopFault

START, STOP = "start-clock", "stop-clock"
MODES = ("bump", "strobe")
DEFAULT_MAX_OFFSET = 30.0     # seconds, either way
DEFAULT_STROBE_PERIOD = 0.2   # seconds between flips
REFUSAL = ("clock faults need a target with the Clock capability (harness.protocols.Clock: "
           "set_clock_offset, e.g. through libfaketime as raftkv does) or hosts of their own "
           "(--backend ssh); the local backend's nodes share one kernel clock")

log = logging.getLogger("tectonic.nemesis")


class ClockNemesis(StartStopFault):
    """start-clock: value None (the rng picks a mode of opts["clock_modes"]), "bump",
    "strobe", or {"mode": ..., "targets": ...}. bump moves each chosen node's clock by a
    random delta of up to ±opts["clock_max_offset"] seconds, and the value's "observed"
    says what each node's clock then reads (clock_check.py; one that did not move ends
    the run); strobe (its first flip checked the same way) flips each chosen
    node's clock between its offset and offset + delta every opts["clock_strobe_period"]
    seconds, in a background thread, until stop. stop-clock (and heal) stop the strobe and
    reset every node to offset 0: {"reset": [nodes]}."""

    kind = "clock"

    def __init__(self, nodes: list, target, rng, opts: dict):
        self._set_offset = _clock_setter(nodes, target)
        self.nodes = list(nodes)
        self.target = target
        self.rng = rng
        self.allowed = allowed_selections("clock", opts)
        self.modes = name_list(opts.get("clock_modes", MODES), MODES, "clock_modes")
        self.max_offset = positive_seconds(opts.get("clock_max_offset", DEFAULT_MAX_OFFSET),
                                           "clock_max_offset")
        self.period = positive_seconds(opts.get("clock_strobe_period", DEFAULT_STROBE_PERIOD),
                                       "clock_strobe_period")
        self.offsets = {n.name: 0.0 for n in self.nodes}  # what each node's clock is set to
        self._strobe: threading.Thread | None = None
        self._stop_strobe = threading.Event()
        self._strobe_error: Exception | None = None

    def start(self, spec) -> dict:
        mode, targets = (spec.get("mode"), spec.get("targets")) if isinstance(spec, dict) \
            else (spec, None)
        mode = self.rng.choice(self.modes) if mode is None else mode
        if mode not in MODES:
            raise ValueError(f"unknown clock mode {mode!r}; known: {', '.join(MODES)}")
        selection, chosen = choose_nodes(targets, self.nodes, self.target, self.rng, self.allowed)
        deltas = {n.name: self._random_delta() for n in chosen}
        self._end_strobe()
        if mode == "bump":
            for node in chosen:
                self._set(node, self.offsets[node.name] + deltas[node.name])
            result = {"mode": mode, "targets": selection, "deltas": deltas,
                      "offsets": {n: self.offsets[n] for n in deltas}}
            self._check(chosen, result)
            return result
        result = {"mode": mode, "targets": selection, "deltas": deltas, "period": self.period}
        # The first flip is done and checked here; the strobe goes on from it.
        base = {n.name: self.offsets[n.name] for n in chosen}
        for node in chosen:
            self._set(node, self.offsets[node.name] + deltas[node.name])
        try:
            self._check(chosen, result)
        finally:
            self._begin_strobe(chosen, base, deltas)  # stop-clock then puts the clocks back
        return result

    def _check(self, chosen: list, result: dict) -> None:
        """Record what each moved node's clock reads (clock_check.py) under "observed";
        a clock that did not move ends the run (FaultWithoutEffect)."""
        seen = on_each_node(chosen, lambda node: observe_offset(node, self.offsets[node.name]))
        result["observed"] = {node.name: text for node, (_, text) in zip(chosen, seen)}
        failed = [(node.name, text) for node, (ok, text) in zip(chosen, seen) if ok is False]
        if failed:
            name, text = failed[0]
            raise FaultWithoutEffect(f"clock {result['mode']} had no effect on {name}: {text}", result)

    def stop(self) -> dict:
        error = self._end_strobe()
        for node in self.nodes:
            self._set(node, 0.0)
        value = {"reset": names(self.nodes)}
        if error is not None:
            value["strobe_error"] = str(error)
        return value

    def _random_delta(self) -> float:
        # Rounded to the millisecond, and never zero: a bump must move the clock.
        delta = 0.0
        while delta == 0.0:
            delta = round(self.rng.uniform(-self.max_offset, self.max_offset), 3)
        return delta

    def _set(self, node, offset: float) -> None:
        self._set_offset(node, offset)
        self.offsets[node.name] = offset

    def _begin_strobe(self, chosen: list, base: dict[str, float], deltas: dict[str, float]) -> None:
        """Flip chosen clocks between base and base + delta, starting from the shifted side
        (start() has just set it)."""
        self._stop_strobe.clear()
        self._strobe_error = None

        def flip():
            shifted = True
            try:
                while not self._stop_strobe.wait(self.period):
                    shifted = not shifted
                    for node in chosen:
                        self._set(node, base[node.name] + (deltas[node.name] if shifted else 0.0))
            except Exception as e:  # reported by the stop op; the thread must not die silently
                log.error("clock strobe failed: %s", e)
                self._strobe_error = e
            finally:
                for node in chosen:
                    try:
                        self._set(node, base[node.name])
                    except Exception as e:
                        self._strobe_error = self._strobe_error or e

        self._strobe = threading.Thread(target=flip, name="tectonic-clock-strobe", daemon=True)
        self._strobe.start()

    def _end_strobe(self) -> Exception | None:
        """Stop a running strobe (its nodes go back to their offsets before it); return the
        error it met, if any."""
        if self._strobe is None:
            return None
        self._stop_strobe.set()
        self._strobe.join(timeout=30)
        self._strobe = None
        error, self._strobe_error = self._strobe_error, None
        return error


def _clock_setter(nodes: list, target):
    """How to move a node's clock. Hosts of their own (the ssh backend gives each node a
    `clock`, moving the real clock) come first; else a target with the Clock capability
    (raftkv through libfaketime); else a refusal that says why."""
    if nodes and all(n.clock is not None for n in nodes):
        return lambda node, seconds: node.clock.set_offset(seconds)
    if isinstance(target, Clock):
        return target.set_clock_offset
    why = next((n.clock_refused for n in nodes if n.clock_refused), None)
    if why is None:
        raise ValueError(f"clock faults on {target.name}: {REFUSAL}")
    # The backend's reason, and what would do instead: the capability the target lacks.
    raise ValueError(f"clock faults on {target.name}: {why}; or a target with the Clock "
                     f"capability (set_clock_offset) takes them: {target.name} has none")


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)
