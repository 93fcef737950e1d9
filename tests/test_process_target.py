"""The process target from YAML (http-kv) and Maelstrom nodes, on real clusters in network
namespaces, under real faults; and their blocks refused before any cluster when malformed.

The systems under test are written for these tests: tests/process_nodes/http_kv_server.py
(a fixed-primary KV, with a --stale-reads bug switch) and tests/maelstrom_nodes/ (a correct
fixed-primary node, and one answering reads from a local copy).
"""
import http.client
import os
import random
import socket
import subprocess
import sys
import time
from email.utils import parsedate_to_datetime

import pytest

from core.errors import SpecError
from core.history import read_jsonl, validate
from harness.protocols import HostRemote, Node
from harness.run import run_test
from harness.spec import load_spec, resolve_spec
from nemesis.clock import ClockNemesis
from nemesis.observe import FaultWithoutEffect
from targets.process import ProcessTarget
from tests.conftest import ROOT, needs_root

HTTP_SPEC = os.path.join(ROOT, "tests", "process_nodes", "http_kv.yaml")
NODES = os.path.join(ROOT, "tests", "maelstrom_nodes")
PRIMARY = os.path.join(NODES, "primary_kv.py")
LOCAL_READ = os.path.join(NODES, "local_read_kv.py")

integration = [pytest.mark.slow, pytest.mark.integration, needs_root()]


def short(tmp_path, **kw):
    """A short run: faults every 3 s, 1 s op timeout (clients cut off come back soon)."""
    base = {"node_count": 3, "concurrency": 6, "rate": 80, "time_limit": 15, "nemesis_interval": 3,
            "recovery_time": 3, "op_timeout": 1, "store": str(tmp_path / "store"), "seed": 3}
    return {**base, **kw}


def http_spec(tmp_path, extra_args=(), **kw):
    spec = load_spec(HTTP_SPEC)
    opts = {**spec["target_opts"], "command": [*spec["target_opts"]["command"], *extra_args]}
    return short(tmp_path, target="process", workload="register", target_opts=opts, **kw)


def maelstrom_spec(tmp_path, node, **kw):
    return short(tmp_path, target="maelstrom", target_opts={"bin": node}, **kw)


def history_of(out):
    h = read_jsonl(os.path.join(out.run_dir, "history.jsonl"))
    validate(h)
    return h


def faults_done(h):
    return [op for op in h if op["process"] == "nemesis" and op["type"] == "info"
            and isinstance(op["value"], dict)]


def completed(h, kind="ok"):
    return [op for op in h if op["process"] != "nemesis" and op["type"] == kind]


# ---------------------------------------------------------------- bad blocks, no cluster

@pytest.mark.parametrize("opts, words", [
    ({}, "target_opts.command: missing"),
    ({"command": []}, "target_opts.command: must be a non-empty list"),
    ({"command": "./x '{node}"}, "target_opts.command: cannot split"),
    ({"command": ["./x", "{nod}"]}, "unknown placeholder {nod}"),
    ({"command": ["./x", "{node"]}, "target_opts.command"),
    ({"command": ["./x"], "port": 0}, "target_opts.port: must be a port number"),
    ({"command": ["./x"], "health": "ftp://x"}, "target_opts.health: must be tcp or an http:// URL"),
    ({"command": ["./x"], "persistent": "yes"}, "target_opts.persistent must be bool"),
    ({"command": ["./x"], "protocol": "grpc"}, "target_opts.protocol: must be one of http-kv, maelstrom"),
    ({"command": ["./x"], "env": ["A=1"]}, "target_opts.env must be dict"),
    ({"command": ["./x"], "comand": ["./y"]}, "target_opts.comand: unknown option"),
])
def test_a_malformed_process_block_is_one_spec_error(opts, words):
    with pytest.raises(SpecError, match=r"^spec: .*" + words.replace("{", r"\{").replace("(", r"\(")):
        resolve_spec({"target": "process", "target_opts": opts})


@pytest.mark.parametrize("opts, words", [
    ({}, "target_opts.bin: the Maelstrom node binary is required"),
    ({"bin": PRIMARY, "args": "--x"}, "target_opts.args must be list"),
    ({"bin": PRIMARY, "binary": PRIMARY}, "target_opts.binary: unknown option"),
])
def test_a_malformed_maelstrom_block_is_one_spec_error(opts, words):
    with pytest.raises(SpecError, match=words):
        resolve_spec({"target": "maelstrom", "workload": "lin-kv", "target_opts": opts})


