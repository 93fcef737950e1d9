"""One persistent HTTP/1.1 connection to an etcd member's v3 JSON gateway (grpc-gateway).

The gateway speaks protobuf-as-JSON: keys and values are base64, 64-bit integers are
strings, fields at their zero value are left out (a txn whose compare failed has no
`succeeded`; a missing key has no `kvs`). Errors come back as a non-200 status with
{"error", "message", "code"} where code is the gRPC status.

What a caller may conclude from a failed request is decided here, once, for every op:

- `fail` (certainly not done): the connection could not be opened, so nothing was sent;
  or etcd answered with a definite error (a 4xx status: a bad request, a lease not found,
  too many requests, which etcd checks before proposing anything).
- `info` (may have been done): a timeout or reset after sending, a 5xx status, and etcd's
  "request timed out" and "leader changed", which it returns for proposals it may yet
  apply.
"""
from __future__ import annotations

import base64
import http.client
import json
import select
import socket
import time

_encode = json.JSONEncoder(separators=(",", ":")).encode
_HEADERS = {"Content-Type": "application/json"}

# Messages that say the request may still take effect, whatever status carries them.
UNCERTAIN_MESSAGES = ("request timed out", "leader changed", "server stopped")
# Messages that say it certainly did not, even when etcd reports them as a 5xx
# (a lock on an unknown lease is gRPC Unknown, HTTP 500).
DEFINITE_MESSAGES = ("requested lease not found", "too many requests",
                     "duplicate key given in txn request", "required revision has been compacted")


class GatewayError(Exception):
    """A request that did not return 200: `outcome` is "fail" (certainly not done) or
    "info" (may have been done); the message says what happened."""

    def __init__(self, outcome: str, message: str):
        super().__init__(message)
        self.outcome = outcome


def classify(status: int, message: str) -> str:
    """The outcome of an answer with a non-200 status: "fail" or "info"."""
    if any(m in message for m in UNCERTAIN_MESSAGES):
        return "info"
    if any(m in message for m in DEFINITE_MESSAGES):
        return "fail"
    # 408 is a cancelled request (gRPC Canceled): it may have been proposed already.
    return "info" if status >= 500 or status == 408 else "fail"


def b64(data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def number(text) -> int:
    """A 64-bit integer field: a string on the wire, absent (None) when zero."""
    return int(text) if text is not None else 0


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with prefix (etcd's convention)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # every key


class Gateway:
    """Requests to one member over one kept-alive connection; every call has a timeout."""

    def __init__(self, host: str, port: int, connect_timeout: float = 1.0):
        self.host, self.port = host, port
        self.connect_timeout = connect_timeout
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post(self, path: str, body: dict, timeout: float) -> dict:
        """POST body as JSON; return the decoded 200 answer or raise GatewayError."""
        conn = self._connected(timeout)
        try:
            conn.sock.settimeout(timeout)
            conn.request("POST", path, _encode(body).encode(), _HEADERS)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as e:
            # Sent, or perhaps sent: whatever the member did stands. A fresh connection
            # next time, so a late answer is never read as another request's.
            self.close()
            raise GatewayError("info", "timeout" if isinstance(e, TimeoutError)
                               else f"connection lost after sending: {e or type(e).__name__}") from None
        if response.status == 200:
            try:
                return json.loads(raw)
            except ValueError:
                raise GatewayError("info", f"{path}: unreadable answer {raw[:100]!r}") from None
        message = _error_message(raw)
        raise GatewayError(classify(response.status, message),
                           f"{path}: {response.status} {message}")

    def _connected(self, timeout: float) -> http.client.HTTPConnection:
        if self._conn is not None and _closed_by_peer(self._conn.sock):
            # The member closed it (a restart, an idle timeout) before we sent anything
            # on it: reconnecting changes nothing that was under test.
            self.close()
        if self._conn is None:
            conn = http.client.HTTPConnection(self.host, self.port,
                                              timeout=min(timeout, self.connect_timeout))
            try:
                conn.connect()
            except OSError as e:
                conn.close()
                # No connection, so no request: certainly not done.
                raise GatewayError("fail", f"connect {self.host}:{self.port}: "
                                           f"{'timeout' if isinstance(e, TimeoutError) else e.strerror or e}") from None
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn


def _closed_by_peer(sock) -> bool:
    """True when an idle connection has something to read: only an EOF or a reset can be
    there, since every answer was read in full."""
    if sock is None:
        return True
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def _error_message(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace").strip()[:200]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # streaming endpoints wrap the error one level deeper
            return str(error.get("message", error))
        return str(body.get("message") or error or body)
    return str(body)


def deadline_after(timeout: float) -> float:
    return time.monotonic() + timeout


def remaining(deadline: float) -> float:
    """Seconds left before deadline; a request with none left is never sent."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise GatewayError("fail", "no time left to send the request")
    return left
