"""MariaDB Galera Cluster (mariadb-server 10.11 + galera-4) as a tectonic target.

  GaleraTarget(spec, nodes)   (target_opts: sync_wait, and mariadb's)

target.py forms, restarts and re-bootstraps the cluster; the servers, their SQL and the
client are MariaDB's (targets/mariadb).
"""
from targets.galera.target import GaleraTarget

__all__ = ["GaleraTarget"]
