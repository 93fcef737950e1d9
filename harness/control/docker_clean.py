"""Finding and removing what crashed docker tests left in tectonic's own engine.

Every container and network the docker backend makes carries the LABEL label (and
TEST_LABEL naming its test), so leftovers are found without knowing which test made them.
Only tectonic's own engine is searched, and only when it answers: `tectonic clean` never
starts an engine just to look.
"""
from __future__ import annotations

import os

from .docker_daemon import HOST, SOCKET, answers, client_for
from .names import PREFIX

LABEL = PREFIX
TEST_LABEL = f"{PREFIX}.test"


def docker_leftovers(test_id: str | None = None) -> list[str]:
    """One line per container and network of tectonic's (only test_id's when given)."""
    client = _client()
    if client is None:
        return []
    try:
        containers, networks = _find(client, test_id)
        return [f"docker container {name}" for name in containers] + \
            [f"docker network {name}" for name in networks]
    finally:
        client.close()


def remove_docker_leftovers(test_id: str | None = None) -> list[str]:
    """Remove them (containers with their volumes, then networks); one line per removal."""
    client = _client()
    if client is None:
        return []
    removed = []
    try:
        containers, networks = _find(client, test_id)
        for name in containers:
            client.api.remove_container(name, force=True, v=True)
            removed.append(f"docker container {name}")
        for name in networks:
            client.api.remove_network(name)
            removed.append(f"docker network {name}")
    finally:
        client.close()
    return removed


def _client():
    if not os.path.exists(SOCKET):
        return None
    try:
        import docker  # noqa: F401 - the SDK is an optional extra
    except ImportError:
        return None
    return client_for(HOST, timeout=30) if answers(HOST) else None


def _find(client, test_id: str | None) -> tuple[list[str], list[str]]:
    label = LABEL if test_id is None else f"{TEST_LABEL}={test_id}"
    containers = [c["Names"][0].lstrip("/")
                  for c in client.api.containers(all=True, filters={"label": label})]
    networks = [n["Name"] for n in client.api.networks(filters={"label": label})]
    return containers, networks
