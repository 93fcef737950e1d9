"""MariaDB (Debian's mariadb-server 10.11), one server, as a tectonic target.

  make_target(spec, nodes) -> MariaDBTarget   (target_opts: snapshot_isolation, ...)

target.py deploys the server in the node's own directory; dialect.py is its SQL and its
errors for the shared SQL client (targets/sql/client.py). Galera (targets/galera) builds on it.
"""
from targets.sql import check_spec
from targets.mariadb.target import MariaDBTarget


def resolve_spec_block(spec: dict, where: str) -> None:
    """Check the spec's target and workload options and node count, before any cluster."""
    check_spec(MariaDBTarget, spec, where)


def make_target(spec: dict, nodes: list) -> MariaDBTarget:
    return MariaDBTarget(spec, nodes)


__all__ = ["make_target", "resolve_spec_block", "MariaDBTarget"]
