"""The command line as a user meets it: exit codes and one-line errors, never a traceback."""
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def tectonic(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["test", "--node-count", "many"], "'many' is not a valid integer"),
    (["test", "--nemesis", "partition,meteor"], "field 'nemesis': unknown fault 'meteor'"),
    (["test", "--target", "mysql"], "field 'target': unknown target 'mysql' (known: "),
    (["test", "--concurrency", "0"], "field 'concurrency' must be at least 1"),
    (["test", "--workload", "lock", "--target", "raftkv"],
     "workload lock needs a target whose client does lock; target raftkv offers"),
    (["test", "--target-opt", "heartbeat=0.1"], "target_opts.heartbeat: unknown option (known: port,"),
    (["test", "--target-opt", "port=many"], "target_opts.port must be int"),
    (["test", "--target-opt", "election_timeout_min=2"], "election_timeout_min (2.0) is above"),
    (["test", "--target", "etcd", "--bug", "stale-reads"], "target etcd has no bug switches"),
    (["test", "--target", "etcd", "--nemesis", "clock"], "clock faults on etcd need a target with the Clock capability (harness.protocols.Clock: set_clock_offset"),
    (["test", "--target", "no_such_module:Thing"], "cannot import 'no_such_module'"),
    (["test", "--target", "harness.protocols:Nothing"], "module 'harness.protocols' has no 'Nothing'"),
    (["test", "--target", "harness.protocols:Node"], "is not a Target: subclass harness.protocols.Target"),
    (["test", "--target", "harness.protocols:Target"], "does not implement client, setup, teardown"),
    (["test", "--workload", "harness.protocols:Option"], "is not a function make_workload(spec)"),
    (["test", "--frobnicate"], "No such option '--frobnicate'"),
    (["analyze", "/no/such/run"], "/no/such/run: not a directory"),
    (["check", "/no/such/file", "--model", "cas-register"], "/no/such/file: no such file"),
    (["check", "README.md"], "give exactly one of --model"),
])
def test_bad_input_is_one_line_and_exit_254(args, message):
    r = tectonic(*args)
    assert r.returncode == 254, r.stderr
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_bad_spec_file_names_file_and_line(tmp_path):
    bad = tmp_path / "spec.yaml"
    bad.write_text("target: raftkv\nworkload: register\nnode_count: [3\n")
    r = tectonic("test", "--spec", str(bad))
    assert r.returncode == 254
    assert f"{bad}:4: not valid YAML" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad.write_text("target: raftkv\ntime_limit: soon\n")
    r = tectonic("test", "--spec", str(bad))
    assert r.returncode == 254 and "field 'time_limit' must be float, got 'soon'" in r.stderr


def test_malformed_history_names_the_line(tmp_path):
    h = tmp_path / "history.jsonl"
    h.write_text(json.dumps({"type": "invoke", "process": 0, "f": "read", "value": None}) + "\n"
                 + json.dumps({"type": "ok", "process": 0, "f": "read", "value": 1}) + "\n"
                 + json.dumps({"type": "okay", "process": 0, "f": "read", "value": 1}) + "\n")
    r = tectonic("check", str(h), "--model", "register")
    assert r.returncode == 254 and f"{h}:3: unknown op type 'okay'" in r.stderr


def test_flags_override_a_spec_file_and_the_derived_name_follows(tmp_path):
    from harness.spec import read_spec_file, resolve_spec
    path = tmp_path / "s.yaml"
    path.write_text("nemesis: [kill]\nnemesis_opts: {kill_targets: [majority]}\n")
    spec = resolve_spec({**read_spec_file(str(path)), "workload": "set"})
    assert spec["name"] == "raftkv-set"
    assert spec["nemesis_opts"] == {"kill_targets": ["majority"]}


def test_a_spec_file_that_is_not_a_mapping_is_named(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("- just\n- a list\n")
    r = subprocess.run([sys.executable, "-m", "harness.cli", "test", "--spec", str(path)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 254
    assert r.stderr.strip() == f"tectonic: {path}: a spec is a mapping of fields, got list"


def test_option_flags_are_yaml_values():
    from harness.cli import _key_values
    assert _key_values("nemesis_opts", ("together=2", "kill_targets=[majority, all]")) == \
        {"together": 2, "kill_targets": ["majority", "all"]}


@pytest.mark.parametrize("flag", ["--nemesis-opt=together", "--workload-opt==3", "--target-opt=x=[1,"])
def test_malformed_option_flags_are_one_line(flag):
    r = subprocess.run([sys.executable, "-m", "harness.cli", "test", flag],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 254
    assert len(r.stderr.strip().splitlines()) == 1
    assert "KEY=VALUE" in r.stderr or "YAML" in r.stderr
