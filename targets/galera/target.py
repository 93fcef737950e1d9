"""MariaDB Galera Cluster (Debian's mariadb-server 10.11 with galera-4) as a tectonic Target:
a MariaDB server per node (targets/mariadb/target.py: own data dir, config and socket),
joined by Galera's synchronous, certification-based replication; every node takes writes.

Forming the cluster: the first node bootstraps a new cluster (--wsrep-new-cluster); every
other node waits for it to be Synced, then joins and receives a full copy by rsync (SST).
A node restarted after a kill rejoins the nodes that still run (IST or SST). If none runs
(every node was killed), the restarted node bootstraps the cluster again from its own data
dir, marking it safe to bootstrap: transactions only the others had acknowledged can be lost
that way, exactly as when an operator forces a bootstrap after a crash of the whole cluster.

target_opts, besides mariadb's (snapshot_isolation, flush_log_at_trx_commit, port):
  sync_wait   wsrep_sync_wait (default 0, Galera's default: reads are served from the
              node's own state without waiting for the cluster; 1 makes reads wait for
              every transaction the cluster had committed when they began)
"""
from __future__ import annotations

import hashlib
import os
import time

from core.errors import SetupError, SpecError
from harness.protocols import Option
from targets.mariadb.target import MariaDBTarget

PROVIDER = "/usr/lib/galera/libgalera_smm.so"
GROUP_PORT = 4567
SST_PORT = 4444
IST_PORT = 4568
SYNCED = "4"  # wsrep_local_state: Synced
JOIN_TIMEOUT = 90.0


class GaleraTarget(MariaDBTarget):
    name = "galera"
    options = (*MariaDBTarget.options,
               Option("sync_wait", int, 0, "wsrep_sync_wait, a bit mask 0..15"))

    def __init__(self, spec: dict, nodes: list, where: str = "spec"):
        super().__init__(spec, nodes, where)
        self.sync_wait = self.opts["sync_wait"]
        if not 0 <= self.sync_wait <= 15:
            raise SpecError(f"{where}: galera: target_opts.sync_wait must be 0..15 (a bit mask), "
                            f"got {self.sync_wait}")
        addresses = ",".join(n.address for n in self.nodes)
        self.cluster_address = f"gcomm://{addresses}"
        # A name of its own per cluster: a node of another test never joins this one.
        self.cluster_name = "tectonic-" + hashlib.sha256(addresses.encode()).hexdigest()[:12]
        self._formed = False  # whether the first node has bootstrapped the cluster

    def _check_node_count(self, where: str) -> None:
        if len(self.nodes) < 2:
            raise SpecError(f"{where}: target galera is a cluster: --node-count 3 or more "
                            f"(got {len(self.nodes)}; --target mariadb is one server)")

    def config(self, node) -> list[str]:
        return [
            *super().config(node),
            "binlog_format = ROW",
            "default_storage_engine = InnoDB",
            "innodb_autoinc_lock_mode = 2",
            "wsrep_on = ON",
            f"wsrep_provider = {PROVIDER}",
            f"wsrep_cluster_name = {self.cluster_name}",
            f"wsrep_cluster_address = {self.cluster_address}",
            f"wsrep_node_address = {node.address}",
            f"wsrep_node_name = {node.name}",
            f"wsrep_sst_receive_address = {node.address}:{SST_PORT}",
            "wsrep_sst_method = rsync",
            f"wsrep_sync_wait = {self.sync_wait}",
            f'wsrep_provider_options = "gmcast.listen_addr=tcp://{node.address}:{GROUP_PORT}; '
            f'ist.recv_addr={node.address}:{IST_PORT}; gcache.size=64M"',
        ]

    def setup(self, node) -> None:
        if node.remote.exec(["test", "-f", PROVIDER], check=False).returncode != 0:
            raise SetupError(f"galera: no {PROVIDER} on {node.name} "
                             f"(apt-get install galera-4 rsync; ./setup.sh does)")
        super().setup(node)

    def start(self, node) -> None:
        if self._running_pid(node) is not None:
            return
        if not self._formed:
            # Forming: the nodes start side by side, and only the first may bootstrap
            # (two bootstraps would be two clusters, and one aborts the other).
            bootstrap = node is self.nodes[0]
        else:
            bootstrap = not [n for n in self.nodes
                             if n is not node and self._running_pid(n) is not None]
        if not bootstrap:
            # A joiner started before anyone is Synced finds no one to copy from.
            self._wait_synced_peer(node)
        if bootstrap:
            self._mark_safe_to_bootstrap(node)
        argv = self.argv(node) + (["--wsrep-new-cluster"] if bootstrap else [])
        self._pids[node.name] = node.remote.spawn(argv, log=self._log(node),
                                                  pidfile=self._pidfile(node))
        if bootstrap:
            self._formed = True

    def wait_healthy(self, nodes: list, timeout: float) -> None:
        """Every node is Synced in one primary component of all the nodes; then the schema
        is made through the first (Galera replicates it)."""
        deadline = time.monotonic() + max(timeout, JOIN_TIMEOUT)
        problem = "not asked yet"
        while time.monotonic() < deadline:
            problem = None
            for n in nodes:
                state = self._status(n)
                if state is None or state.get("wsrep_local_state") != SYNCED:
                    problem = f"{n.name} is not Synced ({(state or {}).get('wsrep_local_state_comment', 'no answer')})"
                    break
                if state.get("wsrep_cluster_size") != str(len(nodes)):
                    problem = f"{n.name} sees {state.get('wsrep_cluster_size')} of {len(nodes)} nodes"
                    break
            if problem is None:
                self._make_schema(nodes[0])
                return
            time.sleep(0.5)
        raise SetupError(f"galera not healthy: {problem} "
                         f"(see {', '.join(self._log(n) for n in nodes)})")

    # ---- helpers --------------------------------------------------------------------------

    def _status(self, node) -> dict | None:
        if self._running_pid(node) is None:
            return None
        res = self.sql(node, "SHOW GLOBAL STATUS LIKE 'wsrep_%'", timeout=5)
        if res.returncode != 0:
            return None
        return dict(line.split("\t", 1) for line in res.stdout.splitlines() if "\t" in line)

    def _wait_synced_peer(self, node) -> None:
        deadline = time.monotonic() + JOIN_TIMEOUT
        while time.monotonic() < deadline:
            for peer in self.nodes:
                if peer is not node and (self._status(peer) or {}).get("wsrep_local_state") == SYNCED:
                    return
            time.sleep(0.3)
        raise SetupError(f"galera: {node.name} found no Synced node to join within "
                         f"{JOIN_TIMEOUT:.0f}s (see {self._log(self.nodes[0])})")

    def _mark_safe_to_bootstrap(self, node) -> None:
        grastate = os.path.join(self.data_dir(node), "grastate.dat")
        node.remote.exec(["sed", "-i", "s/^safe_to_bootstrap: 0/safe_to_bootstrap: 1/", grastate],
                         check=False)
