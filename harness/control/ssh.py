"""The SSH backend: nodes are real hosts reached over SSH, as in Jepsen.

backend_opts (spec.py reads them from --nodes/--nodes-file/--ssh-*):
  nodes               the hosts, `host`, `user@host` or `user@host:port` (n1..nN in order)
  user, port          defaults for hosts that do not name theirs (root, 22)
  key_file            a private key; without it, the agent and ~/.ssh keys
  known_hosts         the known_hosts file to check host keys against (default: the
                      user's ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts)
  insecure_host_keys  accept any host key (logged as a warning; the stored spec shows it)
  sudo                run commands through `sudo -n` (default: when the user is not root)
  python              the interpreter on the hosts for a target's Python modules (default python3)
  remote_dir          where the per-test directories go on the hosts (default /tmp)

With clock faults in the test, each node gets `clock`, a HostClock moving the host's real
clock (ssh_clock.py), or `clock_refused` when the hosts share a kernel.

On each host, for test T and node n: <remote_dir>/tectonic-T/n is the node's directory,
and <remote_dir>/tectonic-T/project-n holds the packages of the Python modules the target
runs on its nodes (NodeNeeds), uploaded; node.pythonpath names it.
destroy() kills whatever the test started there, removes both, and closes the connection.
"""
from __future__ import annotations

import logging
import os
import posixpath
import secrets
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from core.errors import SetupError
from harness.protocols import Node, NodeNeeds, RemoteError

from . import python_upload
from .names import ClusterNames
from .ssh_clock import HostClock, boot_id, controller_boot_id, shared_kernel_refusal
from .ssh_commands import parse_host
from .ssh_remote import SSHRemote

log = logging.getLogger("tectonic.control")

OPTIONS = {"nodes", "user", "port", "key_file", "known_hosts", "insecure_host_keys", "sudo",
           "python", "remote_dir"}


class SSHClusterError(SetupError):
    """The hosts cannot be used: one line for the user, exit 254."""


