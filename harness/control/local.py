"""The local backend: each node a network namespace, all on one bridge, no VMs.

Layout for test T with nodes n1..nN in subnet S (a private /24, see subnet.py):

    controller ns  --veth--+
    n1 ns (S.1)    --veth--+-- bridge, in its own "switch" namespace
    ...                    |
    nN ns (S.N)    --veth--+

The bridge lives in a namespace of its own because a bridge in the host namespace is
subject to the host's firewall (Docker's FORWARD DROP policy silently breaks it). The
controller gets S.254 on its veth, so clients reach every node directly; nodes get no
default route, so they can reach nothing but each other and the controller.

As root this uses the host's namespaces; an ordinary user runs the whole test inside an
unprivileged user namespace first (userns.reexec_in_userns_if_needed).
"""
from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
import time
from contextlib import contextmanager

from harness.protocols import HostRemote, Node, NodeNeeds

from . import owners
from .guard_route import add_guard_route, remove_guard_route
from .names import PREFIX, ClusterNames, chain_tag
from .netns import (ClusterError, delete_link, delete_netns, exec_prefix,
                    kill_netns_processes, link_names, list_netns, netns_inode, run)
from .subnet import choose_subnet, controller_address, node_address, taken_networks

__all__ = ["PREFIX", "ClusterError", "LocalCluster"]

log = logging.getLogger("tectonic.control")


