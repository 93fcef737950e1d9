"""etcd's Client for tectonic's workloads, over the v3 JSON gateway of one member.

Ops, with raftkv's shapes (targets/raftkv/client.py):

  read      [k, None] -> [k, v]       range of key k/<k>; v is None if it was never written
  write     [k, v]                    put
  cas       [k, [from, to]]           txn: compare VALUE == from, put on success, and a
                                      range on failure, so even a mismatch went through
                                      the leader; a mismatch is `fail` "cas-mismatch"
  add       [k, e]                    put s/<k>/<e> (a set is one key per element)
  read-list [k, None] -> [k, [e..]]   range over the prefix s/<k>/
  txn       [[f, k, v], ...]          list-append / rw-register micro-ops (txn.py)
  acquire, release  (value None)      the lock workload (lock.py)

A set is one key per element rather than one list value rewritten by guarded txns: an add
is then a single put that never conflicts with another add, so under load no add fails
for contention, and a lost element can only be etcd's doing.

Reads are linearizable by default; with serializable=True (target_opts.serializable) they
are answered from the member's local state, possibly stale: the recipe for showing what
that costs. Values are stored as JSON text.
"""
from __future__ import annotations

import json

from targets.etcd import txn as txns
from targets.etcd.gateway import (Gateway, GatewayError, b64, deadline_after, number,
                                  prefix_end, remaining, unb64)
from targets.etcd.lock import LockHold

_encode = json.JSONEncoder(separators=(",", ":")).encode
LOCK_NAME = "tectonic-lock"
OPS = ("read", "write", "cas", "add", "read-list", "txn", "acquire", "release")


def register_key(k) -> str:
    return f"k/{k}"


def set_prefix(k) -> str:
    return f"s/{k}/"


def encode_value(v) -> str:
    return b64(_encode(v))


def decode_value(text: str | None):
    return json.loads(unb64(text))


class EtcdClient:
    """A Client (harness/protocols.py) for one worker, talking to one member."""

    def __init__(self, port: int, *, serializable: bool = False, lock_ttl: int = 2,
                 connect_timeout: float = 1.0):
        self.port = port
        self.serializable = serializable
        self.lock_ttl = lock_ttl
        self.connect_timeout = connect_timeout
        self.gateway: Gateway | None = None
        self.lock: LockHold | None = None

    def open(self, node) -> None:
        self.gateway = Gateway(node.address, self.port, self.connect_timeout)
        self.lock = LockHold(node.address, self.port, self.lock_ttl, LOCK_NAME)

    def close(self) -> None:
        if self.gateway is not None:
            self.lock.close(self.gateway)
            self.gateway.close()

    def invoke(self, op: dict, timeout: float) -> dict:
        if self.gateway is None:
            raise RuntimeError("EtcdClient.invoke before open")
        f, value = op.get("f"), op.get("value")
        if f not in OPS:
            return {"type": "fail", "value": value,
                    "error": f"the etcd client cannot run op f={f!r} (known: {', '.join(OPS)})"}
        deadline = deadline_after(timeout)
        try:
            done = getattr(self, "_" + f.replace("-", "_"))(value, deadline)
        except GatewayError as e:
            return {"type": e.outcome, "value": value, "error": str(e)}
        done.setdefault("value", value)
        return done

    # ---- registers --------------------------------------------------------------------

    def _read(self, value, deadline) -> dict:
        k = value[0]
        answer = self.gateway.post("/v3/kv/range", {"key": b64(register_key(k)),
                                                    "serializable": self.serializable},
                                   remaining(deadline))
        kvs = answer.get("kvs")
        return {"type": "ok", "value": [k, decode_value(kvs[0].get("value")) if kvs else None]}

    def _write(self, value, deadline) -> dict:
        k, v = value
        self.gateway.post("/v3/kv/put", {"key": b64(register_key(k)), "value": encode_value(v)},
                          remaining(deadline))
        return {"type": "ok"}

    def _cas(self, value, deadline) -> dict:
        k, (old, new) = value
        key = b64(register_key(k))
        answer = self.gateway.post("/v3/kv/txn", {
            "compare": [{"key": key, "target": "VALUE", "result": "EQUAL",
                         "value": encode_value(old)}],
            "success": [{"request_put": {"key": key, "value": encode_value(new)}}],
            "failure": [{"request_range": {"key": key}}],
        }, remaining(deadline))
        if answer.get("succeeded"):
            return {"type": "ok"}
        return {"type": "fail", "error": "cas-mismatch"}

    # ---- sets -------------------------------------------------------------------------

    def _add(self, value, deadline) -> dict:
        k, e = value
        self.gateway.post("/v3/kv/put", {"key": b64(set_prefix(k) + _encode(e)),
                                         "value": encode_value(e)}, remaining(deadline))
        return {"type": "ok"}

    def _read_list(self, value, deadline) -> dict:
        k = value[0]
        prefix = set_prefix(k).encode()
        answer = self.gateway.post("/v3/kv/range", {
            "key": b64(prefix), "range_end": b64(prefix_end(prefix)),
            "serializable": self.serializable}, remaining(deadline))
        return {"type": "ok", "value": [k, [decode_value(kv.get("value"))
                                            for kv in answer.get("kvs") or []]]}

    # ---- transactions -----------------------------------------------------------------

    def _txn(self, mops, deadline) -> dict:
        needed = txns.plan(mops)
        writes = txns.writes_anything(mops)
        try:
            before, revisions = self._snapshot(needed, deadline) if needed else ({}, {})
        except GatewayError as e:
            if writes:
                # Only the snapshot was attempted and it writes nothing: the transaction
                # certainly did not happen, however the read ended.
                return {"type": "fail", "error": f"snapshot read: {e}"}
            raise
        done, final = txns.run_against(mops, before)
        if not writes:
            return {"type": "ok", "value": done}
        request = {
            "compare": [{"key": b64(register_key(k)), "target": "MOD", "result": "EQUAL",
                         "mod_revision": str(revisions[k])} for k in needed],
            "success": [{"request_put": {"key": b64(register_key(k)), "value": encode_value(v)}}
                        for k, v in final.items()],
        }
        answer = self.gateway.post("/v3/kv/txn", request, remaining(deadline))
        if needed and not answer.get("succeeded"):
            return {"type": "fail", "error": "txn-conflict: a key it read changed before the commit"}
        return {"type": "ok", "value": done}

    def _snapshot(self, keys: list, deadline) -> tuple[dict, dict]:
        """Values and mod_revisions of keys, all at one revision (one read-only txn)."""
        answer = self.gateway.post("/v3/kv/txn", {"success": [
            {"request_range": {"key": b64(register_key(k)), "serializable": self.serializable}}
            for k in keys]}, remaining(deadline))
        responses = answer.get("responses") or []
        if len(responses) != len(keys):
            raise GatewayError("info", f"txn: {len(responses)} answers for {len(keys)} reads")
        before, revisions = {}, {}
        for k, response in zip(keys, responses):
            kvs = (response.get("response_range") or {}).get("kvs")
            if kvs:
                before[k] = decode_value(kvs[0].get("value"))
                revisions[k] = number(kvs[0].get("mod_revision"))
            else:
                revisions[k] = 0  # etcd compares a missing key's mod_revision as 0
        return before, revisions

    # ---- the lock ---------------------------------------------------------------------

    def _acquire(self, value, deadline) -> dict:
        return self.lock.acquire(self.gateway, deadline)

    def _release(self, value, deadline) -> dict:
        return self.lock.release(self.gateway, deadline)
