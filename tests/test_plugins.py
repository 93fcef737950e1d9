"""Targets from outside the project: a throwaway package, written to a temp dir and
pip-installed into this environment for the test (uninstalled afterwards), plugs a target
in through its entry point and through the module:Class form; a real 3-node test runs on
it, valid; broken plugins get one line and exit 254 before any cluster is made.

The package's target is MINIMAL_TARGET below, the README's "A Python plugin" example: a
key-value server on each node, every client talking to the first node (a single primary,
so every history is linearizable).
"""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, needs_root

PACKAGE = "tectonic_demo_plugin"
DISTRIBUTION = "tectonic-demo-plugin"

SERVER = '''\
"""A key-value server: one JSON request per line, one JSON answer per line."""
import json, socketserver, sys

data = {}


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            op = json.loads(line)
            key, value = op["value"]
            if op["f"] == "write":
                data[key] = value
            elif op["f"] == "cas":
                if data.get(key) != value[0]:
                    self.wfile.write(b'{"type": "fail"}\\n')
                    continue
                data[key] = value[1]
            else:
                value = data.get(key)
            self.wfile.write(json.dumps({"type": "ok", "value": [key, value]}).encode() + b"\\n")


socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
'''

MINIMAL_TARGET = '''\
import json, os, signal, socket, time
from harness.protocols import HealthCheck, NodeNeeds, Option, Target


class KVTarget(Target, HealthCheck):
    name = "demo-kv"
    options = (Option("port", int, 7100, "the port every node listens on"),)
    features = frozenset({"register"})
    needs = NodeNeeds(python_modules=("tectonic_demo_plugin.server",))

    def setup(self, node):
        node.remote.spawn([node.python, "-m", "tectonic_demo_plugin.server", node.address,
                           str(self.opts["port"])], log=f"{node.dir}/kv.log",
                          pidfile=f"{node.dir}/kv.pid",
                          env={"PYTHONPATH": os.pathsep.join(node.pythonpath)})

    def wait_healthy(self, nodes, timeout):
        deadline = time.monotonic() + timeout
        for node in nodes:
            while True:
                try:
                    socket.create_connection((node.address, self.opts["port"]), 1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def teardown(self, node):
        pid = node.remote.exec(["cat", f"{node.dir}/kv.pid"], check=False).stdout.strip()
        if pid.isdigit():
            node.remote.signal(int(pid), signal.SIGKILL)

    def client(self, node):
        return KVClient(self.nodes[0].address, self.opts["port"])  # one primary


class KVClient:
    def __init__(self, address, port):
        self.address, self.port = address, port

    def open(self, node):
        self.sock = socket.create_connection((self.address, self.port), 2)
        self.lines = self.sock.makefile("rb")

    def invoke(self, op, timeout):
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(json.dumps(op).encode() + b"\\n")
            return json.loads(self.lines.readline())
        except OSError as e:  # sent, maybe applied: uncertain
            return {"type": "info", "error": str(e)}

    def close(self):
        self.sock.close()
'''

BROKEN = '''\
from harness.protocols import Kill, Target


class NoClient(Target):
    def setup(self, node): pass
    def teardown(self, node): pass


class KillWithoutStart(Target, Kill):
    def setup(self, node): pass
    def teardown(self, node): pass
    def client(self, node): pass
    def kill(self, node): pass
'''

PYPROJECT = f'''\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{DISTRIBUTION}"
version = "0.1"

[project.entry-points."tectonic.targets"]
demo = "{PACKAGE}.target:KVTarget"
demo-missing = "{PACKAGE}.nowhere:Thing"

[tool.setuptools]
packages = ["{PACKAGE}"]
'''


