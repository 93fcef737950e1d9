"""PostgreSQL (Debian's postgresql-15), one server, as a tectonic target.

  make_target(spec, nodes) -> PostgresTarget

target.py deploys the server in the node's own directory, run as user postgres;
dialect.py is its SQL and its errors for the shared SQL client (targets/sql/client.py).
"""
from targets.sql import check_spec
from targets.postgres.target import PostgresTarget


def resolve_spec_block(spec: dict, where: str) -> None:
    """Check the spec's target and workload options and node count, before any cluster."""
    check_spec(PostgresTarget, spec, where)


def make_target(spec: dict, nodes: list) -> PostgresTarget:
    return PostgresTarget(spec, nodes)


__all__ = ["make_target", "resolve_spec_block", "PostgresTarget"]