def test_a_workload_the_protocol_cannot_carry_is_refused():
    with pytest.raises(SpecError, match="workload 'set' cannot run on a maelstrom process"):
        resolve_spec({"target": "maelstrom", "workload": "set", "target_opts": {"bin": PRIMARY}})
    with pytest.raises(SpecError, match="workload 'list-append' cannot run on a http-kv process"):
        resolve_spec({"target": "process", "workload": "list-append", "target_opts": {"command": ["x"]}})


def test_clock_faults_on_a_static_program_are_refused_before_any_cluster():
    # ldconfig is statically linked on Debian: LD_PRELOAD, hence libfaketime, never reaches it.
    with pytest.raises(SpecError, match="clock faults refused: /sbin/ldconfig is statically linked"):
        resolve_spec({"target": "maelstrom", "workload": "lin-kv", "nemesis": ["clock"],
                      "target_opts": {"bin": "/sbin/ldconfig"}})
    # A script is judged by its interpreter (python3, dynamically linked): accepted.
    resolve_spec({"target": "maelstrom", "workload": "lin-kv", "nemesis": ["clock"],
                  "target_opts": {"bin": PRIMARY}})


def test_a_relative_program_path_is_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = resolve_spec({"target": "maelstrom", "workload": "lin-kv",
                         "target_opts": {"bin": "tests/maelstrom_nodes/primary_kv.py"}})
    assert spec["target_opts"]["bin"] == PRIMARY
    assert resolve_spec(spec)["target_opts"] == spec["target_opts"]  # resolving again changes nothing


@pytest.mark.parametrize("argv", [
    ["--target", "maelstrom", "--workload", "lin-kv"],
    ["--target", "process", "--target-opt", "command=[./x, '{peer}']"],
    ["--target", "maelstrom", "--workload", "lin-kv", "--target-opt", "bin=/sbin/ldconfig",
     "--nemesis", "clock"],
])
def test_the_command_line_says_it_in_one_line_and_exits_254(tmp_path, argv):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "test", "--store", str(tmp_path),
                           *argv], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 254, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.listdir(tmp_path)  # no run dir: refused before anything was made


# ------------------------------------------------------------ real clusters, real faults



def integration_test(fn):
    for mark in integration:
        fn = mark(fn)
    return fn


@integration_test
def test_the_yaml_http_kv_server_is_valid_under_partitions_and_kills(tmp_path):
    # Seed 1's schedule holds a partition, then a kill (the kinds are fixed by the seed).
    out = run_test(http_spec(tmp_path, nemesis=["partition", "kill"], seed=1))
    h = history_of(out)
    kinds = {op["f"] for op in faults_done(h)}
    assert {"start-partition", "start-kill", "stop-kill"} <= kinds, kinds
    assert len(completed(h)) > 300, "too few ops completed to mean anything"
    assert out.valid is True, out.results["checkers"]


@integration_test
def test_the_yaml_http_kv_server_with_stale_reads_is_caught(tmp_path):
    out = run_test(http_spec(tmp_path, ["--stale-reads"], nemesis=["partition"],
                             nemesis_opts={"partition_shapes": ["isolate-one"]}))
    linear = out.results["checkers"]["linearizable"]
    assert out.valid is False and linear["valid"] is False, linear
    assert "read" in {failed["op"]["f"] for failed in linear["failures"].values()}, linear


@integration_test
def test_a_correct_maelstrom_node_is_valid_under_partitions(tmp_path):
    out = run_test(maelstrom_spec(tmp_path, PRIMARY, workload="lin-kv", nemesis=["partition"]))
    h = history_of(out)
    assert len([op for op in faults_done(h) if op["f"] == "start-partition"]) >= 2
    assert len(completed(h)) > 300, "too few ops completed to mean anything"
    assert out.valid is True, out.results["checkers"]


@integration_test
def test_a_maelstrom_node_reading_locally_is_caught_with_the_stale_read_named(tmp_path):
    out = run_test(maelstrom_spec(tmp_path, LOCAL_READ, workload="lin-kv", nemesis=["partition"],
                                  nemesis_opts={"partition_shapes": ["isolate-one"]}))
    linear = out.results["checkers"]["linearizable"]
    assert out.valid is False and linear["valid"] is False, linear
    failing = [failed["op"] for failed in linear["failures"].values()]
    assert "read" in {op["f"] for op in failing}, linear
    # The explanation names the read that no order explains.
    assert any(op["op"] in linear["explanation"] for op in failing if op["f"] == "read"), linear


