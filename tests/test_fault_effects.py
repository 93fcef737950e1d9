"""Every fault checks its effect: a kill or a pause that left the target running is an
error of the run (one line, exit 254, the history kept, no verdict), never a silent VALID.

The unit tests drive the kill and pause nemeses over a fake node whose "kernel" is a dict
of processes; the integration tests run real 3-node tests through the command line on a
target (tests/memory_kv.py) whose kill looks for the wrong process, as a new target's
author might write it.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from harness.protocols import ExecResult, Kill, Node, Pause
from nemesis.kill import KillNemesis
from nemesis.node_fault import ALREADY_DOWN
from nemesis.observe import FaultWithoutEffect, parse_stats
from nemesis.pause import PauseNemesis
from tests.conftest import ROOT, needs_root


class ProcRemote:
    """A node's Remote over a fake process table: pid -> [state, session]."""

    def __init__(self):
        self.procs: dict[int, list] = {}
        self.spawned: list = []

    def start(self, pid, argv=("server",)):
        self.spawned.append((pid, list(argv)))
        self.procs[pid] = ["S", pid]

    def exec(self, argv, **kw):
        lines = [f"{pid} (x y) {state} 1 {sid} {sid} 0" for pid, (state, sid) in self.procs.items()]
        return ExecResult(argv, 0, "\n".join(lines) + "\n", "")


class SignalTarget(Kill, Pause):
    """Kills and pauses by changing the fake process table; `broken` does nothing."""
    name = "signals"

    def __init__(self, broken=False):
        self.broken = broken

    def kill(self, node):
        if not self.broken:
            node.remote.procs.clear()

    def pause(self, node):
        if not self.broken:
            for proc in node.remote.procs.values():
                proc[0] = "T"

    def resume(self, node):
        for proc in node.remote.procs.values():
            proc[0] = "S"

    def start(self, node):
        if not node.remote.procs:
            node.remote.start(max(p for p, _ in node.remote.spawned) + 1)


def nodes_running(count=3):
    nodes = []
    for i in range(1, count + 1):
        remote = ProcRemote()
        remote.start(100 * i)
        nodes.append(Node(f"n{i}", f"10.0.0.{i}", remote, "/nonexistent"))
    return nodes


def test_stat_lines_are_read_after_the_last_parenthesis():
    text = "7 (a) b) S 1 7 7 0\n9 (sh) Z 7 7 7 0\nbad line\n"
    assert parse_stats(text) == {7: ("S", 7), 9: ("Z", 7)}


def test_a_kill_that_took_records_what_was_seen():
    nodes = nodes_running()
    nem = KillNemesis(nodes, SignalTarget(), random.Random(1), {})
    value = nem.invoke({"f": "start-kill", "value": ["n2"]})["value"]
    assert value == {"targets": "nodes", "killed": ["n2"], "observed": {"n2": "gone (pid 200 (S))"}}
    # Killed again before the restart: already down, which is no error.
    value = nem.invoke({"f": "start-kill", "value": "all"})["value"]
    assert value["observed"]["n2"] == ALREADY_DOWN
    assert nem.invoke({"f": "stop-kill"})["value"] == {"restarted": ["n2", "n1", "n3"]}


@pytest.mark.parametrize("kind, cls", [("kill", KillNemesis), ("pause", PauseNemesis)])
def test_a_fault_that_changed_nothing_raises_naming_the_fault_and_node(kind, cls, monkeypatch):
    monkeypatch.setattr("nemesis.node_fault.SETTLE", 0.05)
    nodes = nodes_running()
    nem = cls(nodes, SignalTarget(broken=True), random.Random(1), {})
    with pytest.raises(FaultWithoutEffect) as e:
        nem.invoke({"f": f"start-{kind}", "value": ["n1", "n3"]})
    assert str(e.value) == f"{kind} of n1 had no effect: pid 100 (S) still runs"
    # What the op did and saw is kept for the history; heal still undoes it.
    assert e.value.value["observed"] == {"n1": f"no effect: {e.value}"}
    nem.heal()
    assert nem.affected == []


def test_a_kill_that_finds_nothing_on_a_node_believed_up_is_an_error():
    nodes = nodes_running()
    nodes[0].remote.procs.clear()  # died on its own; no fault holds it down
    nem = KillNemesis(nodes, SignalTarget(), random.Random(1), {})
    with pytest.raises(FaultWithoutEffect, match="^kill of n1 found no process of the target "
                                                 "there, though no fault holds it down$"):
        nem.invoke({"f": "start-kill", "value": ["n1"]})
    # ...unless another fault holds it down (the disk fault crashed it, say).
    nem = KillNemesis(nodes, SignalTarget(), random.Random(1), {"held_down": lambda n: n.name == "n1"})
    assert nem.invoke({"f": "start-kill", "value": ["n1"]})["value"]["observed"] == {"n1": ALREADY_DOWN}


