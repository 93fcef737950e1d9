"""The local backend: nodes as network namespaces on a bridge, and nothing left behind."""
import ipaddress
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib

import pytest

from harness.control import clean as clean_mod
from harness.control.local import PREFIX, ClusterError, LocalCluster
from harness.control.names import IFNAMSIZ, MAX_NODES, ClusterNames, short_tag
from harness.control.netns import link_names, list_netns
from harness.control.subnet import POOL, choose_subnet
from harness.control.userns import userns_problem
from tests.conftest import ROOT, needs_root

# ---------------------------------------------------------------- names and addresses


def test_every_interface_name_fits_ifnamsiz_and_carries_the_short_tag():
    names = ClusterNames("a-rather-long-test-identifier-2026-11-25T10:30:00", MAX_NODES)
    links = [names.bridge, names.controller_link, names.controller_port]
    links += [names.node_link(n) for n in names.node_names]
    links += [names.node_port(n) for n in names.node_names]
    assert len(set(links)) == len(links)
    for link in links:
        assert len(link) <= IFNAMSIZ, link
        assert link.startswith(short_tag(names.test_id) + "-")


def test_namespace_names_carry_the_prefix_and_the_test_id():
    names = ClusterNames("run 7/b", 3)
    assert names.prefix == "tectonic-run-7-b"
    assert names.all_netns == ["tectonic-run-7-b-switch", "tectonic-run-7-b-n1",
                               "tectonic-run-7-b-n2", "tectonic-run-7-b-n3"]
    assert all(n.startswith(PREFIX + "-") for n in names.all_netns)


@pytest.mark.parametrize("test_id, count", [("", 3), ("ok", 0), ("ok", MAX_NODES + 1),
                                            (None, 3), ("ok", "3")])
def test_bad_cluster_parameters_are_refused(test_id, count, tmp_path):
    with pytest.raises(ValueError):
        LocalCluster(test_id, count, str(tmp_path))


def test_subnet_is_a_private_24_that_depends_on_the_test_id():
    a, b = choose_subnet("test-a", []), choose_subnet("test-b", [])
    assert a.prefixlen == 24 and a.subnet_of(POOL) and a.is_private
    assert a == choose_subnet("test-a", []) and a != b


def test_subnet_skips_networks_the_controller_already_has():
    first = choose_subnet("t", [])
    second = choose_subnet("t", [ipaddress.ip_network(f"{first.network_address + 9}/32")])
    assert second != first and not second.overlaps(first)
    with pytest.raises(ClusterError, match="no free /24"):
        choose_subnet("t", [POOL])


# ---------------------------------------------------------------- user namespaces, unit


@pytest.mark.parametrize("path, value, words", [
    ("kernel/unprivileged_userns_clone", "0", "kernel.unprivileged_userns_clone = 0"),
    ("user/max_user_namespaces", "0", "user.max_user_namespaces = 0"),
    ("kernel/apparmor_restrict_unprivileged_userns", "1", "AppArmor"),
])
def test_userns_problem_says_which_setting_forbids_it(tmp_path, path, value, words):
    file = tmp_path / "sys" / path
    file.parent.mkdir(parents=True)
    file.write_text(value + "\n")
    problem = userns_problem(str(tmp_path))
    assert words in problem and "sysctl -w" in problem


# ---------------------------------------------------------------- real clusters

def _probe(address: str, port: int = 9, timeout: float = 1.0) -> str:
    """'refused' proves the address answered (a RST came back); 'silent' means it did not."""
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((address, port))
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "silent"
    finally:
        s.close()


PROBE_FROM_NODE = textwrap.dedent("""
    import socket, sys
    s = socket.socket(); s.settimeout(1.0)
    try:
        s.connect((sys.argv[1], 9)); print("open")
    except ConnectionRefusedError:
        print("refused")
    except OSError:
        print("silent")
""")


def _probe_from(node, address: str) -> str:
    return node.remote.exec([sys.executable, "-c", PROBE_FROM_NODE, address]).stdout.strip()


def _test_id(label: str) -> str:
    return f"{label}-{secrets.token_hex(3)}"


