"""One client's hold on an etcd lock: a lease, the key the lock service gave, a keepalive.

etcd's lock service (v3lock) queues a key `<name>/<lease>` per contender; the oldest key
holds the lock, and it lives exactly as long as its lease. So the lock is only as safe as
the lease: if keepalives stop reaching the leader (the member they go through is paused or
cut off, the leader was paused past the TTL), the lease expires, etcd deletes the key and
the next contender gets the lock while the first still believes it holds it. That is the
mutual-exclusion violation Jepsen reported for etcd 3.4; the client does nothing to hide
it (a real client could not know either).

acquire: grant a lease (nothing under test changes if that fails: `fail`), keep it alive
from a thread with a connection of its own, then POST /v3/lock/lock, which blocks until
the lock is ours. release: POST /v3/lock/unlock with our key; deleting a key that the
lease's expiry already removed succeeds, so a release reports when it happened, not
whether the lock was still ours -- the checker sees the overlap. close: stop the keepalive
and revoke the lease, so a contender or holder whose op ended uncertain frees the lock now
rather than after the TTL.
"""
from __future__ import annotations

import logging
import threading

from targets.etcd.gateway import Gateway, GatewayError, b64, number, remaining

log = logging.getLogger("tectonic.etcd")

REVOKE_TIMEOUT = 1.0


class LockHold:
    def __init__(self, host: str, port: int, ttl: int, name: str):
        self.host, self.port, self.ttl, self.name = host, port, ttl, name
        self.lease: int | None = None
        self.key: str | None = None  # base64, as the lock service returned it
        self._keepalive: threading.Thread | None = None
        self._stop = threading.Event()

    def acquire(self, gateway: Gateway, deadline: float) -> dict:
        if self.key is not None:
            return {"type": "fail", "error": "already-held: this process holds the lock"}
        self._drop_lease(gateway)  # left by an acquire whose outcome was unknown
        try:
            granted = gateway.post("/v3/lease/grant", {"TTL": self.ttl}, remaining(deadline))
        except GatewayError as e:
            # A lease alone takes no lock; a lease granted after a timeout just expires.
            return {"type": "fail", "error": f"lease grant: {e}"}
        self.lease = number(granted.get("ID"))
        self._start_keepalive()
        try:
            answer = gateway.post("/v3/lock/lock", {"name": b64(self.name), "lease": str(self.lease)},
                                  remaining(deadline))
        except GatewayError as e:
            if e.outcome == "fail":
                self._drop_lease(gateway)
            # On info the request may still be queued or granted: the lease stays until
            # close() revokes it.
            return {"type": e.outcome, "error": str(e)}
        self.key = answer.get("key")
        return {"type": "ok"}

    def release(self, gateway: Gateway, deadline: float) -> dict:
        if self.key is None:
            return {"type": "fail", "error": "not-held: this process does not hold the lock"}
        try:
            gateway.post("/v3/lock/unlock", {"key": self.key}, remaining(deadline))
        except GatewayError as e:
            return {"type": e.outcome, "error": str(e)}
        self.key = None
        self._stop_keepalive()
        self.lease = None  # holds nothing now; it expires on its own after the TTL
        return {"type": "ok"}

    def close(self, gateway: Gateway) -> None:
        self._drop_lease(gateway)

    def _drop_lease(self, gateway: Gateway) -> None:
        self._stop_keepalive()
        if self.lease is not None:
            try:
                gateway.post("/v3/lease/revoke", {"ID": str(self.lease)}, REVOKE_TIMEOUT)
            except GatewayError as e:
                log.info("lease %x not revoked (%s); it expires in %ds", self.lease, e, self.ttl)
        self.lease = self.key = None

    def _start_keepalive(self) -> None:
        self._stop = threading.Event()
        self._keepalive = threading.Thread(target=self._keep_alive, args=(self.lease, self._stop),
                                           daemon=True, name=f"etcd-keepalive-{self.lease:x}")
        self._keepalive.start()

    def _stop_keepalive(self) -> None:
        self._stop.set()
        if self._keepalive is not None:
            self._keepalive.join(timeout=self.ttl)
            self._keepalive = None

    def _keep_alive(self, lease: int, stop: threading.Event) -> None:
        """Renew every third of the TTL until stopped or the lease is gone."""
        period = self.ttl / 3
        gateway = Gateway(self.host, self.port, connect_timeout=period)
        try:
            while not stop.wait(period):
                try:
                    answer = gateway.post("/v3/lease/keepalive", {"ID": str(lease)}, period)
                except GatewayError:
                    continue  # the member is down or slow: keep trying until the lease is gone
                result = answer.get("result")
                if result is None:
                    # A streamed error comes back as 200 with {"error": ...}: it says
                    # nothing about the lease, so it must not end the keepalives.
                    log.info("keepalive of lease %x: %s", lease, answer.get("error", answer))
                    continue
                if number(result.get("TTL")) <= 0:
                    log.info("lease %x expired while in use (keepalives did not arrive in time)", lease)
                    return
        finally:
            gateway.close()
