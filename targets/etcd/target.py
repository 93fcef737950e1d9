"""etcd as a tectonic Target: one member per node, started, killed, paused through its Remote.

Under each node's directory:

  data/        the member's data dir (WAL and snapshots; a restart recovers from it)
  etcd.log     the member's output (kept: log_files collects it)
  etcd.pid     the member's pid

target_opts: EtcdTarget.options (`tectonic targets` lists them). lock_ttl's default, 2 s,
is etcd's minimum for the default timeouts (1.5 election timeouts, rounded up); change the
ports for clusters on loopback.

Clock faults are not offered (no Clock capability): etcd is written in Go, whose runtime
reads the time through the vDSO without libc, out of libfaketime's reach, and on the local
backend every node shares one kernel clock. Clock faults on etcd need hosts of their own.
"""
from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

from core.errors import SetupError, SpecError
from harness.protocols import HealthCheck, LogFiles, Membership, Option, Primary, Target
from targets.daemon import Daemon
from targets.etcd.client import EtcdClient
from targets.etcd.gateway import Gateway, GatewayError, number

DEFAULT_BINARY = "/usr/bin/etcd"
STATUS_TIMEOUT = 0.5
MEMBERSHIP_TIMEOUT = 20.0  # seconds a member add or remove may take before it is given up on
# etcd's answers to a member change worth asking again: no leader yet, a change of leader,
# too few started members for its strict reconfiguration check, a member still starting.
_RETRY = ("request timed out", "leader changed", "unhealthy cluster", "not enough started",
          "no leader", "timeout", "connect", "connection lost", "server stopped",
          "too many requests")
# etcd's answer to a member add whose ID (peer URLs and the second) is one it removed.
ID_REUSED = "member not found"


