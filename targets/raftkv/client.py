"""raftkv's Client for tectonic's workloads: one TCP connection, one JSON line per request.

Maps tectonic's ops onto raftkv transactions (PROTOCOL.md) and the server's answers onto
completions. What the client itself can conclude: a connection it could not open means the
request was never sent (fail); trouble after sending means it may have happened (info).
"""
from __future__ import annotations

import json
import socket
import time

_encode = json.JSONEncoder(separators=(",", ":")).encode


def ops_for(op: dict) -> list:
    """The raftkv transaction for a tectonic op; ValueError names what is unsupported."""
    f, value = op.get("f"), op.get("value")
    if f == "txn":
        return [list(m) for m in value]
    if f == "open-accounts":
        return [["w", account, balance] for account, balance in value]
    if f == "read-balances":
        return [["r", account, None] for account, _ in value]
    key = value[0]
    if f == "read":
        return [["r", key, None]]
    if f == "write":
        return [["w", key, value[1]]]
    if f == "cas":
        old, new = value[1]
        return [["cas", key, old, new]]
    if f == "add":
        return [["append", key, value[1]]]
    if f == "read-list":
        return [["rl", key, None]]
    if f == "increment":
        return [["incr", key, value[1]]]
    raise ValueError(f"raftkv cannot run op f={f!r} (known: read, write, cas, add, "
                     f"read-list, increment, txn, open-accounts, read-balances, transfer)")


def completion_value(op: dict, result: list):
    f, value = op["f"], op["value"]
    if f == "txn":
        return result
    if f == "read-balances":
        return [[account, balance] for _, account, balance in result]
    if f in ("read", "read-list"):
        return [value[0], result[0][2]]
    return value


class RaftKVClient:
    """A Client (harness/protocols.py) for one worker, talking to one node."""

    def __init__(self, port: int, connect_timeout: float = 1.0):
        self.port = port
        self.connect_timeout = connect_timeout
        self.address: str | None = None
        self._sock: socket.socket | None = None
        self._file = None
        self._next_id = 0

    def open(self, node) -> None:
        self.address = node.address

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._file.close()
                self._sock.close()
            finally:
                self._sock = self._file = None

    def request(self, body: dict, timeout: float) -> dict:
        """Send one request; return the server's outcome dict (type, value, error)."""
        if self.address is None:
            raise RuntimeError("RaftKVClient.request before open")
        if self._sock is None:
            try:
                sock = socket.create_connection((self.address, self.port),
                                                timeout=min(timeout, self.connect_timeout))
            except OSError as e:
                return {"type": "fail", "error": f"connect: {e.strerror or e}"}
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock, self._file = sock, sock.makefile("rb")
        self._next_id += 1
        req_id = self._next_id
        line = _encode({"id": req_id, **body}).encode() + b"\n"
        try:
            self._sock.settimeout(timeout)
            self._sock.sendall(line)
            while True:
                reply = self._file.readline()
                if not reply:
                    raise ConnectionError("connection closed by the server")
                answer = json.loads(reply)
                if answer.get("id") == req_id:
                    return answer
        except (OSError, ValueError) as e:
            # Sent (or maybe sent): whatever the server did stands. A fresh connection
            # next time keeps a late answer from being taken for another request's.
            self.close()
            kind = "timeout" if isinstance(e, socket.timeout) else f"connection: {e}"
            return {"type": "info", "error": kind}

    def invoke(self, op: dict, timeout: float) -> dict:
        if op.get("f") == "transfer":
            return self._transfer(op, timeout)
        answer = self.request({"ops": ops_for(op)}, timeout)
        if answer["type"] == "ok":
            return {"type": "ok", "value": completion_value(op, answer["value"])}
        return {"type": answer["type"], "value": op.get("value"), "error": answer.get("error")}

    def _transfer(self, op: dict, timeout: float) -> dict:
        """A bank transfer as a client-side transaction: read both balances, then move the
        money with a compare-and-set of both, so it applies only if neither changed since.
        The read changes nothing, so any trouble before the second request is a `fail`."""
        deadline = time.monotonic() + timeout
        source, dest, amount = op["value"]["from"], op["value"]["to"], op["value"]["amount"]
        read = self.request({"ops": [["r", source, None], ["r", dest, None]]}, timeout)
        if read["type"] != "ok":
            return {"type": "fail", "error": f"reading the balances: {read.get('error')}"}
        (_, _, have), (_, _, other) = read["value"]
        if have is None or other is None:
            return {"type": "fail", "error": "no such account"}
        if have < amount:
            return {"type": "fail", "error": "insufficient funds"}
        left = deadline - time.monotonic()
        if left <= 0:
            return {"type": "fail", "error": "timeout before the transfer was sent"}
        answer = self.request({"ops": [["cas", source, have, have - amount],
                                       ["cas", dest, other, other + amount]]}, left)
        if answer["type"] == "ok":
            return {"type": "ok", "value": op["value"]}
        return {"type": answer["type"], "value": op["value"], "error": answer.get("error")}

    def status(self, timeout: float = 1.0) -> dict | None:
        """The node's view of the cluster (state, term, leader, time, ...), or None."""
        answer = self.request({"status": True}, timeout)
        return answer["value"] if answer["type"] == "ok" else None
