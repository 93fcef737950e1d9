"""tectonic's Client for a Maelstrom node: one TCP connection to the node's shim.

Maps tectonic's ops onto Maelstrom's lin-kv and txn-list-append requests and the node's
answers onto completions, with the meaning Maelstrom's protocol gives its error codes
(doc/protocol.md, "Errors"): every code is definite (the operation certainly did not take
place: fail) except 0 (timeout) and 13 (crash), and codes a node makes up itself (1000 and
above), which may have taken effect (info). Two codes are answers rather than errors:
key-does-not-exist (20) on a read is a read of nothing (ok, null), and on a cas a definite
failure, as is precondition-failed (22). No answer within the timeout is info.
"""
from __future__ import annotations

import json
import socket

TIMEOUT, CRASH, KEY_DOES_NOT_EXIST = 0, 13, 20
DEFINITE_CODES = {1: "node-not-found", 10: "not-supported", 11: "temporarily-unavailable",
                  12: "malformed-request", 14: "abort", 20: "key-does-not-exist",
                  21: "key-already-exists", 22: "precondition-failed", 30: "txn-conflict"}
INDEFINITE_CODES = {TIMEOUT: "timeout", CRASH: "crash"}


def request_body(op: dict) -> dict:
    """The Maelstrom request body for a tectonic op; ValueError names what is unsupported."""
    f, value = op.get("f"), op.get("value")
    if f == "txn":
        return {"type": "txn", "txn": [list(m) for m in value]}
    if f == "read":
        return {"type": "read", "key": value[0]}
    if f == "write":
        return {"type": "write", "key": value[0], "value": value[1]}
    if f == "cas":
        old, new = value[1]
        return {"type": "cas", "key": value[0], "from": old, "to": new}
    raise ValueError(f"a Maelstrom node cannot run op f={f!r} (lin-kv: read, write, cas; "
                     f"txn-list-append: txn)")


def completion(op: dict, reply: dict) -> dict:
    """The completion of op given the node's reply body."""
    f, value = op["f"], op["value"]
    if reply.get("type") == "error":
        code = reply.get("code")
        if f == "read" and code == KEY_DOES_NOT_EXIST:
            return {"type": "ok", "value": [value[0], None]}
        name = DEFINITE_CODES.get(code) or INDEFINITE_CODES.get(code) or f"code {code}"
        error = f"{name}: {reply.get('text')}" if reply.get("text") else name
        return {"type": "fail" if code in DEFINITE_CODES else "info", "value": value, "error": error}
    if reply.get("type") != f"{request_body(op)['type']}_ok":
        return {"type": "info", "value": value, "error": f"unexpected reply {reply.get('type')!r}"}
    if f == "read":
        return {"type": "ok", "value": [value[0], reply.get("value")]}
    if f == "txn":
        return {"type": "ok", "value": [list(m) for m in reply.get("txn") or []]}
    return {"type": "ok", "value": value}


class MaelstromClient:
    """A Client (harness/protocols.py) for one worker, talking to one node's shim."""

    def __init__(self, port: int, connect_timeout: float = 1.0):
        self.port = port
        self.connect_timeout = connect_timeout
        self.address: str | None = None
        self._sock: socket.socket | None = None
        self._file = None
        self._msg_ids = 0

    def open(self, node) -> None:
        self.address = node.address

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._file.close()
                self._sock.close()
            finally:
                self._sock = self._file = None

    def invoke(self, op: dict, timeout: float) -> dict:
        body = request_body(op)
        if self._sock is None:
            try:
                sock = socket.create_connection((self.address, self.port),
                                                timeout=min(timeout, self.connect_timeout))
            except OSError as e:  # never sent: certainly did not happen
                return {"type": "fail", "value": op.get("value"), "error": f"connect: {e.strerror or e}"}
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock, self._file = sock, sock.makefile("rb")
        self._msg_ids += 1
        body["msg_id"] = self._msg_ids
        try:
            self._sock.settimeout(timeout)
            self._sock.sendall(json.dumps(body).encode() + b"\n")
            while True:
                line = self._file.readline()
                if not line:
                    raise ConnectionError("the shim closed the connection")
                reply = (json.loads(line) or {}).get("body") or {}
                if reply.get("in_reply_to") == body["msg_id"]:
                    return completion(op, reply)
        except (OSError, ValueError) as e:
            # Sent, so it may have happened. A fresh connection next time is a fresh client
            # id, so a late reply to this request is never taken for another's.
            self.close()
            error = "timeout" if isinstance(e, socket.timeout) else f"connection: {e}"
            return {"type": "info", "value": op.get("value"), "error": error}