class SSHCluster:
    """Nodes n1..nN on the hosts named in backend_opts; `destroy` undoes `create`."""

    def __init__(self, test_id: str, opts: dict, *, needs: NodeNeeds = NodeNeeds(),
                 clock_faults: bool = False):
        unknown = sorted(set(opts) - OPTIONS)
        if unknown:
            raise SSHClusterError(f"backend_opts: unknown ssh option {unknown[0]!r} "
                                  f"(known: {', '.join(sorted(OPTIONS))})")
        hosts = opts.get("nodes")
        if not isinstance(hosts, list) or not hosts:
            raise SSHClusterError("the ssh backend needs its hosts: --nodes h1,h2,... or --nodes-file FILE")
        try:
            specs = [parse_host(h, opts.get("user") or "root", int(opts.get("port") or 22))
                     for h in hosts]
        except ValueError as e:
            raise SSHClusterError(f"backend_opts.nodes: {e}") from None
        self.names = ClusterNames(test_id, len(specs))
        self.needs = needs
        self.clock_faults = clock_faults
        self.python = opts.get("python", "python3")
        self.base = posixpath.join(opts.get("remote_dir", "/tmp"), f"tectonic-{test_id}")
        self.remotes = [SSHRemote(spec, name=name, key_file=opts.get("key_file"),
                                  known_hosts=opts.get("known_hosts"),
                                  insecure_host_keys=bool(opts.get("insecure_host_keys")),
                                  sudo=opts.get("sudo"), marker=f"tectonic-{test_id}")
                        for name, spec in zip(self.names.node_names, specs)]
        self.nodes: list[Node] = []
        self._created: list[SSHRemote] = []  # hosts that got a directory: destroy cleans these

    def node_dir(self, name: str) -> str:
        return posixpath.join(self.base, name)

    def project_dir(self, name: str) -> str:
        return posixpath.join(self.base, f"project-{name}")

    def create(self) -> list[Node]:
        if self.nodes:
            raise SSHClusterError(f"cluster {self.names.prefix} is already created")
        if any(r.insecure_host_keys for r in self.remotes):
            log.warning("ssh: host keys are NOT checked (insecure_host_keys)")
        try:
            bundle = python_upload.bundle(self.needs) if self.needs.python_modules else None
        except ModuleNotFoundError as e:
            raise SSHClusterError(f"the target runs Python modules on its nodes: {e}") from None
        try:
            self.nodes = _on_all(self.remotes, lambda r: self._prepare(r, bundle))
            if self.clock_faults:
                self._attach_clocks()
        except BaseException:
            try:
                self.destroy()
            except SSHClusterError as e:  # the first failure is the one to report
                log.error("ssh: cleaning up after a failed set-up: %s", e)
            raise
        log.info("ssh cluster %s: %s", self.names.prefix, ", ".join(
            f"{n.name}={r.spec} ({n.address})" for n, r in zip(self.nodes, self.remotes)))
        return self.nodes

    def vanished(self) -> list[str]:
        """Always empty: the hosts are the user's, not made by this test, so nothing of them
        can be removed from under it; an unreachable host fails its ops and commands instead."""
        return []

    def destroy(self) -> None:
        """Kill what the test started on each host, remove its directories, disconnect.
        Idempotent; the nodes' logs were collected before (run.py collects, then destroys)."""
        errors = []

        def attempt(step) -> bool:
            try:
                step()
                return True
            except RemoteError as e:
                errors.append(str(e))
                return False

        def clean(remote: SSHRemote) -> None:
            clock = next((n.clock for n in self.nodes if n.remote is remote), None)
            try:
                if clock is not None:
                    attempt(clock.restore)
                if remote in self._created:
                    attempt(remote.kill_spawned)
                    if attempt(lambda: remote.exec(["rm", "-rf", self.node_dir(remote.name),
                                                    self.project_dir(remote.name)], timeout=60)):
                        # Gone only when no other node of this test shares the host.
                        attempt(lambda: remote.exec(["rmdir", self.base], check=False))
                        self._created.remove(remote)
            finally:
                remote.close()

        _on_all(self.remotes, clean, raise_first=False)
        self.nodes = []
        if errors:
            raise SSHClusterError("; ".join(errors))

    def _prepare(self, remote: SSHRemote, bundle: bytes | None) -> Node:
        try:
            remote.connect()
            remote.check_sudo()
            node_dir, project = self.node_dir(remote.name), self.project_dir(remote.name)
            # As the login user, so SFTP can write there also when commands run through sudo.
            remote.exec_unprivileged(["mkdir", "-p", node_dir]
                                     + ([project] if bundle is not None else []))
            self._created.append(remote)
            if bundle is not None:
                self._deploy(remote, bundle, project)
            return Node(name=remote.name, address=remote.peer_address, remote=remote,
                        dir=node_dir, backend="ssh", python=self.python,
                        pythonpath=(project,) if bundle is not None else ())
        except RemoteError as e:
            raise SSHClusterError(str(e)) from None

    def _attach_clocks(self) -> None:
        """node.clock: a HostClock the clock nemesis moves; or, when the hosts share a
        kernel with the controller or each other, node.clock_refused: why not (a target
        with the Clock capability, like raftkv's libfaketime, still can)."""
        controller = controller_boot_id()
        try:
            boots = dict(zip([n.name for n in self.nodes],
                             _on_all(self.remotes, boot_id)))
        except RemoteError as e:
            raise SSHClusterError(str(e)) from None
        refusal = shared_kernel_refusal(boots, controller)
        for node, remote in zip(self.nodes, self.remotes):
            if refusal:
                node.clock_refused = refusal
            else:
                node.clock = HostClock(remote, controller=controller)
        if refusal:
            log.warning("ssh: %s", refusal)

    def _deploy(self, remote: SSHRemote, bundle: bytes, project: str) -> None:
        archive = project + ".tar.gz"
        with _local_copy(bundle) as local:
            remote.put_file(local, archive)
        remote.exec_unprivileged(["sh", "-c", 'tar -xzf "$1" -C "$2" && rm -f "$1"', "unpack",
                                  archive, project], timeout=60)
        check = remote.exec(python_upload.import_check(self.python, project, self.needs),
                            check=False, timeout=60)
        if check.returncode != 0:
            last_line = (check.stderr.strip().splitlines() or ["no output"])[-1]
            raise SSHClusterError(
                f"ssh {remote.spec} ({remote.name}): {self.python} cannot import the target's "
                f"uploaded {', '.join(self.needs.python_modules)} ({last_line}): install "
                f"python3 (>= 3.9) there, or set backend_opts.python")


def make_cluster(spec: dict, work_dir: str, needs: NodeNeeds = NodeNeeds()) -> SSHCluster:
    return SSHCluster(secrets.token_hex(3), dict(spec.get("backend_opts") or {}),
                      needs=needs, clock_faults="clock" in (spec.get("nemesis") or []))


def _on_all(remotes: list, action, raise_first: bool = True) -> list:
    """action(remote) on every host at once; results in host order. Every host is tried;
    then the first error is raised."""
    with ThreadPoolExecutor(max_workers=len(remotes), thread_name_prefix="tectonic-ssh") as pool:
        futures = [pool.submit(action, r) for r in remotes]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors and raise_first:
        raise errors[0]
    return [f.result() for f in futures] if not errors else []


@contextmanager
def _local_copy(data: bytes):
    """The bytes in a local temporary file (SFTP uploads files) for a with block."""
    fd, path = tempfile.mkstemp(prefix="tectonic-project-", suffix=".tar.gz")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        os.unlink(path)
