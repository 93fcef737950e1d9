"""MariaDB (Debian's mariadb-server, 10.11) as a tectonic Target: one server per node, each
with its own data dir, never the system service.

Under each node's directory:

  my.cnf        the server's whole configuration (--defaults-file: nothing else is read)
  data/         the data dir, made by mariadb-install-db at setup (a restart recovers it)
  run/          the server's socket, its own pid file and temporary files; TCP on the
                node's own address only
  mariadb.log   the server's output (kept: log_files collects it)
  mariadb.pid   the pid tectonic spawned

target_opts (all optional):
  snapshot_isolation        innodb_snapshot_isolation (default false, 10.11's default):
                            on, a repeatable-read transaction that writes a row changed
                            since its snapshot fails ("record has changed since last read")
  flush_log_at_trx_commit   innodb_flush_log_at_trx_commit, 0, 1 or 2 (default 1)
  port                      the server's TCP port (default 3306)

The schema (targets/sql/client.py) and the `tectonic` user are made once the server is up.
"""
from __future__ import annotations

import os

from core.errors import SetupError, SpecError
from harness.protocols import HealthCheck, LogFiles, Option, Target
from targets.daemon import Daemon
from targets.mariadb.dialect import DATABASE, PASSWORD, USER, MariaDBDialect
from targets.sql import check_spec, last_line
from targets.sql.client import SqlTxnClient, wait_until
from workloads.sql import sql_options

SERVER = "/usr/sbin/mariadbd"
INSTALL_DB = "/usr/bin/mariadb-install-db"
CLIENT = "/usr/bin/mariadb"
# The server switches to Debian's mysql user, as a packaged one does: then what it starts
# (Galera's rsync state transfer) runs as that user too and may write the data dir.
RUN_AS = "mysql"
# Small enough for several clusters on one machine; the workloads' tables are tiny.
INNODB_SIZING = ("innodb_buffer_pool_size = 64M", "innodb_log_file_size = 16M")