class EtcdTarget(Daemon, Target, HealthCheck, Primary, LogFiles, Membership):
    name = "etcd"
    options = (
        Option("etcd_binary", str, DEFAULT_BINARY, "the etcd executable on the nodes"),
        Option("serializable", bool, False, "reads answered by the member alone, possibly stale"),
        Option("heartbeat_interval", int, 100, "milliseconds between the leader's heartbeats"),
        Option("election_timeout", int, 1000, "milliseconds; at least 5 heartbeat intervals"),
        Option("lock_ttl", int, 2, "seconds: the lease behind a held lock"),
        Option("client_port", int, 2379, "the port clients talk to"),
        Option("peer_port", int, 2380, "the port members talk to each other on"),
    )
    features = frozenset({"register", "set", "list-append", "rw-register", "lock"})

    @classmethod
    def validate(cls, spec: dict) -> None:
        super().validate(spec)
        opts = spec["target_opts"]
        if opts["election_timeout"] < 5 * opts["heartbeat_interval"]:
            raise SpecError(f"etcd: target_opts.election_timeout ({opts['election_timeout']} ms) "
                            f"must be at least 5 heartbeat intervals "
                            f"({5 * opts['heartbeat_interval']} ms)")

    def __init__(self, spec: dict, nodes: list):
        super().__init__(spec, nodes)
        self.validate({**spec, "target_opts": self.opts})
        opts = self.opts
        self.binary = opts["etcd_binary"]
        self.serializable = opts["serializable"]
        self.heartbeat = opts["heartbeat_interval"]
        self.election = opts["election_timeout"]
        self.lock_ttl = opts["lock_ttl"]
        self.client_port = opts["client_port"]
        self.peer_port = opts["peer_port"]
        members = ",".join(f"{n.name}={self._peer_url(n)}" for n in self.nodes)
        self.initial_cluster = members
        # A token of its own per cluster, so members of another test never join this one.
        self.token = "tectonic-" + hashlib.sha256(members.encode()).hexdigest()[:12]
        self.process_mark = self.token  # on every member's command line, and only theirs
        self._pids: dict[str, int] = {}
        # Membership changes: nodes removed from the cluster (stopped, data wiped: start
        # leaves them down), and for a node added back the --initial-cluster it joins.
        self._removed: set[str] = set()
        self._joins: dict[str, str] = {}

    # ---- paths and flags ------------------------------------------------------------------

    def data_dir(self, node) -> str:
        return os.path.join(node.dir, "data")

    def _log(self, node) -> str:
        return os.path.join(node.dir, "etcd.log")

    def _pidfile(self, node) -> str:
        return os.path.join(node.dir, "etcd.pid")

    def _peer_url(self, node) -> str:
        return f"http://{node.address}:{self.peer_port}"

    def _client_url(self, node) -> str:
        return f"http://{node.address}:{self.client_port}"

    def argv(self, node) -> list[str]:
        return [self.binary, "--name", node.name, "--data-dir", self.data_dir(node),
                "--listen-client-urls", self._client_url(node),
                "--advertise-client-urls", self._client_url(node),
                "--listen-peer-urls", self._peer_url(node),
                "--initial-advertise-peer-urls", self._peer_url(node),
                "--initial-cluster", self._joins.get(node.name, self.initial_cluster),
                # Ignored once the data dir holds a member: a restart rejoins as itself.
                "--initial-cluster-state", "existing" if node.name in self._joins else "new",
                "--initial-cluster-token", self.token,
                "--heartbeat-interval", str(self.heartbeat),
                "--election-timeout", str(self.election),
                # A node cut off and back must not depose a healthy leader with its raised term.
                "--pre-vote",
                "--logger", "zap", "--log-outputs", "stderr"]

    # ---- lifecycle ------------------------------------------------------------------------

    def setup(self, node) -> None:
        found = node.remote.exec(["test", "-x", self.binary], check=False)
        if found.returncode != 0:
            raise SetupError(f"etcd: no executable {self.binary} on {node.name} "
                             f"(apt-get install -y etcd-server, or set target_opts.etcd_binary)")
        node.remote.exec(["mkdir", "-p", node.dir])
        self.start(node)

    def start(self, node) -> None:
        if self._running_pid(node) is not None or node.name in self._removed:
            return  # a removed member stays down until add_member brings it back
        self._pids[node.name] = node.remote.spawn(self.argv(node), log=self._log(node),
                                                  pidfile=self._pidfile(node))

    def wait_healthy(self, nodes: list, timeout: float) -> None:
        """Every member answers and names the same leader, and a write through it commits."""
        deadline = time.monotonic() + timeout
        problem = "no member answered"
        while time.monotonic() < deadline:
            statuses = self.statuses(nodes)
            silent = [n.name for n, s in statuses if s is None]
            leaders = {s["leader"] for _, s in statuses if s is not None}
            if silent:
                problem = f"no status from {', '.join(silent)}"
            elif len(leaders) != 1 or 0 in leaders:
                problem = "the members do not agree on a leader yet"
            else:
                leader = _leader_of(statuses)
                done = self._probe_write(leader) if leader is not None else None
                if done is not None and done["type"] == "ok":
                    return
                problem = "no leader" if leader is None else \
                    f"a write through leader {leader.name} failed: {done.get('error')}"
            time.sleep(0.1)
        raise SetupError(f"etcd not healthy after {timeout:.0f}s: {problem} "
                           f"(see {', '.join(self._log(n) for n in nodes)})")

    def log_files(self, node) -> list[str]:
        return [self._log(node)]

    def leader(self, nodes: list):
        """The member that says it leads, in the highest term any member reports."""
        return _leader_of(self.statuses(nodes))

    def client(self, node) -> EtcdClient:
        return EtcdClient(self.client_port, serializable=self.serializable, lock_ttl=self.lock_ttl)

    def status(self, node, timeout: float = STATUS_TIMEOUT) -> dict | None:
        """The member's own view (POST /v3/maintenance/status): its id, the leader's id
        (0 for none) and its raft term; None when it does not answer in time."""
        gateway = Gateway(node.address, self.client_port, connect_timeout=timeout)
        try:
            answer = gateway.post("/v3/maintenance/status", {}, timeout)
        except GatewayError:
            return None
        finally:
            gateway.close()
        return {"member": number((answer.get("header") or {}).get("member_id")),
                "leader": number(answer.get("leader")), "term": number(answer.get("raftTerm"))}

    def statuses(self, nodes: list) -> list[tuple]:
        """[(node, status)], asked of all at once: a paused member costs one timeout, not
        one per member."""
        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            return list(zip(nodes, pool.map(self.status, nodes)))

    # ---- helpers --------------------------------------------------------------------------

    def _probe_write(self, node) -> dict:
        client = self.client(node)
        client.open(node)
        try:
            return client.invoke({"f": "write", "value": ["tectonic-health", 1]}, 2.0)
        finally:
            client.close()


    # ---- membership (etcd's member API through the gateway) ----------------------------

    def _member_list(self, nodes: list) -> list[dict]:
        """The cluster's members as the leader (else any member that answers) knows them:
        [{"ID", "name", "peerURLs", ...}]; a member added but not started has no name."""
        leader = self.leader(nodes)
        for node in ([leader] if leader is not None else []) + list(nodes):
            if node.name in self._removed:
                continue
            try:
                return self._post(node, "/v3/cluster/member/list", {}).get("members") or []
            except GatewayError:
                continue
        raise SetupError("etcd: no member answered the member list")

    def _node_of(self, member: dict, nodes: list):
        urls = member.get("peerURLs") or []
        return next((n for n in nodes if self._peer_url(n) in urls), None)

    def members(self, nodes: list) -> list[str]:
        deadline = time.monotonic() + MEMBERSHIP_TIMEOUT
        while True:
            try:
                listed = self._member_list(nodes)
                return sorted(n.name for m in listed if (n := self._node_of(m, nodes)))
            except SetupError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def remove_member(self, node, nodes: list) -> list[str]:
        def remove(listed):
            member = next((m for m in listed if self._node_of(m, nodes) is node), None)
            if member is None:
                return True  # already out (an earlier answer was lost)
            self._post(self._asked(nodes, node), "/v3/cluster/member/remove", {"ID": member["ID"]})
            return True
        self._until_done(f"remove {node.name}", nodes, remove)
        # Removed for good: stopped, its data wiped, left down until it is added again.
        self._removed.add(node.name)
        self._joins.pop(node.name, None)
        self.kill(node)
        node.remote.exec(["rm", "-rf", self.data_dir(node)])
        return self.members(nodes)

    def add_member(self, node, nodes: list) -> list[str]:
        if node.name not in self._removed:
            if node.name in self.members(nodes):
                return self.members(nodes)
            # Out of the cluster by a removal whose answer was lost: never wiped yet.
            self.kill(node)
            node.remote.exec(["rm", "-rf", self.data_dir(node)])

        def add(listed):
            if not any(self._node_of(m, nodes) is node for m in listed):
                try:
                    answer = self._post(self._asked(nodes, node), "/v3/cluster/member/add",
                                        {"peerURLs": [self._peer_url(node)]})
                except GatewayError as e:
                    if ID_REUSED not in str(e):
                        raise
                    # etcd makes the new member's ID from its peer URL and the current
                    # second: added, removed and added again within one second, the node
                    # gets the ID just removed, which etcd refuses. The next second's is new.
                    time.sleep(1.0 - time.time() % 1.0)
                    return False
                listed = answer.get("members") or []
            # etcd knows the new member: start it, joining the cluster it is now part of.
            self._joins[node.name] = ",".join(
                f"{n.name}={self._peer_url(n)}" for m in listed
                if (n := self._node_of(m, nodes)) is not None)
            self._removed.discard(node.name)
            self.start(node)
            return True
        self._until_done(f"add {node.name}", nodes, add)
        # Joined once it answers as a started member, named in the list.
        deadline = time.monotonic() + MEMBERSHIP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                listed = self._member_list(nodes)
            except SetupError:
                listed = []
            if any(m.get("name") == node.name for m in listed) and self.status(node):
                return sorted(n.name for m in listed if (n := self._node_of(m, nodes)))
            time.sleep(0.2)
        raise SetupError(f"etcd: {node.name} added but not started within "
                         f"{MEMBERSHIP_TIMEOUT:.0f}s (see {self._log(node)})")

    def _asked(self, nodes: list, changed):
        """Where to send a member change: the leader, else any other running member."""
        leader = self.leader(nodes)
        if leader is not None:
            return leader
        return next(n for n in nodes if n is not changed and n.name not in self._removed)

    def _until_done(self, what: str, nodes: list, attempt) -> None:
        deadline = time.monotonic() + MEMBERSHIP_TIMEOUT
        problem = "no member answered"
        while time.monotonic() < deadline:
            try:
                if attempt(self._member_list(nodes)):
                    return
            except SetupError as e:
                problem = str(e)
            except GatewayError as e:
                problem = str(e)
                if "member ID not found" in problem and what.startswith("remove"):
                    return
                if not any(m in problem for m in _RETRY) and "already exists" not in problem:
                    raise SetupError(f"etcd: {what}: {problem}") from None
            time.sleep(0.2)
        raise SetupError(f"etcd: {what} not done within {MEMBERSHIP_TIMEOUT:.0f}s ({problem}); "
                         f"the change may still happen")

    def _post(self, node, path: str, body: dict, timeout: float = 5.0) -> dict:
        gateway = Gateway(node.address, self.client_port, connect_timeout=1.0)
        try:
            return gateway.post(path, body, timeout)
        finally:
            gateway.close()


def _leader_of(statuses: list[tuple]):
    best = None
    for node, status in statuses:
        if status and status["member"] == status["leader"] != 0 and \
                (best is None or status["term"] > best[0]):
            best = (status["term"], node)
    return best[1] if best else None