def test_a_pause_shows_every_process_stopped():
    nodes = nodes_running()
    nem = PauseNemesis(nodes, SignalTarget(), random.Random(1), {})
    assert nem.invoke({"f": "start-pause", "value": ["n3"]})["value"]["observed"] == \
        {"n3": "stopped (pid 300)"}


def test_our_own_helpers_on_a_node_are_not_the_target():
    node = nodes_running(1)[0]
    node.remote.start(7, [sys.executable, "-m", "nemesis.delayer", "--queue", "1"])
    nem = KillNemesis([node], SignalTarget(), random.Random(1), {})
    target = SignalTarget()
    target.kill = lambda n: n.remote.procs.pop(100)  # kills the server, not the delayer
    nem.target = target
    assert nem.invoke({"f": "start-kill", "value": "all"})["value"]["observed"] == \
        {"n1": "gone (pid 100 (S))"}


# ---------------------------------------------------------------- whole tests, for real

def tectonic(*args):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@needs_root()
@pytest.mark.integration
@pytest.mark.parametrize("kind", ["kill", "pause"])
def test_a_target_whose_fault_has_no_effect_fails_the_run_with_one_line(tmp_path, kind):
    store = tmp_path / "store"
    out = tectonic("test", "--target", "tests.memory_kv:MarklessMemoryKV", "--workload", "register",
                   "--node-count", "3", "--concurrency", "3", "--rate", "50", "--time-limit", "20",
                   "--nemesis", kind, "--nemesis-interval", "1", "--recovery-time", "0",
                   "--nemesis-opt", f"{kind}_targets=[all]", "--target-opt", "port=7311",
                   "--store", str(store))
    assert out.returncode == 254, out.stdout + out.stderr
    # Above it the progress lines; the error is one line, the last.
    errors = [line for line in out.stderr.splitlines() if line.startswith("tectonic: ")]
    assert len(errors) == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines()[-1] == errors[0]
    assert errors[0].startswith(f"tectonic: fault without effect: {kind} of n1 had no effect: "
                                f"pid "), errors[0]
    run_dir = os.path.realpath(store / "latest")
    with open(os.path.join(run_dir, "results.json")) as f:
        results = json.load(f)
    assert results["valid"] == "unknown" and results["checkers"] == {}
    assert results["aborted"].startswith(f"fault without effect: {kind} of n1")
    with open(os.path.join(run_dir, "history.jsonl")) as f:
        ops = [json.loads(line) for line in f]
    start = [op for op in ops if op["f"] == f"start-{kind}" and op["type"] == "info"]
    assert len(start) == 1, "the run stops at the first fault without effect"
    assert start[0]["value"]["observed"]["n1"].startswith("no effect:")
    assert sum(op["type"] == "ok" for op in ops) > 10  # what was recorded is kept


def run_memory_kv(store, *flags):
    return tectonic("test", "--target", "tests.memory_kv:MemoryKV", "--workload", "register",
                    "--node-count", "3", "--concurrency", "3", "--rate", "300",
                    "--nemesis", "kill", "--nemesis-interval", "1", "--recovery-time", "0.5",
                    "--op-timeout", "1", "--target-opt", "port=7312", "--store", str(store),
                    *flags)


@needs_root()
@pytest.mark.integration
def test_register_catches_a_kill_of_every_node_of_a_store_without_persistence(tmp_path):
    store = tmp_path / "store"
    # Kill-all takes the primary with it, and with it every value: a key written before
    # the kill and read after the restart shows it, if a read comes before the first new
    # write (about half the time): seven restarts make a miss about 1 in 100. At this rate
    # a key of 200 ops (the old rule) is used up in the 1 s outage, and the same run was
    # valid; keys that live three intervals span a kill and its restart.
    # Whether a read beats the first new write is a race, so a miss gets a second and a
    # third seed (CI saw one valid run of seed 5 on a loaded machine).
    for seed in ("5", "6", "7"):
        out = run_memory_kv(store, "--time-limit", "14", "--nemesis-opt", "kill_targets=[all]",
                            "--seed", seed)
        if out.returncode == 1:
            break
    assert out.returncode == 1, out.stdout + out.stderr
    run_dir = os.path.realpath(store / "latest")
    with open(os.path.join(run_dir, "results.json")) as f:
        results = json.load(f)
    assert results["valid"] is False and results["checkers"]["linearizable"]["valid"] is False
    with open(os.path.join(run_dir, "history.jsonl")) as f:
        ops = [json.loads(line) for line in f]
    kills = [op for op in ops if op["f"] == "start-kill" and op["type"] == "info"]
    assert kills and all(v.startswith("gone (pid ") for v in kills[0]["value"]["observed"].values())

