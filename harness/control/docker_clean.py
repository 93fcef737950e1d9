"""Finding and removing what crashed docker tests left in tectonic's own engine.

Every container and network the docker backend makes carries the LABEL label (and
TEST_LABEL naming its test), so leftovers are found without knowing which test made them.
Only tectonic's own engine is searched, and only when it answers: `tectonic clean` never
starts an engine just to look. An engine a test started and did not stop (its controller
died) is a leftover too, when every test's leftovers are asked for; one started by hand is not.
"""
from __future__ import annotations

import os

from .docker_daemon import (HOST, SOCKET, answers, client_for, orphaned_engine_pid,
                            stop_orphaned_engine)
from .names import PREFIX

LABEL = PREFIX
TEST_LABEL = f"{PREFIX}.test"


def docker_leftovers(test_id: str | None = None, keep: frozenset = frozenset()) -> list[str]:
    """One line per container and network of tectonic's (only test_id's when given), but
    those of the tests in `keep` (live ones), and the engine itself when a dead test left
    it running and no test in `keep` uses it (only when test_id is None)."""
    engine = orphaned_engine_pid() if test_id is None and not keep else None
    found = [] if engine is None else [_engine_line(engine)]
    client = _client()
    if client is None:
        return found
    try:
        containers, networks = _find(client, test_id, keep)
        return [f"docker container {name}" for name in containers] + \
            [f"docker network {name}" for name in networks] + found
    finally:
        client.close()


def remove_docker_leftovers(test_id: str | None = None,
                            keep: frozenset = frozenset()) -> list[str]:
    """Remove them (containers with their volumes, then networks, then an orphaned engine);
    one line per removal."""
    removed = []
    client = _client()
    if client is not None:
        try:
            containers, networks = _find(client, test_id, keep)
            for name in containers:
                client.api.remove_container(name, force=True, v=True)
                removed.append(f"docker container {name}")
            for name in networks:
                client.api.remove_network(name)
                removed.append(f"docker network {name}")
        finally:
            client.close()
    engine = stop_orphaned_engine() if test_id is None and not keep else None
    if engine is not None:
        removed.append(_engine_line(engine))
    return removed


def _engine_line(pid: int) -> str:
    return f"docker engine dockerd (pid {pid}) started by a test that died"


def _client():
    if not os.path.exists(SOCKET):
        return None
    try:
        import docker  # noqa: F401 - the SDK is an optional extra
    except ImportError:
        return None
    return client_for(HOST, timeout=30) if answers(HOST) else None


def _find(client, test_id: str | None, keep: frozenset) -> tuple[list[str], list[str]]:
    label = LABEL if test_id is None else f"{TEST_LABEL}={test_id}"
    containers = [c["Names"][0].lstrip("/")
                  for c in client.api.containers(all=True, filters={"label": label})
                  if (c.get("Labels") or {}).get(TEST_LABEL) not in keep]
    networks = [n["Name"] for n in client.api.networks(filters={"label": label})
                if (n.get("Labels") or {}).get(TEST_LABEL) not in keep]
    return containers, networks
