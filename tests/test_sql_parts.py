"""The SQL targets' parts that need no server: workload options, target options and node
counts, and what each driver error means for an op (the drivers' own exception types).
Fast; the servers themselves are in tests/test_sql_cluster.py."""
from __future__ import annotations

import pytest

from core.errors import SpecError
from harness.protocols import Node
from workloads.sql import SqlOptions, sql_options

pymysql = pytest.importorskip("pymysql", reason="the sql extra is not installed (pip install -e '.[sql]')")
psycopg = pytest.importorskip("psycopg", reason="the sql extra is not installed (pip install -e '.[sql]')")

from targets.galera import GaleraTarget as make_galera  # noqa: E402
from targets.mariadb import MariaDBTarget as make_mariadb  # noqa: E402
from targets.mariadb.dialect import MariaDBDialect  # noqa: E402
from targets.postgres import PostgresTarget as make_postgres  # noqa: E402
from targets.postgres.dialect import PostgresDialect  # noqa: E402


def nodes(n: int) -> list[Node]:
    return [Node(f"n{i}", f"10.0.0.{i}", None, f"/tmp/x/n{i}") for i in range(1, n + 1)]


def spec(**kw) -> dict:
    return {"workload": "list-append", "workload_opts": {}, "target_opts": {}, **kw}


def test_isolation_defaults_to_the_databases_own_and_is_spelled_as_sql():
    assert make_mariadb(spec(), nodes(1)).sql_options.isolation == "repeatable-read"
    assert make_postgres(spec(), nodes(1)).sql_options.isolation == "read-committed"
    opts = sql_options(spec(workload_opts={"isolation": "read-committed"}), "t", "serializable")
    assert opts == SqlOptions("list-append", "read-committed", "concat")
    assert opts.isolation_sql == "READ COMMITTED"


@pytest.mark.parametrize("bad, message", [
    (spec(workload_opts={"isolation": "snapshot"}), "workload_opts.isolation must be one of"),
    (spec(workload_opts={"append": "sideways"}), "workload_opts.append must be one of"),
    (spec(workload="rw-register", workload_opts={"append": "concat"}), "append is for the list-append"),
    (spec(workload="register"), "runs the transactional workloads only"),
])
def test_bad_workload_options_are_one_line_spec_errors(bad, message):
    with pytest.raises(SpecError, match=message) as e:
        make_mariadb(bad, nodes(1))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("make, count, opts, message", [
    (make_mariadb, 3, {}, "single server: --node-count 1"),
    (make_postgres, 2, {}, "single server: --node-count 1"),
    (make_galera, 1, {}, "is a cluster: --node-count 3"),
    (make_mariadb, 1, {"flush_log_at_trx_commit": 3}, "must be 0, 1 or 2"),
    (make_mariadb, 1, {"snapshot_isolation": "yes"}, "snapshot_isolation must be bool"),
    (make_postgres, 1, {"fsync": False}, "target_opts.fsync: unknown option"),
    (make_galera, 3, {"sync_wait": 99}, "sync_wait must be 0..15"),
])
def test_bad_target_options_and_node_counts_are_spec_errors(make, count, opts, message):
    from harness.spec import resolve_spec
    with pytest.raises(SpecError, match=message):
        resolve_spec({"target": make.name, "node_count": count, **spec(target_opts=opts)})


def test_galera_config_joins_the_nodes_and_names_the_cluster_after_them():
    target = make_galera(spec(target_opts={"sync_wait": 1}), nodes(3))
    lines = target.config(target.nodes[1])
    assert "wsrep_cluster_address = gcomm://10.0.0.1,10.0.0.2,10.0.0.3" in lines
    assert "wsrep_node_address = 10.0.0.2" in lines and "wsrep_sync_wait = 1" in lines
    other = make_galera(spec(), nodes(5))
    assert other.cluster_name != target.cluster_name


def mysql_options() -> SqlOptions:
    return SqlOptions("list-append", "serializable", "concat")