class LocalCluster:
    """Nodes n1..n<node_count> as network namespaces; `destroy` removes all of it.

    Usable as a context manager: `with LocalCluster(...) as cluster: cluster.nodes ...`
    creates on entry and destroys on exit, also when the body raises.
    """

    def __init__(self, test_id: str, node_count: int, base_dir: str,
                 needs: NodeNeeds = NodeNeeds()):
        self.names = ClusterNames(test_id, node_count)
        # The nodes share the controller's file system and interpreter: the target's
        # Python modules are importable from where they are here.
        try:
            self.pythonpath = needs.local_pythonpath()
        except ModuleNotFoundError as e:
            raise ClusterError(f"the target runs Python modules on its nodes: {e}") from None
        self.base_dir = os.path.abspath(base_dir)
        self.subnet = None
        self.controller_address: str | None = None
        self.nodes: list[Node] = []
        # Only what this instance created is removed by destroy(): a create that fails
        # because the names are taken must not tear down the cluster that holds them.
        self._netns: list[str] = []
        self._controller_link: str | None = None
        self._claimed = False
        self._guarded = None  # the subnet whose guard route this instance added
        self._inodes: dict[str, int] = {}  # netns -> its inode, to find it if its name goes

    def create(self) -> list[Node]:
        if self._netns:
            raise ClusterError(f"cluster {self.names.prefix} is already created")
        if os.geteuid() != 0:
            raise ClusterError("the local backend needs root, or a user namespace: call "
                               "harness.control.userns.reexec_in_userns_if_needed first "
                               "(`tectonic test` does)")
        try:
            self._create()
        except BaseException:
            self.destroy()
            raise
        return self.nodes

    def destroy(self) -> None:
        """Kill every process in the cluster's namespaces, then remove links and namespaces.

        Idempotent, and safe after a partial create. Files under base_dir are left alone:
        they hold the nodes' logs, which the caller collects and owns.
        """
        errors = []
        for netns in self._netns:
            try:
                kill_netns_processes(netns, inode=self._inodes.get(netns))
            except ClusterError as e:
                errors.append(str(e))
        if self._controller_link:
            try:
                delete_link(self._controller_link)
                self._controller_link = None
            except ClusterError as e:
                errors.append(str(e))
        if self._guarded is not None and self._controller_link is None:
            # Only once the veth is gone: until then the guard must stay behind it.
            try:
                remove_guard_route(self._guarded)
                self._guarded = None
            except ClusterError as e:
                errors.append(str(e))
        for netns in list(self._netns):
            try:
                delete_netns(netns)
                self._netns.remove(netns)
            except ClusterError as e:
                errors.append(str(e))
        self.nodes = []
        if errors:
            raise ClusterError("; ".join(errors))
        if self._claimed:  # only now: a record must outlive anything it names
            owners.release(self.names.test_id)
            self._claimed = False

    def vanished(self) -> list[str]:
        """What of the created cluster is gone (namespaces, the controller's link): removed
        by someone else while the test runs. Empty while the cluster is whole."""
        present = set(list_netns())
        gone = [f"namespace {n}" for n in self._netns if n not in present]
        if self._controller_link and self._controller_link not in link_names():
            gone.append(f"link {self._controller_link}")
        return gone

    def __enter__(self) -> LocalCluster:
        self.create()
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()

    def _create(self) -> None:
        names = self.names
        sw = names.switch_netns
        # Before the first namespace: `tectonic clean` must never see this test's
        # resources without their live owner.
        claim = dict(netns=names.all_netns, link_tag=names.short,
                     chain_tag=chain_tag(names.test_id), dirs=[self.base_dir])
        owners.claim(names.test_id, **claim)
        self._claimed = True
        with _subnet_lock():
            # Held until the controller's address and the owner record claim the subnet,
            # so two tests starting at once cannot pick the same one. The records also
            # keep apart tests whose controllers sit in different network namespaces of
            # one host (Dask workers in namespaces), which see different routes.
            held = [ipaddress.ip_network(r.subnet) for r in owners.records()
                    if r.subnet and r.test_id != names.test_id and r.alive()]
            self.subnet = choose_subnet(names.test_id, taken_networks() + held)
            owners.claim(names.test_id, **claim, subnet=str(self.subnet))
            prefix_len = self.subnet.prefixlen
            self._add_netns(sw)
            self.controller_address = controller_address(self.subnet)
            run(["ip", "link", "add", "name", names.controller_link, "type", "veth",
                 "peer", "name", names.controller_port, "netns", sw])
            self._controller_link = names.controller_link
            run(["ip", "addr", "add", f"{self.controller_address}/{prefix_len}",
                 "dev", names.controller_link])
            add_guard_route(self.subnet)
            self._guarded = self.subnet

        run(["ip", "-n", sw, "link", "set", "lo", "up"])
        run(["ip", "-n", sw, "link", "add", "name", names.bridge, "type", "bridge"])
        run(["ip", "-n", sw, "link", "set", names.bridge, "up"])
        run(["ip", "-n", sw, "link", "set", names.controller_port, "master", names.bridge, "up"])
        run(["ip", "link", "set", names.controller_link, "up"])

        for index, name in enumerate(names.node_names, start=1):
            netns = names.node_netns(name)
            address = node_address(self.subnet, index)
            link = names.node_link(name)
            self._add_netns(netns)
            run(["ip", "-n", netns, "link", "set", "lo", "up"])
            run(["ip", "-n", sw, "link", "add", "name", names.node_port(name), "type", "veth",
                 "peer", "name", link, "netns", netns])
            run(["ip", "-n", sw, "link", "set", names.node_port(name),
                 "master", names.bridge, "up"])
            run(["ip", "-n", netns, "addr", "add", f"{address}/{prefix_len}", "dev", link])
            run(["ip", "-n", netns, "link", "set", link, "up"])
            node_dir = os.path.join(self.base_dir, name)
            os.makedirs(node_dir, exist_ok=True)
            self.nodes.append(Node(name=name, address=address,
                                   remote=HostRemote(wrap=exec_prefix(netns)), dir=node_dir,
                                   netns=netns, pythonpath=self.pythonpath))
        log.info("local cluster %s: %d nodes in %s, controller %s", names.prefix,
                 len(self.nodes), self.subnet, self.controller_address)

    def _add_netns(self, netns: str) -> None:
        if netns in list_netns():
            raise ClusterError(f"namespace {netns} already exists: a test with id "
                               f"{self.names.test_id!r} is running, or a crashed one left it "
                               f"behind (`tectonic clean` removes leftovers)")
        run(["ip", "netns", "add", netns])
        self._netns.append(netns)
        self._inodes[netns] = netns_inode(netns)


def make_cluster(spec: dict, work_dir: str, needs: NodeNeeds = NodeNeeds()) -> LocalCluster:
    import secrets
    if spec.get("backend_opts"):
        raise ClusterError(f"the local backend takes no backend options, got "
                           f"{sorted(spec['backend_opts'])[0]!r} (ssh and docker take them)")
    return LocalCluster(secrets.token_hex(3), spec["node_count"], work_dir, needs)


@contextmanager
def _subnet_lock(timeout: float = 30.0):
    """Exclusive among the controllers that share this /run (the owner records' scope,
    which covers every network namespace of the host). An flock is released by the kernel
    even when its holder is SIGKILLed; each call opens its own file, so threads of one
    process exclude each other too."""
    os.makedirs(owners.OWNERS_DIR, exist_ok=True)
    deadline = time.monotonic() + timeout
    with open(os.path.join(owners.OWNERS_DIR, "subnet.lock"), "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ClusterError(f"cannot take the subnet lock within {timeout}s") from None
                time.sleep(0.01)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
