"""etcd (Debian's etcd-server, v3.4) as a tectonic target, through its v3 JSON gateway.

  EtcdTarget(spec, nodes)   (spec: target_opts: {serializable: true, ...})

target.py deploys and faults the members; client.py maps tectonic's ops onto the gateway
(gateway.py decides what each error means: fail or info); txn.py runs list-append and
rw-register transactions as guarded etcd txns; lock.py holds the lock workload's leases.
docs/etcd-recipes.md has the recipes and what they found.
"""
from targets.etcd.target import EtcdTarget

__all__ = ["EtcdTarget"]
