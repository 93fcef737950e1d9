"""MariaDB (Debian's mariadb-server 10.11), one server, as a tectonic target.

  MariaDBTarget(spec, nodes)   (target_opts: snapshot_isolation, ...)

target.py deploys the server in the node's own directory; dialect.py is its SQL and its
errors for the shared SQL client (targets/sql/client.py). Galera (targets/galera) builds on it.
"""
from targets.mariadb.target import MariaDBTarget

__all__ = ["MariaDBTarget"]
