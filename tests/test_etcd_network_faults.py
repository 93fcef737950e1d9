"""Real 5-node etcd clusters under the faults real networks have: latency with jitter and
reordering, duplicated packets, one-way partitions. Linearizable etcd must stay valid under
each; the nemesis ops in the history say what was done (links, parameters, copies,
grudges), so a run that never injected its fault cannot pass.
"""
import os

import pytest

from core.history import read_jsonl, validate
from harness.run import run_test

ETCD = "/usr/bin/etcd"

pytestmark = [pytest.mark.slow, pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and iptables"),
              pytest.mark.skipif(not os.access(ETCD, os.X_OK),
                                 reason=f"no {ETCD} (apt-get install -y etcd-server)")]

ONE_WAY = ["one-way-isolate", "one-way-mute", "one-way-leader", "one-way-bridge"]


def run(tmp_path, nemesis, seed, **opts):
    out = run_test({"target": "etcd", "node_count": 5, "concurrency": 10, "rate": 100,
                    "workload": "register", "nemesis": nemesis, "nemesis_opts": opts,
                    "nemesis_interval": 2.5, "recovery_time": 3, "time_limit": 15, "seed": seed,
                    "store": str(tmp_path / "store")})
    h = read_jsonl(os.path.join(out.run_dir, "history.jsonl"))
    validate(h)
    done = [op["value"] for op in h if op.get("process") == "nemesis" and op["type"] == "info"
            and op["f"] == f"start-{nemesis[0]}" and "error" not in op]
    assert done, f"no start-{nemesis[0]} took effect"
    oks = [op for op in h if op["type"] == "ok" and op["process"] != "nemesis"]
    assert len(oks) > 200, "too few ops completed to mean anything"
    return out, done


def test_etcd_is_valid_under_delay_with_jitter_and_reordering(tmp_path):
    out, done = run(tmp_path, ["delay"], 1, delay_mean=0.05, delay_jitter=0.03,
                    delay_reorder=0.1, delay_targets=["leader", "minority", "all"])
    for value in done:
        assert value["mean"] == 0.05 and value["reorder"] == 0.1
        assert value["links"] and all(peers for peers in value["links"].values()), value
    assert out.valid is True, out.results["checkers"]


def test_etcd_is_valid_under_duplicated_packets(tmp_path):
    out, done = run(tmp_path, ["duplicate"], 2, duplicate_probability=0.3)
    for value in done:
        assert value["probability"] == 0.3 and value["copies"], value
    assert out.valid is True, out.results["checkers"]


def test_etcd_is_valid_under_one_way_partitions(tmp_path):
    out, done = run(tmp_path, ["partition"], 3, partition_shapes=ONE_WAY)
    # one-way-leader finds nothing to cut while no leader is known: an empty grudge.
    cuts = [value for value in done if value["grudge"]]
    assert cuts, done
    for value in cuts:
        grudge = value["grudge"]
        assert value["shape"] in ONE_WAY
        # One way: some cut link is open in the other direction.
        assert any(a not in grudge.get(b, []) for a, peers in grudge.items() for b in peers), value
    assert out.valid is True, out.results["checkers"]
