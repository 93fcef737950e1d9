"""Latency and jitter: packets a node sends to chosen peers wait in a userspace delayer.

The kernel here has no netem. Instead each delayed node runs nemesis/delayer.py inside its
namespace, bound to an NFQUEUE queue, and its OUTPUT chain sends packets for the delayed
peers to that queue with --queue-bypass: if the delayer dies, traffic flows undelayed, so a
crash never cuts a node off. Delay is one-way (on the sender's side): a round trip between a
delayed node and an undelayed one grows by one delay, between two delayed nodes by two.
Traffic with the controller (the clients) is not delayed, as with the other network faults.

Healing is exact: the chain goes first (new packets flow at once), then the delayer gets
SIGTERM and releases everything it still holds before exiting.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import sys
import time

from .choose import allowed_selections, choose_nodes, names
from .delayer import DISTRIBUTIONS
from .firewall import chain_name, checked_address, on_each_node, remove_chain, set_chain
from .rule_check import SENDER, check_rules, require_effect
from .local_only import refuse_unless_local
from .start_stop import StartStopFault

START, STOP = "start-delay", "stop-delay"
DEFAULTS = {"mean": 0.05, "jitter": 0.01, "distribution": "uniform", "reorder": 0.0}
BIND_TIMEOUT = 10.0  # seconds for a delayer to bind its queue before the fault fails
STOP_TIMEOUT = 5.0   # seconds for a delayer to release its packets and exit after SIGTERM
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DelayNemesis(StartStopFault):
    """start-delay: value None (the rng picks one of opts["delay_targets"]), a selection, a
    list of node names, or {"targets": ..., "links": {node: [peers]}, "mean": s, "jitter": s,
    "distribution": uniform|normal, "reorder": P}; missing parameters come from opts
    delay_mean (0.05 s), delay_jitter (0.01 s), delay_distribution, delay_reorder (0).
    Chosen nodes delay what they send to every other node; "links" names exact one-way
    links instead. The completed value says what was done: {"targets", "nodes", "links",
    "mean", "jitter", "distribution", "reorder", "observed": {node: what a probe over one
    of its delayed links showed (rule_check.py)}}. stop-delay: {"healed": [nodes]}."""

    kind = "delay"

    def __init__(self, nodes: list, target, rng, opts: dict, chain_kind: str = "delay"):
        refuse_unless_local(nodes, "delay", "an NFQUEUE delayer in each node's namespace")
        self.nodes = list(nodes)
        self.target = target
        self.rng = rng
        self.allowed = allowed_selections("delay", opts)
        self.defaults = checked_params({k: opts.get(f"delay_{k}", v) for k, v in DEFAULTS.items()})
        self.chain = chain_name(chain_kind, opts)  # another fault may run a delay of its own
        # Queues are per network namespace; a number of its own per test only eases reading.
        self.queue = 1 + int(hashlib.sha256(self.chain.encode()).hexdigest()[:4], 16) % 60000
        self.delayers: dict[str, int] = {}  # node name -> pid of its running delayer

    def start(self, spec) -> dict:
        params = dict(self.defaults)
        links = None
        if isinstance(spec, dict):
            params = checked_params({k: spec.get(k, v) for k, v in params.items()})
            links = spec.get("links")
            spec = spec.get("targets", spec.get("nodes"))
        if links is not None:
            selection, links = "links", self._checked_links(links)
        else:
            selection, chosen = choose_nodes(spec, self.nodes, self.target, self.rng, self.allowed)
            links = {c.name: [n.name for n in self.nodes if n is not c] for c in chosen}
        self._heal()  # a new delay replaces the old one
        seeds = {name: self.rng.randrange(2**31) for name in links}
        address = {n.name: n.address for n in self.nodes}
        delayed = [n for n in self.nodes if links.get(n.name)]
        on_each_node(delayed, lambda node: self._delay(
            node, [address[p] for p in links[node.name]], params, seeds[node.name]))
        result = {"targets": selection, "nodes": names(delayed),
                  "links": {n.name: links[n.name] for n in delayed}, **params}
        result["observed"] = check_rules(self.nodes, result["links"], self.chain, verb="delays",
                                         holder=SENDER)
        require_effect("delay", result)
        return result

    def stop(self) -> dict:
        return {"healed": self._heal()}

    def _delay(self, node, peers: list[str], params: dict, seed: int) -> None:
        pid = self._start_delayer(node, params, seed)
        self.delayers[node.name] = pid
        set_chain(node, self.chain, "OUTPUT",
                  [["-d", checked_address(p), "-j", "NFQUEUE", "--queue-num", str(self.queue),
                    "--queue-bypass"] for p in peers])

    def _start_delayer(self, node, params: dict, seed: int) -> int:
        log = _log_path(node)
        start_at = os.path.getsize(log) if os.path.exists(log) else 0
        argv = [sys.executable, "-m", "nemesis.delayer", "--queue", str(self.queue),
                "--mean", repr(params["mean"]), "--jitter", repr(params["jitter"]),
                "--distribution", params["distribution"], "--reorder", repr(params["reorder"]),
                "--seed", str(seed)]
        pid = node.remote.spawn(argv, log=log, pidfile=_pidfile(node),
                                env={"PYTHONPATH": _PROJECT_ROOT}, cwd=_PROJECT_ROOT)
        deadline = time.monotonic() + BIND_TIMEOUT
        while True:
            with open(log, "rb") as f:
                f.seek(start_at)
                said = f.read().decode(errors="replace")
            if json.dumps({"bound": self.queue}) in said:
                return pid
            if not _alive(pid) or time.monotonic() > deadline:
                node.remote.signal(pid, signal.SIGKILL)
                last = said.strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"delayer on {node.name} did not bind NFQUEUE queue "
                                   f"{self.queue}: {last[0][:300]} (log {log})")
            time.sleep(0.02)

    def _heal(self) -> list[str]:
        removed = on_each_node(self.nodes, lambda node: remove_chain(node, self.chain))
        healed = {node.name for node, had_rules in zip(self.nodes, removed) if had_rules}
        for node in self.nodes:
            if self._stop_delayer(node):
                healed.add(node.name)
        return [n.name for n in self.nodes if n.name in healed]

    def _stop_delayer(self, node) -> bool:
        """Stop node's delayer, ours or one a crashed run left (found by its pidfile)."""
        pid = self.delayers.pop(node.name, None) or _pid_from_file(node)
        if pid is None or not _is_delayer(pid):
            return False
        node.remote.signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(pid):
            if time.monotonic() > deadline:
                node.remote.signal(pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        return True

    def _checked_links(self, links) -> dict[str, list[str]]:
        known = [n.name for n in self.nodes]
        if not isinstance(links, dict) or not all(isinstance(v, list) for v in links.values()):
            raise ValueError(f"delay links must map a node to the peers it delays, got {links!r}")
        unknown = sorted({x for k, v in links.items() for x in [k, *v]} - set(known))
        if unknown:
            raise ValueError(f"delay links name unknown nodes {unknown}; the cluster has {known}")
        return {k: sorted(set(v) - {k}, key=known.index) for k, v in links.items() if v}


def checked_params(params: dict) -> dict:
    """The delay parameters as the delayer takes them, or ValueError naming the bad one."""
    for key in ("mean", "jitter"):
        v = params[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or not 0 <= v <= 60:
            raise ValueError(f"delay {key} must be a number of seconds from 0 to 60, got {v!r}")
        params[key] = float(v)
    if params["distribution"] not in DISTRIBUTIONS:
        raise ValueError(f"delay distribution must be one of {', '.join(DISTRIBUTIONS)}, "
                         f"got {params['distribution']!r}")
    p = params["reorder"]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"delay reorder must be a probability from 0 to 1, got {p!r}")
    params["reorder"] = float(p)
    return params


def _log_path(node) -> str:
    return os.path.join(node.dir, "delayer.log")


def _pidfile(node) -> str:
    return os.path.join(node.dir, "delayer.pid")


def _pid_from_file(node) -> int | None:
    try:
        with open(_pidfile(node)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """True while pid runs (a zombie counts as gone: the spawner's reaper collects it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return ") Z " not in f.read()
    except OSError:
        return False


def _is_delayer(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"nemesis.delayer" in f.read()
    except OSError:
        return False
