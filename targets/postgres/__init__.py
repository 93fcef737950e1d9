"""PostgreSQL (Debian's postgresql-15), one server, as a tectonic target.

  PostgresTarget(spec, nodes)

target.py deploys the server in the node's own directory, run as user postgres;
dialect.py is its SQL and its errors for the shared SQL client (targets/sql/client.py).
"""
from targets.postgres.target import PostgresTarget

__all__ = ["PostgresTarget"]
