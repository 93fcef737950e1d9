"""What the SQL targets (mariadb, galera, postgres) share: client.py runs tectonic's txn
ops as SQL transactions through a per-database Dialect."""
