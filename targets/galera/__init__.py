"""MariaDB Galera Cluster (mariadb-server 10.11 + galera-4) as a tectonic target.

  make_target(spec, nodes) -> GaleraTarget   (target_opts: sync_wait, and mariadb's)

target.py forms, restarts and re-bootstraps the cluster; the servers, their SQL and the
client are MariaDB's (targets/mariadb).
"""
from targets.sql import check_spec
from targets.galera.target import GaleraTarget


def resolve_spec_block(spec: dict, where: str) -> None:
    """Check the spec's target and workload options and node count, before any cluster."""
    check_spec(GaleraTarget, spec, where)


def make_target(spec: dict, nodes: list) -> GaleraTarget:
    return GaleraTarget(spec, nodes)


__all__ = ["make_target", "resolve_spec_block", "GaleraTarget"]
