"""End to end on real clusters: raftkv in network namespaces, real faults, real checkers.

Without bugs raftkv must be valid under every fault; with each bug switch, the recipe the
README lists must find it. These are the tests a skeptical user would ask for first.
"""
import os

import pytest

from harness.campaign import load_campaign
from core.history import read_jsonl, validate
from harness.run import run_test
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and iptables")]

ALL_FAULTS = ["partition", "kill", "pause", "clock", "loss"]


def spec(tmp_path, **kw):
    base = {"target": "raftkv", "node_count": 5, "concurrency": 10, "rate": 150,
            "nemesis_interval": 3, "recovery_time": 5, "store": str(tmp_path / "store")}
    return {**base, **kw}


@pytest.mark.parametrize("workload", ["register", "set", "list-append"])
def test_raftkv_is_valid_under_every_fault(tmp_path, workload):
    out = run_test(spec(tmp_path, workload=workload, nemesis=ALL_FAULTS, time_limit=25, seed=11))
    h = read_jsonl(os.path.join(out.run_dir, "history.jsonl"))
    validate(h)
    faults = {op["f"] for op in h if op.get("process") == "nemesis" and op["type"] == "info"}
    assert len(faults - {"heal"}) >= 3, faults  # the schedule really injected faults
    # Each kill, pause, partition and clock fault checked its effect on every node it hit.
    checked = [op for op in h if op.get("process") == "nemesis" and op["type"] == "info"
               and op["f"] in ("start-kill", "start-pause", "start-partition", "start-clock")
               and (op["f"] != "start-partition" or op["value"]["grudge"])]
    assert len({op["f"] for op in checked}) >= 2, faults
    # (a fault aimed at "the leader" while there is none, all killed, say, hits no node
    # and has nothing to observe: seen on a loaded CI machine)
    assert all("observed" in op["value"] for op in checked), checked
    seen = [what for op in checked for what in op["value"]["observed"].values()]
    assert len(seen) >= 2, checked
    assert not [w for w in seen if w.startswith(("no effect", "not checked"))], seen
    assert out.valid is True, out.results


# The README's recipes are the bug entries of the regression campaign: one source of truth.
BUG_RUNS = [run for run in load_campaign(os.path.join(ROOT, "campaigns", "raftkv-bugs.yaml")).runs
            if run.spec.get("bugs")]


# The staged Figure 8 needs every one of its elections to go its way; a seed whose staging
# gave up early gets a successor (it found the bug in each seed tried while it was built).
# lease-reads needs a clock bump that sets the cut-off leader's clock back: seed 3's draws
# bump it forward every period since the schedule gained fault kinds (seeds 4-6 found it).
# early-ack needs a write acknowledged by the cut-off leader to be read back through the new
# one before its key moves on: a race the seed does not fix (a loaded machine missed it once).
SEEDS_TO_TRY = {"figure8": 3, "clock": 3, "early-ack": 2}


# stale-reads' recipe is proved by the report test below, which also reads what it says.
OTHER_BUG_RUNS = [run for run in BUG_RUNS if run.spec["bugs"] != ["stale-reads"]]


@pytest.mark.parametrize("run", OTHER_BUG_RUNS, ids=[
    f"{run.spec['bugs'][0]}-{'+'.join(run.spec['nemesis'])}" for run in OTHER_BUG_RUNS])
def test_each_bug_recipe_is_caught(tmp_path, run):
    assert run.expect == "invalid"
    misses = []
    for attempt in range(max(SEEDS_TO_TRY.get(k, 1) for k in run.spec["nemesis"] + run.spec["bugs"])):
        seed = run.spec["seed"] + attempt
        out = run_test({**run.spec, "seed": seed, "store": str(tmp_path / f"store{attempt}")})
        if out.valid is False:
            return
        misses.append(f"seed {seed}: {out.valid}, {out.results['checkers']}; "
                      f"staging: {staging_outcomes(out.run_dir)}")
    pytest.fail(f"{run.label} not caught:\n" + "\n".join(misses))


def staging_outcomes(run_dir) -> list:
    """How each staged Figure 8 ended (empty for other faults): why a seed missed."""
    h = read_jsonl(os.path.join(run_dir, "history.jsonl"))
    return [op.get("value", {}).get("outcome") or op.get("error") for op in h
            if op.get("process") == "nemesis" and op["f"] == "stop-figure8" and op["type"] == "info"]


NEW_FAULTS = ["delay", "duplicate", "partition", "disk"]


def test_raftkv_is_valid_under_every_new_fault_held_together(tmp_path):
    """Latency with reordering, duplicated packets, one-way partitions, disk crashes and
    membership changes, all five held at once in every period."""
    faults = NEW_FAULTS + ["membership"]
    out = run_test(spec(tmp_path, workload="register", node_count=5, nemesis=faults,
                        time_limit=24, seed=5,
                        nemesis_opts={"together": 5, "delay_mean": 0.03, "delay_jitter": 0.02,
                                      "delay_reorder": 0.1, "duplicate_probability": 0.2,
                                      "partition_shapes": ["one-way-isolate", "one-way-mute",
                                                           "one-way-leader", "one-way-bridge"],
                                      "disk_targets": ["one", "leader"]}))
    h = read_jsonl(os.path.join(out.run_dir, "history.jsonl"))
    validate(h)
    started = {op["f"] for op in h if op.get("process") == "nemesis" and op["type"] == "info"
               and "error" not in op and op["f"].startswith("start-")}
    assert started == {f"start-{k}" for k in faults}, started
    assert out.valid is True, out.results


def test_a_stale_read_report_names_the_node_the_values_and_the_partition(tmp_path):
    """raftkv --bug stale-reads under partitions: the report says "stale read", which node
    answered, what it returned, which value was current and that the node was partitioned,
    in results.json, in the terminal explanation and in the key's page."""
    [run] = [r for r in BUG_RUNS if r.spec["bugs"] == ["stale-reads"]]
    named = []
    for seed in (1, 2, 3):
        out = run_test({**run.spec, "seed": seed, "store": str(tmp_path / f"store-{seed}")})
        linear = out.results["checkers"]["linearizable"]
        assert linear["valid"] is False, f"seed {seed}: stale-reads not caught"
        named = [f for f in linear["failures"].values()
                 if (f.get("anomaly") or {}).get("kind") == "stale read"
                 and any(x["kind"] == "partition" and x["cut_off_from"]
                         for x in f["anomaly"]["faults"])]
        if named:
            break
    assert named, "no failing key was named a stale read on a partitioned node in 3 seeds"
    failure = named[0]
    anomaly = failure["anomaly"]
    from checkers.linearizable.models import show
    node, stale, current = anomaly["node"], show(anomaly["returned"]), show(anomaly["current"])
    assert node.startswith("n") and stale != current
    page = open(failure["html"], encoding="utf-8").read()
    for text in (page, linear["explanation"]):
        assert f"stale read: read {stale}" in text
        assert f"on {node} at" in text and f"returned {stale}, but {current} had been written" in text
        assert f"{node} cut off from" in text
