"""MariaDB's SQL (also Galera's), through PyMySQL."""
from __future__ import annotations

from targets.sql.client import Dialect
from workloads.sql import SqlOptions

USER = PASSWORD = DATABASE = "tectonic"

# Server errors after which the transaction is rolled back for certain: a deadlock (also
# Galera's certification failure at COMMIT), a lock wait timeout, and "record has changed
# since last read" (innodb_snapshot_isolation's write-write conflict).
ABORTED = {1213, 1205, 1020}
# Client-side codes for a connection that is gone (2006 gone away, 2013 lost during a
# query, incl. our read timeout, 2014 out of sync, 2003 cannot connect, 2055 lost at ...).
CONNECTION_LOST = {2003, 2006, 2013, 2014, 2055}


class MariaDBDialect(Dialect):
    name = "mariadb"
    create_tables = (
        "CREATE TABLE IF NOT EXISTS lists (id INT PRIMARY KEY, val TEXT NOT NULL) ENGINE=InnoDB",
        "CREATE TABLE IF NOT EXISTS registers (id INT PRIMARY KEY, val INT) ENGINE=InnoDB",
    )
    append_concat = ("INSERT INTO lists (id, val) VALUES (%s, %s) "
                     "ON DUPLICATE KEY UPDATE val = CONCAT(val, ',', %s)")
    write_register = ("INSERT INTO registers (id, val) VALUES (%s, %s) "
                      "ON DUPLICATE KEY UPDATE val = VALUES(val)")

    def __init__(self, port: int, options: SqlOptions):
        self.port = port
        self.options = options

    def connect(self, node, timeout: float):
        import pymysql
        return pymysql.connect(
            host=node.address, port=self.port, user=USER, password=PASSWORD,
            database=DATABASE, autocommit=True, connect_timeout=timeout,
            read_timeout=timeout, write_timeout=timeout,
            # The traffic stays inside the cluster's namespaces; and a TLS context costs
            # 0.3 s of CPU per connection (loading the system's certificates).
            ssl_disabled=True,
            # The session's level applies to every START TRANSACTION that follows.
            init_command=f"SET SESSION TRANSACTION ISOLATION LEVEL {self.options.isolation_sql}")

    def begin(self, cursor) -> None:
        cursor.execute("START TRANSACTION")

    def aborted_for_certain(self, error: Exception) -> bool:
        return _code(error) in ABORTED

    def connection_lost(self, error: Exception) -> bool:
        import pymysql
        return (isinstance(error, (pymysql.err.InterfaceError, OSError))
                or _code(error) in CONNECTION_LOST)


def _code(error: Exception) -> int | None:
    args = getattr(error, "args", ())
    return args[0] if args and isinstance(args[0], int) else None
