"""tectonic's `txn` ops as SQL transactions, for any DB-API driver (PyMySQL, psycopg).

Tables (Jepsen's shapes): `lists (id INT PRIMARY KEY, val TEXT)` for list-append, the list
a comma-separated text; `registers (id INT PRIMARY KEY, val INT)` for rw-register. A key is
a row; a missing row reads as None (the initial state).

Micro-ops, in order, inside one transaction at the chosen isolation level:

  ["r", k, None]       SELECT val ... WHERE id = k
  ["w", k, v]          upsert of v
  ["append", k, v]     concat: one upsert that concatenates in the database;
                       read-modify-write: SELECT, extend in the client, UPDATE (or INSERT)

What a failure means (the Client contract: `fail` only when it certainly did not happen):

- before COMMIT is sent, any error: the transaction is rolled back (the server aborts an
  open transaction when its connection drops, too), so `fail`;
- at COMMIT, an error the server answered that aborts the transaction (a serialization
  failure, a deadlock: the dialect lists them) is `fail`; anything else at COMMIT (a lost
  connection, a timeout, an error we cannot place) is `info`: it may have committed.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Callable

from core.errors import SetupError
from workloads.sql import SqlOptions


class Dialect:
    """What differs between databases: statements, the driver, and which errors abort a
    transaction for certain. Statements take %s parameters (both drivers' style)."""

    name: str
    create_tables: tuple[str, ...]
    append_concat: str    # params (k, v, v)
    write_register: str   # params (k, v)
    read_list = "SELECT val FROM lists WHERE id = %s"
    read_register = "SELECT val FROM registers WHERE id = %s"
    update_list = "UPDATE lists SET val = %s WHERE id = %s"
    insert_list = "INSERT INTO lists (id, val) VALUES (%s, %s)"

    def begin(self, cursor) -> None:
        """Start a transaction at the options' isolation level."""
        raise NotImplementedError

    def connect(self, node, timeout: float):
        """An open DB-API connection to the node's server, every read and write bounded by
        `timeout` seconds."""
        raise NotImplementedError

    def bounded(self, conn, timeout: float):
        """A context manager bounding everything done on `conn` inside it by `timeout`
        seconds, for drivers whose reads cannot time out on their own. PyMySQL's can."""
        return contextlib.nullcontext()

    def aborted_for_certain(self, error: Exception) -> bool:
        """Whether a COMMIT that raised `error` certainly did not commit."""
        raise NotImplementedError

    def connection_lost(self, error: Exception) -> bool:
        """Whether the connection is unusable after `error` (so the next op reconnects)."""
        raise NotImplementedError


class SqlTxnClient:
    """A Client (harness/protocols.py) running `txn` ops on one node's SQL server."""

    def __init__(self, dialect: Dialect, options: SqlOptions):
        self.dialect = dialect
        self.options = options
        self.node = None
        self.conn = None
        self.conn_timeout: float | None = None

    def open(self, node) -> None:
        """Connects lazily, at the first invoke, with that call's timeout for every read
        and write (a connection that cannot be made is then that op's certain failure)."""
        self.node = node

    def close(self) -> None:
        self._drop()

    def invoke(self, op: dict, timeout: float) -> dict:
        if op.get("f") != "txn":
            return {"type": "fail", "value": op.get("value"),
                    "error": f"{self.dialect.name} runs txn ops only, not f={op.get('f')!r}"}
        mops = op.get("value") or []
        if self.conn is None or self.conn_timeout != timeout:
            try:
                self._connect(timeout)
            except Exception as e:  # noqa: BLE001 - nothing was sent: a certain failure
                return {"type": "fail", "value": mops, "error": f"connect: {_describe(e)}"}
        with self.dialect.bounded(self.conn, timeout):
            return self._run(mops)

    def _run(self, mops: list) -> dict:
        cursor = self.conn.cursor()
        try:
            self.dialect.begin(cursor)
            done = [self._mop(cursor, mop) for mop in mops]
        except Exception as e:  # noqa: BLE001 - COMMIT was never sent: nothing took effect
            self._rollback(e)
            return {"type": "fail", "value": mops, "error": _describe(e)}
        try:
            cursor.execute("COMMIT")
        except Exception as e:  # noqa: BLE001 - classified: aborted for certain, or unknown
            certain = self.dialect.aborted_for_certain(e)
            self._rollback(e)
            if not certain:
                self._drop()
            return {"type": "fail" if certain else "info", "value": mops,
                    "error": f"commit: {_describe(e)}"}
        return {"type": "ok", "value": done}

    # ---- micro-ops ----------------------------------------------------------------------

    def _mop(self, cursor, mop) -> list:
        f, k, v = mop
        d = self.dialect
        if f == "r":
            if self.options.workload == "list-append":
                return ["r", k, _parse_list(_one(cursor, d.read_list, (k,)))]
            return ["r", k, _one(cursor, d.read_register, (k,))]
        if f == "w":
            cursor.execute(d.write_register, (k, v))
            return ["w", k, v]
        if f == "append":
            if self.options.append == "concat":
                cursor.execute(d.append_concat, (k, str(v), str(v)))
            else:
                current = _one(cursor, d.read_list, (k,))
                if current is None:
                    cursor.execute(d.insert_list, (k, str(v)))
                else:
                    cursor.execute(d.update_list, (f"{current},{v}", k))
            return ["append", k, v]
        raise ValueError(f"unknown micro-op {mop!r}")

    # ---- the connection -----------------------------------------------------------------

    def _connect(self, timeout: float) -> None:
        self._drop()
        self.conn = self.dialect.connect(self.node, timeout)
        self.conn_timeout = timeout

    def _rollback(self, error: Exception) -> None:
        if self.conn is None:
            return
        if self.dialect.connection_lost(error):
            self._drop()
            return
        try:
            self.conn.cursor().execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - a connection that cannot roll back is dropped
            self._drop()

    def _drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone
                pass


def _one(cursor, sql: str, params: tuple) -> Any:
    cursor.execute(sql, params)
    row = cursor.fetchone()
    return None if row is None else row[0]


def _parse_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    return [int(x) for x in text.split(",")] if text else []


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}".replace("\n", " ")[:300]


def wait_until(probe: Callable[[], str | None], timeout: float, what: str) -> None:
    """Call `probe` until it returns None (ready) or `timeout` passes; then raise
    SetupError (a server that never came up: one line for the user) with `what` and the
    last problem the probe named."""
    deadline = time.monotonic() + timeout
    problem = "not tried"
    while time.monotonic() < deadline:
        problem = probe()
        if problem is None:
            return
        time.sleep(0.2)
    raise SetupError(f"{what} not ready after {timeout:.0f}s: {problem}")
