"""tectonic's Client for the http-kv protocol (README, "A process from YAML").

The protocol, from the server's side:

  GET  /kv/{key}                          200 {"value": V}; 404: the key has no value
  PUT  /kv/{key}       {"value": V}       200: written
  POST /kv/{key}/cas   {"from": A, "to": B}
                                          200: swapped; 409: the value was not A;
                                          404: the key has no value

Keys are written in the path as decimal text; values are any JSON. What an answer means:
2xx happened; every 4xx is a definite failure, a promise that the request changed nothing
(409, 404 above; also e.g. 421 or 429 for "not now, nothing done"); any 5xx, a timeout or a
connection lost after the request was sent may or may not have taken effect (info). A
connection that cannot be opened means nothing was sent (fail).
"""
from __future__ import annotations

import http.client
import json
import socket


def request_for(op: dict) -> tuple[str, str, dict | None]:
    """(method, path, JSON body) for a tectonic op; ValueError names what is unsupported."""
    f, value = op.get("f"), op.get("value")
    if f == "read":
        return "GET", f"/kv/{value[0]}", None
    if f == "write":
        return "PUT", f"/kv/{value[0]}", {"value": value[1]}
    if f == "cas":
        old, new = value[1]
        return "POST", f"/kv/{value[0]}/cas", {"from": old, "to": new}
    raise ValueError(f"the http-kv protocol has no op f={f!r} (it has read, write, cas)")


def completion(op: dict, status: int, body: bytes) -> dict:
    value = op["value"]
    if op["f"] == "read" and status == 404:
        return {"type": "ok", "value": [value[0], None]}
    if 200 <= status < 300:
        if op["f"] == "read":
            try:
                return {"type": "ok", "value": [value[0], json.loads(body)["value"]]}
            except (ValueError, KeyError, TypeError):
                return {"type": "info", "value": value, "error": f"unreadable read answer {body[:100]!r}"}
        return {"type": "ok", "value": value}
    error = f"HTTP {status}: {body[:200].decode(errors='replace').strip()}"
    return {"type": "fail" if 400 <= status < 500 else "info", "value": value, "error": error}


class HttpKVClient:
    """A Client (harness/protocols.py) for one worker: one keep-alive connection per node."""

    def __init__(self, port: int, connect_timeout: float = 1.0):
        self.port = port
        self.connect_timeout = connect_timeout
        self.address: str | None = None
        self._conn: http.client.HTTPConnection | None = None

    def open(self, node) -> None:
        self.address = node.address

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def invoke(self, op: dict, timeout: float) -> dict:
        method, path, body = request_for(op)
        if self._conn is None:
            conn = http.client.HTTPConnection(self.address, self.port, timeout=min(timeout, self.connect_timeout))
            try:
                conn.connect()
            except OSError as e:  # nothing sent: certainly did not happen
                return {"type": "fail", "value": op["value"], "error": f"connect: {e.strerror or e}"}
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        try:
            self._conn.sock.settimeout(timeout)
            data = None if body is None else json.dumps(body).encode()
            self._conn.request(method, path, body=data,
                               headers={"Content-Type": "application/json"} if data else {})
            answer = self._conn.getresponse()
            done = completion(op, answer.status, answer.read())
            if answer.will_close:
                self.close()
            return done
        except (OSError, http.client.HTTPException) as e:
            # Sent (or maybe sent): whatever the server did stands.
            self.close()
            error = "timeout" if isinstance(e, socket.timeout) else f"connection: {e}"
            return {"type": "info", "value": op["value"], "error": error}
