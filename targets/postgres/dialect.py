"""PostgreSQL's SQL, through psycopg 3."""
from __future__ import annotations

import contextlib
import math
import os
import socket
import threading

from targets.sql.client import Dialect
from workloads.sql import SqlOptions

USER = DATABASE = "postgres"
# SQLSTATEs that abort the transaction for certain, also at COMMIT: serialization_failure
# (40001: SERIALIZABLE's dangerous structures, REPEATABLE READ's concurrent updates) and
# deadlock_detected (40P01).
ABORTED = {"40001", "40P01"}


class PostgresDialect(Dialect):
    name = "postgres"
    create_tables = (
        "CREATE TABLE IF NOT EXISTS lists (id INT PRIMARY KEY, val TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS registers (id INT PRIMARY KEY, val INT)",
    )
    append_concat = ("INSERT INTO lists AS t (id, val) VALUES (%s, %s) "
                     "ON CONFLICT (id) DO UPDATE SET val = t.val || ',' || %s")
    write_register = ("INSERT INTO registers (id, val) VALUES (%s, %s) "
                      "ON CONFLICT (id) DO UPDATE SET val = excluded.val")

    def __init__(self, port: int, options: SqlOptions):
        self.port = port
        self.options = options

    def connect(self, node, timeout: float):
        import psycopg
        return psycopg.connect(host=node.address, port=self.port, user=USER, dbname=DATABASE,
                               autocommit=True, connect_timeout=max(1, math.ceil(timeout)))

    def begin(self, cursor) -> None:
        cursor.execute(f"BEGIN ISOLATION LEVEL {self.options.isolation_sql}")

    @contextlib.contextmanager
    def bounded(self, conn, timeout: float):
        # libpq waits for an answer without a limit (a paused server never gives one):
        # past the deadline the socket is shut down, so the waiting call fails at once.
        timer = threading.Timer(timeout, _shut_down, args=(conn,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def aborted_for_certain(self, error: Exception) -> bool:
        return getattr(error, "sqlstate", None) in ABORTED

    def connection_lost(self, error: Exception) -> bool:
        # The server reports its errors with a SQLSTATE and keeps the connection; an error
        # without one came from the connection itself (closed, reset, shut down by us).
        return getattr(error, "sqlstate", None) is None


def _shut_down(conn) -> None:
    try:
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as s:
            s.shutdown(socket.SHUT_RDWR)
    except Exception:  # noqa: BLE001 - a connection already closed needs no shutting down
        pass