@integration_test
def test_a_killed_maelstrom_node_is_restarted_and_the_run_completes(tmp_path):
    out = run_test(maelstrom_spec(tmp_path, PRIMARY, workload="lin-kv", nemesis=["kill"],
                                  nemesis_opts={"kill_targets": ["all"]}))
    h = history_of(out)
    restarted = [n for op in faults_done(h) if op["f"] == "stop-kill" for n in op["value"]["restarted"]]
    assert restarted, faults_done(h)
    # Each restart is a fresh node process that answered init again (the shim logs it).
    with open(os.path.join(out.run_dir, "nodes", "n1", "process.log")) as f:
        assert f.read().count("init_ok") >= 2
    first_restart = min(op["index"] for op in faults_done(h) if op["f"] == "stop-kill")
    after = [op for op in completed(h) if op["index"] > first_restart]
    assert len(after) > 20, "the cluster did not serve again after a restart"
    assert out.valid is True, out.results["checkers"]  # its state file survived the kills


@integration_test
def test_maelstrom_txn_list_append_is_valid_under_partitions_clocks_and_pauses(tmp_path):
    out = run_test(maelstrom_spec(tmp_path, PRIMARY, workload="txn-list-append",
                                  nemesis=["partition", "pause", "clock", "loss"],
                                  time_limit=20, seed=20))
    h = history_of(out)
    kinds = {op["f"] for op in faults_done(h)}
    # Seed 20's schedule: a partition, a clock fault, a pause (the kinds are fixed by the seed).
    assert {"start-partition", "start-clock", "start-pause"} <= kinds, kinds
    assert len(completed(h)) > 200, "too few transactions completed to mean anything"
    assert out.valid is True, out.results["checkers"]


def http_server_under_clock_faults() -> tuple[int, dict]:
    """(a free port, the resolved spec of a process target running Python's web server
    there, with clock faults asked for)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return port, resolve_spec({"target": "process", "nemesis": ["clock"], "target_opts": {
        "command": [sys.executable, "-m", "http.server", "{port}", "--bind", "{address}"],
        "port": port, "health": "http://{address}:{port}/"}})


@pytest.mark.integration
def test_a_clock_fault_moves_the_programs_clock(tmp_path):
    # Python's own web server stamps each answer's Date header with its wall clock: under
    # libfaketime that is the node's clock, moved by the clock nemesis's setter.
    port, spec = http_server_under_clock_faults()
    node = Node("n1", "127.0.0.1", HostRemote(), str(tmp_path / "n1"))
    target = ProcessTarget(spec, [node])

    def server_clock():
        conn = http.client.HTTPConnection(node.address, port, timeout=5)
        try:
            conn.request("HEAD", "/")
            return parsedate_to_datetime(conn.getresponse().getheader("Date")).timestamp()
        finally:
            conn.close()
    try:
        target.setup(node)
        target.wait_healthy([node], 20)
        assert abs(server_clock() - time.time()) < 5
        target.set_clock_offset(node, 3600)
        assert abs(server_clock() - time.time() - 3600) < 5
        target.set_clock_offset(node, 0)
        assert abs(server_clock() - time.time()) < 5
    finally:
        target.teardown(node)
    assert not target._pids(node, marked=False)


@pytest.mark.integration
def test_a_clock_bump_is_checked_against_the_clock_the_programs_library_shows(tmp_path):
    # The clock nemesis reads the node's clock through the very LD_PRELOAD and offset file
    # of the target's process; a setter that moves nothing ends the run in one line.
    class StuckClock(ProcessTarget):
        def set_clock_offset(self, node, seconds):
            pass  # "moved", says the target

    port, spec = http_server_under_clock_faults()
    for cls, moves in ((ProcessTarget, True), (StuckClock, False)):
        node = Node("n1", "127.0.0.1", HostRemote(), str(tmp_path / cls.__name__))
        target = cls(spec, [node])
        try:
            target.setup(node)
            target.wait_healthy([node], 20)
            nem = ClockNemesis([node], target, random.Random(1), {"clock_max_offset": 600})
            op = {"f": "start-clock", "value": {"mode": "bump", "targets": ["n1"]}}
            if moves:
                value = nem.invoke(op)["value"]
                assert abs(value["offsets"]["n1"]) > 1
                assert value["observed"]["n1"].startswith("clock reads "), value
                seen = float(value["observed"]["n1"].split()[2])
                assert abs(seen - value["offsets"]["n1"]) < 0.5
            else:
                with pytest.raises(FaultWithoutEffect, match=r"^clock bump had no effect on n1: "
                                                              r"clock reads [+-]0\.\d+ s off the true time"):
                    nem.invoke(op)
            nem.heal()
        finally:
            target.teardown(node)
