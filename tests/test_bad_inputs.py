"""Bad input, as a user types it: every case exits 254 with exactly one line on stderr, no
traceback, no run directory, no file left behind, no namespace and no process left over.

The cases run through the real command line (`python -m harness.cli`), all of them inside
one private host (fresh network, mount and PID namespaces, harness.control.userns), so
"no namespace, no process left" is checked exactly: anything the CLI created there would be
visible, and nothing another test on this machine creates is. Each case gets a directory of
its own as working directory and TMPDIR, so a stray run dir, work dir or log is seen too.

    .venv/bin/python tests/test_bad_inputs.py       # prints the table (input, exit, lines)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GARBAGE = bytes(range(256)) * 4
SPEC = "spec.yaml"
HISTORY = "h.jsonl"
RUN = "run"  # a stored run directory, for analyze
OK_SPEC = "target: raftkv\nworkload: register\ntime_limit: 1\n"


def _ops(*ops) -> str:
    return "".join(json.dumps(op) + "\n" for op in ops)


INVOKE = {"type": "invoke", "process": 0, "f": "write", "value": 1}
OK_WRITE = {"type": "ok", "process": 0, "f": "write", "value": 1}

# (id, files to write: {name: text or bytes}, argv after `tectonic`)
CASES: list[tuple[str, dict, list[str]]] = [
    # ---- spec files
    ("spec-binary-garbage", {SPEC: GARBAGE}, ["test", "--spec", SPEC]),
    ("spec-empty", {SPEC: ""}, ["test", "--spec", SPEC]),
    ("spec-only-a-comment", {SPEC: "# nothing here\n"}, ["test", "--spec", SPEC]),
    ("spec-yaml-syntax", {SPEC: "target: [raftkv\n"}, ["test", "--spec", SPEC]),
    ("spec-a-list", {SPEC: "- target\n- raftkv\n"}, ["test", "--spec", SPEC]),
    ("spec-a-scalar", {SPEC: "hello\n"}, ["test", "--spec", SPEC]),
    ("spec-python-tag", {SPEC: "!!python/object/apply:os.system ['true']\n"}, ["test", "--spec", SPEC]),
    ("spec-unknown-field", {SPEC: "targt: raftkv\n"}, ["test", "--spec", SPEC]),
    ("spec-wrong-type", {SPEC: "node_count: five\n"}, ["test", "--spec", SPEC]),
    ("spec-nan-interval", {SPEC: OK_SPEC + "nemesis: [partition]\nnemesis_interval: .nan\n"},
     ["test", "--spec", SPEC]),
    ("spec-inf-time-limit", {SPEC: OK_SPEC.replace("time_limit: 1", "time_limit: .inf")},
     ["test", "--spec", SPEC]),
    ("spec-minus-inf-rate", {SPEC: OK_SPEC + "rate: -.inf\n"}, ["test", "--spec", SPEC]),
    ("spec-nan-op-timeout", {SPEC: OK_SPEC + "op_timeout: .nan\n"}, ["test", "--spec", SPEC]),
    ("spec-nan-in-nemesis-opts", {SPEC: OK_SPEC + "nemesis: [clock]\nnemesis_opts: {clock_max_offset: .nan}\n"},
     ["test", "--spec", SPEC]),
    ("spec-inf-in-workload-opts", {SPEC: OK_SPEC + "workload_opts: {key_life: .inf}\n"},
     ["test", "--spec", SPEC]),
    ("spec-name-dotdot", {SPEC: OK_SPEC + "name: ..\n"}, ["test", "--spec", SPEC]),
    ("spec-name-latest", {SPEC: OK_SPEC + "name: latest\n"}, ["test", "--spec", SPEC]),
    ("spec-name-slash", {SPEC: OK_SPEC + "name: a/b\n"}, ["test", "--spec", SPEC]),
    ("spec-zero-nodes", {SPEC: OK_SPEC + "node_count: 0\n"}, ["test", "--spec", SPEC]),
    ("spec-huge-concurrency", {SPEC: OK_SPEC + "concurrency: 1000000\n"}, ["test", "--spec", SPEC]),
    ("spec-unknown-fault", {SPEC: OK_SPEC + "nemesis: [meteor]\n"}, ["test", "--spec", SPEC]),
    ("spec-unknown-target", {SPEC: "target: mysql\n"}, ["test", "--spec", SPEC]),
    ("spec-unknown-backend", {SPEC: OK_SPEC + "backend: cloud\n"}, ["test", "--spec", SPEC]),
    ("spec-empty-store", {SPEC: OK_SPEC}, ["test", "--spec", SPEC, "--store", ""]),
    ("spec-seed-text", {SPEC: OK_SPEC + "seed: abc\n"}, ["test", "--spec", SPEC]),
    ("spec-negative-op-timeout", {SPEC: OK_SPEC + "op_timeout: -1\n"}, ["test", "--spec", SPEC]),
    ("spec-is-a-directory", {"specdir/keep": ""}, ["test", "--spec", "specdir"]),
    ("spec-missing", {}, ["test", "--spec", "nope.yaml"]),
    # ---- nemesis options
    ("nemesis-opt-unknown-shape", {}, ["test", "--nemesis", "partition", "--nemesis-opt",
                                       "partition_shapes=[nope]"]),
    ("nemesis-opt-shape-without-partition", {}, ["test", "--nemesis-opt", "partition_shapes=[halves]"]),
    ("nemesis-opt-shapes-not-a-list", {}, ["test", "--nemesis", "partition", "--nemesis-opt",
                                           "partition_shapes=5"]),
    ("nemesis-opt-together-zero", {}, ["test", "--nemesis", "kill", "--nemesis-opt", "together=0"]),
    ("nemesis-opt-loss-above-one", {}, ["test", "--nemesis", "loss", "--nemesis-opt", "loss_probability=2"]),
    ("nemesis-opt-loss-nan", {}, ["test", "--nemesis", "loss", "--nemesis-opt", "loss_probability=.nan"]),
    ("nemesis-opt-delay-nan", {}, ["test", "--nemesis", "delay", "--nemesis-opt", "delay_jitter=.nan"]),
    ("nemesis-opt-internal-interval", {}, ["test", "--nemesis", "kill", "--nemesis-opt", "interval=5"]),
    ("nemesis-opt-unknown-targets", {}, ["test", "--nemesis", "kill", "--nemesis-opt",
                                         "kill_targets=[everyone]"]),
    ("nemesis-opt-clock-mode-string", {}, ["test", "--nemesis", "clock", "--nemesis-opt", "clock_modes=bump"]),
    ("nemesis-opt-unknown-key", {}, ["test", "--nemesis", "kill", "--nemesis-opt", "colour=red"]),
    # ---- flags
    ("flag-nan-interval", {}, ["test", "--nemesis", "partition", "--nemesis-interval", "nan"]),
    ("flag-inf-time-limit", {}, ["test", "--time-limit", "inf"]),
    ("flag-opt-without-equals", {}, ["test", "--nemesis-opt", "together"]),
    ("flag-opt-bad-yaml", {}, ["test", "--workload-opt", "x=[unclosed"]),
    ("flag-node-count-text", {}, ["test", "--node-count", "abc"]),
    ("flag-unknown", {}, ["test", "--colour", "red"]),
    ("flag-name-dotdot", {}, ["test", "--name", ".."]),
    ("flag-zero-concurrency", {}, ["test", "--concurrency", "0"]),
    ("flag-negative-rate", {}, ["test", "--rate", "-5"]),
    ("flag-workload-opt-nan", {}, ["test", "--workload-opt", "ops_per_key=.nan"]),
    ("flag-target-opt-inf", {}, ["test", "--target-opt", "election_timeout=.inf"]),
    ("flag-store-under-a-file", {"afile": "x"}, ["test", "--store", "afile/store"]),
    # ---- backend options
    ("backend-local-takes-no-options", {}, ["test", "--backend-opt", "image=x"]),
    ("backend-ssh-without-hosts", {}, ["test", "--backend", "ssh"]),
    ("backend-ssh-bad-host", {}, ["test", "--backend", "ssh", "--nodes", "root@"]),
    ("backend-ssh-duplicate-host", {}, ["test", "--backend", "ssh", "--nodes", "h1,h1"]),
    ("backend-ssh-unknown-option", {}, ["test", "--backend", "ssh", "--nodes", "h1",
                                        "--backend-opt", "colour=red"]),
    ("backend-ssh-missing-nodes-file", {}, ["test", "--backend", "ssh", "--nodes-file", "hosts.txt"]),
    ("backend-docker-bad-network", {}, ["test", "--backend", "docker", "--backend-opt", "network=nope"]),
    ("backend-docker-unknown-option", {}, ["test", "--backend", "docker", "--backend-opt", "colour=red"]),
    # ---- histories for check
    ("check-binary-garbage", {HISTORY: GARBAGE}, ["check", HISTORY, "--model", "register"]),
    ("check-bad-json-line", {HISTORY: _ops(INVOKE) + '{"type": oops}\n' + _ops(OK_WRITE)},
     ["check", HISTORY, "--model", "register"]),
    ("check-double-invoke", {HISTORY: _ops(INVOKE, INVOKE, OK_WRITE)}, ["check", HISTORY, "--model", "register"]),
    ("check-unknown-type", {HISTORY: _ops(INVOKE, {**OK_WRITE, "type": "done"})},
     ["check", HISTORY, "--model", "register"]),
    ("check-op-not-a-map", {HISTORY: "[1, 2]\n"}, ["check", HISTORY, "--model", "register"]),
    ("check-first-process-a-list", {HISTORY: _ops({**INVOKE, "process": [0]}, {**OK_WRITE, "process": [0]})},
     ["check", HISTORY, "--workload", "list-append"]),
    ("check-edn-bad-escape", {"h.edn": '{:type :invoke, :process 0, :f :write, :value "\\u12"}\n'},
     ["check", "h.edn", "--model", "register"]),
    ("check-unknown-f-for-model", {HISTORY: _ops({**INVOKE, "f": "frob"}, {**OK_WRITE, "f": "frob"})},
     ["check", HISTORY, "--model", "register"]),
    ("check-missing-file", {}, ["check", "nope.jsonl", "--model", "register"]),
    ("check-directory-without-history", {"adir/keep": ""}, ["check", "adir", "--model", "register"]),
    ("check-unknown-model", {HISTORY: _ops(INVOKE, OK_WRITE)}, ["check", HISTORY, "--model", "nope"]),
    ("check-model-and-workload", {HISTORY: _ops(INVOKE, OK_WRITE)},
     ["check", HISTORY, "--model", "register", "--workload", "list-append"]),
    ("check-initial-not-json", {HISTORY: _ops(INVOKE, OK_WRITE)},
     ["check", HISTORY, "--model", "register", "--initial", "{nope"]),
    ("check-nan-time-limit", {HISTORY: _ops(INVOKE, OK_WRITE)},
     ["check", HISTORY, "--model", "register", "--time-limit", "nan"]),
    ("check-edn-unclosed", {"h.edn": "{:type :invoke, :process 0\n"}, ["check", "h.edn", "--model", "register"]),
    ("check-jepsen-log-garbage", {"h.log": "INFO  jepsen.util - 3\t:invoke\t:read\tnil\nnot a log line\n"},
     ["check", "h.log", "--model", "register"]),
    ("check-unknown-elle-workload", {HISTORY: _ops(INVOKE, OK_WRITE)}, ["check", HISTORY, "--workload", "bank"]),
    ("check-txn-value-not-a-list", {HISTORY: _ops({**INVOKE, "f": "txn", "value": 5},
                                                  {**OK_WRITE, "f": "txn", "value": 5})},
     ["check", HISTORY, "--workload", "list-append"]),
    ("check-bad-micro-op", {HISTORY: _ops({**INVOKE, "f": "txn", "value": [["frob", "x", 1]]},
                                          {**OK_WRITE, "f": "txn", "value": [["frob", "x", 1]]})},
     ["check", HISTORY, "--workload", "list-append"]),
    ("check-unknown-consistency-model", {HISTORY: _ops({**INVOKE, "f": "txn", "value": [["append", "x", 1]]},
                                                       {**OK_WRITE, "f": "txn", "value": [["append", "x", 1]]})},
     ["check", HISTORY, "--workload", "list-append", "--models", "nope"]),
    # ---- stored runs for analyze
    ("analyze-not-a-directory", {}, ["analyze", "nowhere"]),
    ("analyze-garbage-spec", {f"{RUN}/spec.yaml": GARBAGE, f"{RUN}/history.jsonl": _ops(INVOKE, OK_WRITE)},
     ["analyze", RUN]),
    ("analyze-no-history", {f"{RUN}/spec.yaml": OK_SPEC}, ["analyze", RUN]),
    ("analyze-double-invoke", {f"{RUN}/spec.yaml": OK_SPEC, f"{RUN}/history.jsonl": _ops(INVOKE, INVOKE)},
     ["analyze", RUN]),
    # ---- other commands
    ("serve-missing-store", {}, ["serve", "--store", "nostore", "--port", "0"]),
    ("campaign-binary-garbage", {"c.yaml": GARBAGE}, ["campaign", "c.yaml"]),
]


def _snapshot(top: str) -> dict[str, bytes | None]:
    out = {}
    for d, dirs, files in os.walk(top):
        for name in dirs:
            out[os.path.relpath(os.path.join(d, name), top)] = None
        for name in files:
            path = os.path.join(d, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, top)] = f.read()
    return out


def _namespaces() -> list[str]:
    proc = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    return sorted(proc.stdout.split())


def _processes() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


def run_case(case_id: str, files: dict, argv: list[str], top: str) -> dict:
    """Run one case in a fresh directory under top; what happened, as plain data."""
    cwd = os.path.join(top, case_id)
    os.makedirs(cwd)
    for name, content in files.items():
        path = os.path.join(cwd, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())
    before = _snapshot(cwd)
    netns, procs = _namespaces(), _processes()
    env = {**os.environ, "TMPDIR": cwd, "PYTHONPATH": ROOT}
    env.pop("TECTONIC_DEBUG", None)
    full = argv if argv[0] != "test" or "--store" in argv else [*argv, "--store", "store"]
    try:
        proc = subprocess.run([sys.executable, "-m", "harness.cli", *full], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=120)
        code, stderr = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as e:
        code, stderr = "hung", (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    after = _snapshot(cwd)
    return {"id": case_id, "argv": full, "exit": code, "stderr": stderr,
            "lines": len(stderr.splitlines()),
            "new_files": sorted(set(after) - set(before)),
            "changed_files": sorted(k for k in before if k in after and before[k] != after[k]),
            "namespaces_left": sorted(set(_namespaces()) - set(netns)),
            "processes_left": sorted(_processes() - procs - {os.getpid()})}


def run_all(out_path: str) -> None:
    with tempfile.TemporaryDirectory(prefix="tectonic-bad-inputs-") as top:
        results = [run_case(case_id, files, argv, top) for case_id, files, argv in CASES]
    with open(out_path, "w") as f:
        json.dump(results, f)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    from harness.control.userns import private_host_command, userns_problem
    problem = userns_problem()
    if problem:
        pytest.skip(f"no private host here: {problem}")
    out = tmp_path_factory.mktemp("bad-inputs") / "outcomes.json"
    proc = subprocess.run(private_host_command([sys.executable, os.path.abspath(__file__), str(out)]),
                          capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {r["id"]: r for r in json.loads(out.read_text())}


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_bad_input_is_one_line_exit_254_and_leaves_nothing(outcomes, case_id):
    r = outcomes[case_id]
    assert r["exit"] == 254, r
    assert r["lines"] == 1 and r["stderr"].startswith("tectonic: "), r["stderr"]
    assert "Traceback" not in r["stderr"] and "internal error" not in r["stderr"]
    assert r["new_files"] == [] and r["changed_files"] == [], r  # no run dir, work dir or log
    assert r["namespaces_left"] == [] and r["processes_left"] == [], r


def _table(results: list[dict]) -> str:
    rows = ["| input | exit | stderr lines | left behind | message |", "|---|---|---|---|---|"]
    for r in results:
        left = (r["new_files"] + r["changed_files"] + r["namespaces_left"]
                + [f"pid {p}" for p in r["processes_left"]])
        message = r["stderr"].strip().replace("|", "\\|")[:160]
        rows.append(f"| {r['id']}: `tectonic {' '.join(r['argv'])}` | {r['exit']} | {r['lines']} | "
                    f"{', '.join(left) or 'nothing'} | {message} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if len(sys.argv) == 2:  # inside the private host: run every case, write the outcomes
        run_all(sys.argv[1])
    else:  # for humans: the same run, printed as a table
        sys.path.insert(0, ROOT)
        from harness.control.userns import private_host_command
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "outcomes.json")
            subprocess.run(private_host_command([sys.executable, os.path.abspath(__file__), path]),
                           check=True, cwd=ROOT)
            with open(path) as f:
                print(_table(json.load(f)))