def pip(*args):
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def demo_plugin(tmp_path_factory):
    """The package, installed from a directory outside the repository; removed after."""
    where = tmp_path_factory.mktemp("outside")
    assert not str(where).startswith(str(ROOT))
    package = where / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "server.py").write_text(SERVER)
    (package / "target.py").write_text(MINIMAL_TARGET)
    (package / "broken.py").write_text(BROKEN)
    (where / "pyproject.toml").write_text(PYPROJECT)
    installed = pip("install", "--no-index", "--no-build-isolation", "--no-deps", str(where))
    assert installed.returncode == 0, installed.stderr
    try:
        yield where
    finally:
        removed = pip("uninstall", "-y", DISTRIBUTION)
        assert removed.returncode == 0, removed.stderr


def tectonic(*args, cwd):
    # From a directory of the test's: the package is found installed, not on the cwd.
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_tectonic_targets_lists_built_in_and_plugged_in_targets(demo_plugin, tmp_path):
    out = tectonic("targets", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("raftkv ") for line in lines)
    demo = next(line for line in lines if line.startswith("demo "))
    assert "demo-kv" in demo and "health check" in demo and "tectonic_demo_plugin.target:KVTarget" in demo
    assert "port=" not in out.stdout  # one line each; options with the target's name:
    out = tectonic("targets", "demo", cwd=tmp_path)
    assert out.stdout.splitlines()[1:] == ["  port=7100 (int): the port every node listens on"]
    missing = next(line for line in lines if line.startswith("demo-missing "))
    assert "cannot import 'tectonic_demo_plugin.nowhere'" in missing


@pytest.mark.parametrize("target, message", [
    ("demo-missing", "cannot import 'tectonic_demo_plugin.nowhere'"),
    (f"{PACKAGE}.broken:NoClient", "does not implement client (required by Target)"),
    (f"{PACKAGE}.broken:KillWithoutStart", "does not implement start (required by Kill)"),
    (f"{PACKAGE}.broken:Absent", f"module '{PACKAGE}.broken' has no 'Absent'"),
    ("demo --target-opt prot=1", "target_opts.prot: unknown option (known: port)"),
    ("demo --nemesis kill", "kill faults need a target with the Kill capability; demo has none"),
    ("demo --workload set", "workload set needs a target whose client does set; target demo offers register"),
])
def test_a_broken_plugin_is_one_line_and_exit_254_before_any_cluster(demo_plugin, tmp_path,
                                                                      target, message):
    name, *flags = target.split()
    out = tectonic("test", "--target", name, *flags, "--store", str(tmp_path / "store"), cwd=tmp_path)
    assert out.returncode == 254, out.stderr
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "store").exists()  # refused before any run (or cluster) was made


@needs_root()
@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("target", ["demo", f"{PACKAGE}.target:KVTarget"])
def test_a_plugged_in_target_runs_a_real_3_node_test_valid(demo_plugin, tmp_path, target):
    store = tmp_path / "store"
    out = tectonic("test", "--target", target, "--workload", "register", "--node-count", "3",
                   "--concurrency", "3", "--rate", "50", "--time-limit", "4",
                   "--nemesis", "partition", "--nemesis-interval", "1", "--recovery-time", "1",
                   "--target-opt", "port=7101", "--store", str(store), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    run_dir = os.path.realpath(store / "latest")
    assert os.path.basename(os.path.dirname(run_dir)) == "demo-kv-register"
    with open(os.path.join(run_dir, "results.json")) as f:
        results = json.load(f)
    assert results["valid"] is True and results["checkers"]["linearizable"]["valid"] is True
    with open(os.path.join(run_dir, "history.jsonl")) as f:
        ops = [json.loads(line) for line in f]
    oks = [op for op in ops if op["type"] == "ok" and op["process"] != "nemesis"]
    assert len(oks) > 50 and {op["f"] for op in oks} >= {"read", "write"}
    assert any(op["process"] == "nemesis" and op["f"] == "start-partition" for op in ops)
    with open(os.path.join(run_dir, "spec.yaml")) as f:
        assert "port: 7101" in f.read()  # the option, as given, in the stored spec


def test_the_readme_plugin_is_the_one_tested():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert MINIMAL_TARGET in readme