def _leftovers(test_id: str) -> list[str]:
    """Everything of test_id's that exists, whether its controller (often this very
    process) is alive or not."""
    return clean_mod.find_leftovers(test_id, force=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def cluster_id():
    """A fresh test id; whatever a failing test leaves under it is removed afterwards."""
    test_id = _test_id("lb")
    try:
        yield test_id
    finally:
        clean_mod.clean(test_id, force=True)  # this process owns the test


@needs_root()
@pytest.mark.integration
def test_controller_and_nodes_reach_each_other(cluster_id, tmp_path):
    with LocalCluster(cluster_id, 3, str(tmp_path)) as cluster:
        nodes = cluster.nodes
        assert [n.name for n in nodes] == ["n1", "n2", "n3"]
        assert len({n.address for n in nodes}) == 3
        subnet = cluster.subnet
        assert all(ipaddress.ip_address(n.address) in subnet for n in nodes)
        assert ipaddress.ip_address(cluster.controller_address) in subnet
        for node in nodes:
            assert node.dir == str(tmp_path / node.name) and os.path.isdir(node.dir)
            assert _probe(node.address) == "refused"
            routes = node.remote.exec(["ip", "-4", "route", "show"]).stdout
            assert "default" not in routes and str(subnet) in routes
            assert "UP" in node.remote.exec(["ip", "link", "show", "lo"]).stdout
        for a in nodes:
            for b in nodes:
                if a is not b:
                    assert _probe_from(a, b.address) == "refused", (a.name, b.name)
        assert set(cluster.names.all_netns) <= set(list_netns())
        assert cluster.names.controller_link in link_names()
    assert _leftovers(cluster_id) == []


@needs_root()
@pytest.mark.integration
def test_destroy_kills_node_processes_and_is_idempotent(cluster_id, tmp_path):
    cluster = LocalCluster(cluster_id, 2, str(tmp_path))
    nodes = cluster.create()
    pids = [n.remote.spawn(["sleep", "600"], log=f"{n.dir}/sleep.log", pidfile=f"{n.dir}/pid")
            for n in nodes]
    assert all(_alive(p) for p in pids)
    found = _leftovers(cluster_id)
    assert any("process" in line and "sleep 600" in line for line in found)
    cluster.destroy()
    cluster.destroy()
    assert not any(_alive(p) for p in pids)
    assert _leftovers(cluster_id) == []
    assert (tmp_path / "n1" / "sleep.log").exists()  # the nodes' files are the caller's


@needs_root()
@pytest.mark.integration
def test_nothing_is_left_when_the_test_raises_midway(cluster_id, tmp_path):
    with pytest.raises(RuntimeError, match="midway"):
        with LocalCluster(cluster_id, 3, str(tmp_path)) as cluster:
            node = cluster.nodes[0]
            pid = node.remote.spawn(["sleep", "600"], log=f"{node.dir}/log",
                                    pidfile=f"{node.dir}/pid")
            raise RuntimeError("midway")
    assert not _alive(pid)
    assert _leftovers(cluster_id) == []


@needs_root()
@pytest.mark.integration
def test_a_failed_create_removes_only_what_it_made(cluster_id, tmp_path):
    with LocalCluster(cluster_id, 2, str(tmp_path / "a")) as first:
        second = LocalCluster(cluster_id, 2, str(tmp_path / "b"))
        with pytest.raises(ClusterError, match="already exists"):
            second.create()
        second.destroy()
        assert set(first.names.all_netns) <= set(list_netns())
        assert _probe(first.nodes[1].address) == "refused"
    assert _leftovers(cluster_id) == []


KILLED_CONTROLLER = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from harness.control.local import LocalCluster
    cluster = LocalCluster(sys.argv[2], 3, sys.argv[3])
    nodes = cluster.create()
    pid = nodes[0].remote.spawn(["sleep", "600"], log=sys.argv[3] + "/log",
                                pidfile=sys.argv[3] + "/pid")
    print(json.dumps({"pid": pid}), flush=True)
    time.sleep(600)
""")


@needs_root()
@pytest.mark.integration
def test_clean_removes_what_a_sigkilled_controller_left(cluster_id, tmp_path):
    child = subprocess.Popen([sys.executable, "-c", KILLED_CONTROLLER, str(ROOT), cluster_id,
                              str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        sleeper = json.loads(child.stdout.readline())["pid"]
    finally:
        child.kill()
        child.wait()
    found = _leftovers(cluster_id)
    names = ClusterNames(cluster_id, 3)
    for netns in names.all_netns:
        assert f"namespace {netns}" in "\n".join(found)
    assert any(line.startswith("process pid %d" % sleeper) for line in found)
    assert f"link {names.controller_link}" in found
    guard = next(line for line in found if line.startswith("guard route "))
    assert f"namespace {names.switch_netns}" in clean_mod.find_leftovers()

    removed = clean_mod.clean(cluster_id)
    assert f"namespace {names.node_netns('n1')}" in removed
    assert f"link {names.controller_link}" in removed
    assert guard in removed  # the route that kept the cluster's traffic on the machine
    assert any(line.startswith("process pid %d" % sleeper) for line in removed)
    assert _leftovers(cluster_id) == [] and not _alive(sleeper)


# ---------------------------------------------------------------- as an ordinary user

def _userns_script(tmp_path: pathlib.Path) -> pathlib.Path:
    script = tmp_path / "userns_child.py"
    script.write_text(textwrap.dedent("""
        import json, os, socket, sys, time
        sys.path.insert(0, sys.argv[1])
        from harness.control.userns import reexec_in_userns_if_needed
        reexec_in_userns_if_needed([sys.executable, os.path.abspath(__file__), *sys.argv[1:]])
        from harness.control.local import LocalCluster

        def probe(address):
            s = socket.socket(); s.settimeout(1.0)
            try:
                s.connect((address, 9)); return "open"
            except ConnectionRefusedError:
                return "refused"
            except OSError:
                return "silent"

        base, mode = sys.argv[2], sys.argv[3]
        with LocalCluster("userns-" + mode, 3, base) as cluster:
            n1, n2 = cluster.nodes[0], cluster.nodes[1]
            report = {
                "euid": os.geteuid(),
                "pid": os.getpid(),
                "controller": [probe(n.address) for n in cluster.nodes],
                "n1->n2": n1.remote.exec([sys.executable, "-c",
                    "import socket,sys; s=socket.socket(); s.settimeout(1)\\n"
                    "try: s.connect((sys.argv[1], 9))\\n"
                    "except ConnectionRefusedError: print('refused')", n2.address]).stdout.strip(),
                "iptables": n1.remote.exec(["iptables", "-S"]).returncode,
                "netns": list(cluster.names.all_netns),
            }
            if mode == "killed":
                n1.remote.spawn(["sleep", "31415"], log=base + "/log", pidfile=base + "/pid")
                print(json.dumps(report), flush=True)
                time.sleep(600)
        print(json.dumps(report), flush=True)
    """))
    return script


@pytest.fixture
def shared_dir():
    """A directory the unprivileged user can use (pytest's tmp_path is root's alone)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="tectonic-userns-test-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def readable_project(shared_dir) -> pathlib.Path:
    """A copy of the project's packages that the unprivileged user can read. The checkout
    may live where only root can enter (a fresh clone under `mktemp -d`), and what these
    tests show must not depend on where it lives. The packages are the ones pyproject.toml
    installs."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    copy = shared_dir / "project"
    for package in {p.rstrip("*") for p in patterns}:
        shutil.copytree(ROOT / package, copy / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copy


def _unprivileged_command() -> list[str]:
    """How to run a Python script as an ordinary user here, or skip saying why not."""
    problem = userns_problem()
    if problem:
        pytest.skip(f"the kernel forbids unprivileged user namespaces: {problem}")
    if os.geteuid() != 0:
        return [sys.executable]
    for python in (sys.executable, "/usr/bin/python3"):
        ok = subprocess.run(["runuser", "-u", "nobody", "--", python, "-c", "pass"],
                            capture_output=True).returncode == 0
        if ok:
            return ["runuser", "-u", "nobody", "--", python]
    pytest.skip("no Python interpreter the user nobody may run")


@pytest.mark.integration
def test_an_ordinary_user_runs_a_cluster_in_a_user_namespace(shared_dir, readable_project):
    command = _unprivileged_command()
    script = _userns_script(shared_dir)
    script.chmod(0o644)
    proc = subprocess.run([*command, str(script), str(readable_project), str(shared_dir), "clean"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["euid"] == 0
    assert report["controller"] == ["refused"] * 3
    assert report["n1->n2"] == "refused"
    assert report["iptables"] == 0
    # The cluster lived in the user namespace's own /run: the host never saw it. (Only
    # its own names count: other tests may be making namespaces on the host meanwhile.)
    assert report["netns"] and not set(report["netns"]) & set(list_netns())


@pytest.mark.integration
def test_killing_the_user_namespace_controller_leaves_no_process(shared_dir, readable_project):
    command = _unprivileged_command()
    script = _userns_script(shared_dir)
    script.chmod(0o644)
    proc = subprocess.Popen([*command, str(script), str(readable_project), str(shared_dir), "killed"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        report = json.loads(proc.stdout.readline())
        assert report["controller"] == ["refused"] * 3
        assert _sleepers(), "the node's process should be running"
        os.kill(_host_pid(script, report["pid"]), signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 5
    while _sleepers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sleepers() == []


def _host_pid(script: pathlib.Path, pid_in_namespace: int) -> int:
    """The host's pid of the process that is pid_in_namespace in the user namespace."""
    out = subprocess.run(["pgrep", "-f", str(script)], capture_output=True, text=True).stdout
    for pid in out.split():
        with open(f"/proc/{pid}/status") as f:
            nspid = next(line.split()[1:] for line in f if line.startswith("NSpid:"))
        if len(nspid) == 2 and int(nspid[1]) == pid_in_namespace:
            return int(pid)
    raise AssertionError(f"no process is pid {pid_in_namespace} in the user namespace")


def _sleepers() -> list[str]:
    out = subprocess.run(["pgrep", "-f", "sleep 31415"], capture_output=True, text=True).stdout
    return out.split()


@needs_root()
@pytest.mark.integration
def test_clean_removes_a_tests_iptables_chain_and_the_jump_to_it(cluster_id):
    # An empty chain jumped to from INPUT: it changes nothing for the host's traffic.
    chain = f"{PREFIX}-{short_tag(cluster_id)[3:]}-partition"
    subprocess.run(["iptables", "-w", "5", "-N", chain], check=True)
    try:
        subprocess.run(["iptables", "-w", "5", "-A", "INPUT", "-j", chain], check=True)
        assert f"iptables chain {chain}" in _leftovers(cluster_id)
        assert clean_mod.clean(cluster_id) == [f"iptables chain {chain}"]
        rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
        assert chain not in rules
    finally:
        subprocess.run(["iptables", "-w", "5", "-D", "INPUT", "-j", chain], capture_output=True)
        subprocess.run(["iptables", "-w", "5", "-X", chain], capture_output=True)
