"""PostgreSQL (Debian's postgresql-15) as a tectonic Target: one server, its own cluster in
the node's directory, never the system service.

The server refuses to run as root, so initdb and the server run as the `postgres` user
(Debian's package creates it), switched to with setpriv (which execs: the pid tectonic
spawned is the postmaster's). The node's directory and its parent get o+x (traversal
only) so that user reaches its data dir.

Under each node's directory:

  data/          the cluster (initdb at setup, owned by postgres; a restart after a kill
                 runs crash recovery from its WAL); also the server's unix socket
  postgres.log   the server's output (kept: log_files collects it)
  postgres.pid   the postmaster's pid

The postmaster leads a process group of its own (spawned in a new session) holding every
backend: kill, pause and resume signal the whole group, so no orphaned backend keeps the
old shared memory (a restart would refuse to start) or runs on while "paused".

target_opts (all optional):
  port                 the server's TCP port on the node's address (default 5432)
  synchronous_commit   on (default) or off: off acknowledges commits before their WAL is
                       flushed, so a kill may lose acknowledged transactions
"""
from __future__ import annotations

import os
import signal

from core.errors import SetupError, SpecError
from harness.protocols import HealthCheck, LogFiles, Option, Target
from targets.daemon import Daemon
from targets.sql import check_spec, last_line
from targets.postgres.dialect import PostgresDialect
from targets.sql.client import SqlTxnClient, wait_until
from workloads.sql import sql_options

BIN = "/usr/lib/postgresql/15/bin"
RUN_AS = "postgres"


class PostgresTarget(Daemon, Target, HealthCheck, LogFiles):
    name = "postgres"
    options = (
        Option("port", int, 5432, "the server's TCP port on the node's address"),
        Option("synchronous_commit", bool, True, "off acknowledges commits before their WAL is flushed"),
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
        self.port = self.opts["port"]
        self.synchronous_commit = self.opts["synchronous_commit"]
        self.sql_options = sql_options(spec, self.name, "read-committed", where)
        if len(nodes) != 1:
            raise SpecError(f"{where}: target postgres is a single server: --node-count 1 "
                            f"(got {len(nodes)})")
        self._pids: dict[str, int] = {}
        self.process_mark = ""  # set per node: the data dir is on the postmaster's command line

    def data_dir(self, node) -> str:
        return os.path.join(node.dir, "data")

    def _log(self, node) -> str:
        return os.path.join(node.dir, "postgres.log")

    def _pidfile(self, node) -> str:
        return os.path.join(node.dir, "postgres.pid")

    def _as_postgres(self, argv: list[str]) -> list[str]:
        return ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--init-groups", *argv]

    def argv(self, node) -> list[str]:
        settings = {
            "listen_addresses": node.address, "port": str(self.port),
            "unix_socket_directories": self.data_dir(node),
            "max_connections": "200", "shared_buffers": "32MB",
            "synchronous_commit": "on" if self.synchronous_commit else "off",
            "max_prepared_transactions": "0", "logging_collector": "off",
        }
        flags = [x for k, v in settings.items() for x in ("-c", f"{k}={v}")]
        return self._as_postgres([f"{BIN}/postgres", "-D", self.data_dir(node), *flags])

    # ---- lifecycle ------------------------------------------------------------------------

    def setup(self, node) -> None:
        self._install(node)
        self.start(node)

    def _install(self, node) -> None:
        self.process_mark = self.data_dir(node)
        for binary in ("postgres", "initdb"):
            if node.remote.exec(["test", "-x", f"{BIN}/{binary}"], check=False).returncode != 0:
                raise SetupError(f"postgres: no {BIN}/{binary} on {node.name} "
                                 f"(apt-get install postgresql-15; ./setup.sh does)")
        if node.remote.exec(["id", "-u", RUN_AS], check=False).returncode != 0:
            raise SetupError(f"postgres: no user {RUN_AS!r} on {node.name} to run the server as "
                             f"(Debian's postgresql package creates it)")
        if node.remote.exec(["id", "-u"]).stdout.strip() != "0":
            raise SetupError("postgres: the server must run as user postgres, and switching to "
                             "it needs root (run tectonic as root)")
        node.remote.exec(["mkdir", "-p", node.dir])
        node.remote.exec(["chmod", "o+x", node.dir, os.path.dirname(node.dir)])
        data = self.data_dir(node)
        if node.remote.exec(["test", "-f", os.path.join(data, "PG_VERSION")],
                            check=False).returncode == 0:
            return
        node.remote.exec(["install", "-d", "-m", "700", "-o", RUN_AS, "-g", RUN_AS, data])
        made = node.remote.exec(self._as_postgres([f"{BIN}/initdb", "-D", data, "-U", "postgres",
                                                   "--auth=trust", "-E", "UTF8", "--locale=C",
                                                   "--no-sync"]), timeout=120, check=False)
        if made.returncode != 0:
            raise SetupError(f"postgres: initdb failed on {node.name}: {last_line(made.stderr)}")
        # Clients come from the controller's address on the cluster's own subnet.
        node.remote.exec(["tee", "-a", os.path.join(data, "pg_hba.conf")],
                         input="host all all all trust\n")

    def start(self, node) -> None:
        self.process_mark = self.data_dir(node)
        if self._running_pid(node) is not None:
            return
        self._pids[node.name] = node.remote.spawn(self.argv(node), log=self._log(node),
                                                  pidfile=self._pidfile(node))

    def wait_healthy(self, nodes: list, timeout: float) -> None:
        node = nodes[0]
        wait_until(lambda: self._ping(node), timeout, f"postgres on {node.name}")

    def kill(self, node) -> None:
        self._signal_group(node, signal.SIGKILL)
        self._wait_gone(node, 5.0, 0.02)

    def pause(self, node) -> None:
        self._signal_group(node, signal.SIGSTOP)

    def resume(self, node) -> None:
        self._signal_group(node, signal.SIGCONT)

    def teardown(self, node) -> None:
        pid = self._running_pid(node)
        if pid is not None:
            self._signal_group(node, signal.SIGCONT)
            node.remote.signal(pid, signal.SIGINT)  # "fast" shutdown: abort the sessions
            if not self._wait_gone(node, 5.0, 0.05):
                self._signal_group(node, signal.SIGKILL)
        node.remote.exec(["rm", "-rf", self.data_dir(node), self._pidfile(node)], check=False)
        self._pids.pop(node.name, None)

    def log_files(self, node) -> list[str]:
        return [self._log(node)]

    def client(self, node) -> SqlTxnClient:
        return SqlTxnClient(PostgresDialect(self.port, self.sql_options), self.sql_options)

    # ---- helpers --------------------------------------------------------------------------

    def _signal_group(self, node, sig: int) -> None:
        pid = self._running_pid(node)
        if pid is not None:
            # The postmaster's group id is its pid: it was spawned as a session leader.
            node.remote.exec(["kill", f"-{sig}", "--", f"-{pid}"], check=False)

    def _ping(self, node) -> str | None:
        if self._running_pid(node) is None:
            return f"the server is not running (see {self._log(node)})"
        dialect = PostgresDialect(self.port, self.sql_options)
        try:
            conn = dialect.connect(node, 2.0)
        except Exception as e:  # noqa: BLE001 - not up yet: say why and try again
            return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        try:
            for statement in PostgresDialect.create_tables:
                conn.execute(statement)
        finally:
            conn.close()
        return None