class MariaDBTarget(Daemon, Target, HealthCheck, LogFiles):
    name = "mariadb"
    options = (
        Option("snapshot_isolation", bool, False, "innodb_snapshot_isolation"),
        Option("flush_log_at_trx_commit", int, 1, "innodb_flush_log_at_trx_commit: 0, 1 or 2"),
        Option("port", int, 3306, "the server's TCP port"),
    )
    features = frozenset({"list-append", "rw-register"})

    @classmethod
    def validate(cls, spec: dict) -> None:
        super().validate(spec)
        check_spec(cls, spec)

    def __init__(self, spec: dict, nodes: list, where: str = "spec"):
        """Checks the spec (SpecError naming `where`) and does nothing else: a target
        built for placeholder nodes checks a spec before any cluster exists."""
        super().__init__(spec, nodes)
        self._init_options(self.opts, where)
        self.sql_options = sql_options(spec, self.name, "repeatable-read", where)
        self._check_node_count(where)
        self.process_mark = "my.cnf"  # with the node's dir: --defaults-file=<dir>/my.cnf
        self._pids: dict[str, int] = {}

    def _init_options(self, opts: dict, where: str) -> None:
        self.snapshot_isolation = opts.get("snapshot_isolation", False)
        self.flush_log = opts.get("flush_log_at_trx_commit", 1)
        if self.flush_log not in (0, 1, 2):
            raise SpecError(f"{where}: {self.name}: target_opts.flush_log_at_trx_commit must be "
                            f"0, 1 or 2, got {self.flush_log}")
        self.port = opts.get("port", 3306)

    def _check_node_count(self, where: str) -> None:
        if len(self.nodes) != 1:
            raise SpecError(f"{where}: target mariadb is a single server: --node-count 1 "
                            f"(got {len(self.nodes)}; --target galera is the cluster)")

    # ---- paths ----------------------------------------------------------------------------

    def data_dir(self, node) -> str:
        return os.path.join(node.dir, "data")

    def _cnf(self, node) -> str:
        return os.path.join(node.dir, "my.cnf")

    def _run_dir(self, node) -> str:
        return os.path.join(node.dir, "run")

    def _socket(self, node) -> str:
        return os.path.join(self._run_dir(node), "mysqld.sock")

    def _log(self, node) -> str:
        return os.path.join(node.dir, "mariadb.log")

    def _tmp(self, node) -> str:
        return os.path.join(self._run_dir(node), "tmp")

    def _pidfile(self, node) -> str:
        return os.path.join(node.dir, "mariadb.pid")

    def config(self, node) -> list[str]:
        """The [mariadbd] section's lines for this node."""
        return [
            f"datadir = {self.data_dir(node)}",
            f"socket = {self._socket(node)}",
            f"pid-file = {os.path.join(self._run_dir(node), 'mariadbd.pid')}",
            f"tmpdir = {self._tmp(node)}",
            f"bind-address = {node.address}",
            f"port = {self.port}",
            f"user = {RUN_AS}",
            "skip-name-resolve",
            "performance_schema = OFF",
            "max_connections = 500",
            *INNODB_SIZING,
            f"innodb_flush_log_at_trx_commit = {self.flush_log}",
            f"innodb_snapshot_isolation = {'ON' if self.snapshot_isolation else 'OFF'}",
        ]

    # ---- lifecycle ------------------------------------------------------------------------

    def setup(self, node) -> None:
        self._install(node)
        self.start(node)

    def _install(self, node) -> None:
        for binary in (SERVER, INSTALL_DB, CLIENT):
            if node.remote.exec(["test", "-x", binary], check=False).returncode != 0:
                raise SetupError(f"{self.name}: no {binary} on {node.name} "
                                 f"(apt-get install mariadb-server; ./setup.sh does)")
        if node.remote.exec(["id", "-u", RUN_AS], check=False).returncode != 0:
            raise SetupError(f"{self.name}: no user {RUN_AS!r} on {node.name} to run the server "
                             f"as (Debian's mariadb-server package creates it)")
        node.remote.exec(["mkdir", "-p", node.dir])
        # Traversal only (o+x), so the server's user reaches its directories under it.
        node.remote.exec(["chmod", "o+x", node.dir, os.path.dirname(node.dir)])
        for path in (self.data_dir(node), self._run_dir(node), self._tmp(node)):
            node.remote.exec(["install", "-d", "-m", "750", "-o", RUN_AS, "-g", RUN_AS, path])
        self._write_config(node)
        if node.remote.exec(["test", "-d", os.path.join(self.data_dir(node), "mysql")],
                            check=False).returncode == 0:
            return
        # The system tables only, without the node's configuration (no replication while
        # bootstrapping); the redo log's size must be the one the server runs with.
        made = node.remote.exec([INSTALL_DB, "--no-defaults", f"--datadir={self.data_dir(node)}",
                                 f"--tmpdir={self._tmp(node)}", f"--user={RUN_AS}",
                                 "--auth-root-authentication-method=normal", "--skip-test-db",
                                 "--skip-name-resolve",
                                 *(f"--{line.replace(' = ', '=')}" for line in INNODB_SIZING)],
                                timeout=120, check=False)
        if made.returncode != 0:
            raise SetupError(f"{self.name}: mariadb-install-db failed on {node.name}: "
                             f"{last_line(made.stderr)}")

    def _write_config(self, node) -> None:
        text = "[mariadbd]\n" + "\n".join(self.config(node)) + "\n"
        node.remote.exec(["tee", self._cnf(node)], input=text)

    def start(self, node) -> None:
        if self._running_pid(node) is not None:
            return
        self._pids[node.name] = node.remote.spawn(self.argv(node), log=self._log(node),
                                                  pidfile=self._pidfile(node))

    def argv(self, node) -> list[str]:
        return [SERVER, f"--defaults-file={self._cnf(node)}"]

    def wait_healthy(self, nodes: list, timeout: float) -> None:
        """The server answers on its socket; then the user, database and tables exist."""
        for node in nodes:
            wait_until(lambda: self._ping(node), timeout, f"{self.name} on {node.name}")
        self._make_schema(nodes[0])

    def teardown(self, node) -> None:
        super().teardown(node)
        node.remote.exec(["rm", "-rf", self._cnf(node), self._run_dir(node)], check=False)

    def log_files(self, node) -> list[str]:
        return [self._log(node)]

    def client(self, node) -> SqlTxnClient:
        return SqlTxnClient(MariaDBDialect(self.port, self.sql_options), self.sql_options)

    # ---- helpers --------------------------------------------------------------------------

    def sql(self, node, statements: str, timeout: float = 10.0):
        """Run statements as root over the node's socket (through its Remote)."""
        return node.remote.exec([CLIENT, "--no-defaults", "-S", self._socket(node), "-u", "root",
                                 "--batch", "--skip-column-names", "-e", statements],
                                timeout=timeout, check=False)

    def _ping(self, node) -> str | None:
        if self._running_pid(node) is None:
            return f"the server is not running (see {self._log(node)})"
        res = self.sql(node, "SELECT 1", timeout=5)
        return None if res.returncode == 0 else (res.stderr.strip() or "no answer")

    def _make_schema(self, node) -> None:
        tables = "; ".join(MariaDBDialect.create_tables)
        res = self.sql(node, f"CREATE DATABASE IF NOT EXISTS {DATABASE}; "
                             f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; "
                             f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'%'; "
                             f"USE {DATABASE}; {tables}", timeout=30)
        if res.returncode != 0:
            raise SetupError(f"{self.name}: creating the schema on {node.name} failed: "
                             f"{res.stderr.strip()[:300]}")