@pytest.mark.parametrize("error, aborted, lost", [
    (pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock"), True, False),
    (pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"), True, False),
    (pymysql.err.OperationalError(1020, "Record has changed since last read"), True, False),
    (pymysql.err.OperationalError(2013, "Lost connection to server during query"), False, True),
    (pymysql.err.InterfaceError(0, ""), False, True),
    (pymysql.err.OperationalError(1047, "WSREP has not yet prepared node"), False, False),
])
def test_mariadb_errors_at_commit(error, aborted, lost):
    d = MariaDBDialect(3306, mysql_options())
    assert d.aborted_for_certain(error) is aborted
    assert d.connection_lost(error) is lost


@pytest.mark.parametrize("error, aborted, lost", [
    (psycopg.errors.SerializationFailure("could not serialize access"), True, False),
    (psycopg.errors.DeadlockDetected("deadlock detected"), True, False),
    (psycopg.errors.QueryCanceled("canceling statement"), False, False),
    (psycopg.OperationalError("server closed the connection unexpectedly"), False, True),
    (OSError("reset"), False, True),
])
def test_postgres_errors_at_commit(error, aborted, lost):
    d = PostgresDialect(5432, mysql_options())
    assert d.aborted_for_certain(error) is aborted
    assert d.connection_lost(error) is lost


def test_a_client_that_cannot_connect_fails_the_op_for_certain():
    # Nothing listens on this port of loopback: nothing was sent, so the op did not happen.
    client = make_mariadb(spec(target_opts={"port": 1}), nodes(1)).client(None)
    client.open(Node("n1", "127.0.0.1", None, "/tmp/x/n1"))
    out = client.invoke({"f": "txn", "value": [["append", 1, 1]]}, 1.0)
    assert out["type"] == "fail" and out["error"].startswith("connect:"), out
    assert client.invoke({"f": "read", "value": [1, None]}, 1.0)["type"] == "fail"


class FakeRemote:
    """A node's shell for the galera start decision: spawn records the command line, and
    /proc answers for the processes spawned (alive until `killed`)."""

    def __init__(self):
        self.spawned: list[list[str]] = []
        self.killed = False

    def exec(self, argv, timeout=30.0, check=True, input=None, env=None):
        from harness.protocols import ExecResult
        alive = self.spawned and not self.killed and argv[0] == "cat" and "/proc/" in argv[1]
        out = f"1 (mariadbd) S {' '.join(self.spawned[-1])}" if alive else ""
        return ExecResult(argv, 0 if alive or argv[0] != "cat" else 1, out, "")

    def spawn(self, argv, log, pidfile, env=None, cwd=None):
        self.spawned.append(list(argv))
        self.killed = False
        return 100 + len(self.spawned)


def test_galera_bootstraps_from_the_first_node_only_while_forming_and_again_after_all_died(monkeypatch):
    cluster = [Node(f"n{i}", f"10.0.0.{i}", FakeRemote(), f"/tmp/x/n{i}") for i in (1, 2, 3)]
    target = make_galera(spec(), cluster)
    # A joiner waits for a Synced peer; here the wait is only recorded.
    waited = []
    monkeypatch.setattr(target, "_wait_synced_peer", lambda node: waited.append(node.name))
    bootstrapped = lambda n: "--wsrep-new-cluster" in n.remote.spawned[-1]  # noqa: E731
    # Started side by side, a joiner may come first: it must still join, not bootstrap.
    for n in (cluster[2], cluster[0], cluster[1]):
        target.start(n)
    assert [bootstrapped(n) for n in cluster] == [True, False, False]
    assert waited == ["n3", "n2"]
    # One node killed and restarted rejoins the others.
    cluster[1].remote.killed = True
    target.start(cluster[1])
    assert not bootstrapped(cluster[1])
    # Every node killed: the first restarted bootstraps again, the rest join it.
    for n in cluster:
        n.remote.killed = True
    target.start(cluster[2])
    target.start(cluster[0])
    assert bootstrapped(cluster[2]) and not bootstrapped(cluster[0])
