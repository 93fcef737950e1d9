"""How long a 5-node local cluster takes to come up (raftkv healthy on it) and to go away.

Run from the project root: `.venv/bin/python bench/cluster.py [--runs 5] [--nodes 5]`.
As an ordinary user it re-executes itself in a user namespace, as `tectonic test` does.
Prints each run, then the medians as headline lines.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from harness.control.userns import reexec_in_userns_if_needed  # noqa: E402
from harness.protocols import NodeNeeds  # noqa: E402

UP_TARGET_S = 2.0
DOWN_TARGET_S = 1.0


def raftkv_factory():
    """targets.raftkv.RaftKVTarget, or None with the reason it cannot be used."""
    try:
        from targets.raftkv import RaftKVTarget
    except ImportError as e:
        return None, f"raftkv is not importable ({e}): measuring the cluster alone"
    return RaftKVTarget, None


def one_run(index: int, nodes_wanted: int, make_target) -> tuple[float, float, float]:
    """(seconds to create the cluster, to have it up with the target healthy, to tear
    it all down)."""
    from harness.control.local import LocalCluster
    with tempfile.TemporaryDirectory(prefix="tectonic-bench-") as base:
        needs = make_target.needs if make_target is not None else NodeNeeds()
        cluster = LocalCluster(f"bench-{os.getpid()}-{index}", nodes_wanted, base, needs)
        target = None
        try:
            started = time.perf_counter()
            nodes = cluster.create()
            created_s = time.perf_counter() - started
            if make_target is not None:
                target = make_target({"bugs": []}, nodes)

                with ThreadPoolExecutor(len(nodes)) as pool:
                    list(pool.map(target.setup, nodes))
                target.wait_healthy(nodes, timeout=30)
            up_s = time.perf_counter() - started

            started = time.perf_counter()
            if target is not None:
                with ThreadPoolExecutor(len(nodes)) as pool:
                    list(pool.map(target.teardown, nodes))
            cluster.destroy()
            down_s = time.perf_counter() - started
        finally:
            cluster.destroy()
    return created_s, up_s, down_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=5)
    args = parser.parse_args()
    reexec_in_userns_if_needed([sys.executable, os.path.abspath(__file__), *sys.argv[1:]])

    make_target, why_not = raftkv_factory()
    if why_not:
        print(f"note: {why_not}")
    what = "raftkv healthy" if make_target else "no target"
    ups, downs = [], []
    for i in range(args.runs):
        created_s, up_s, down_s = one_run(i, args.nodes, make_target)
        ups.append(up_s)
        downs.append(down_s)
        print(f"run {i + 1}: namespaces {created_s:.3f} s, up {up_s:.3f} s ({what}), "
              f"down {down_s:.3f} s")
    suffix = "_raftkv_healthy" if make_target else ""
    print(f"local_cluster_up_{args.nodes}_nodes{suffix}: {statistics.median(ups):.3f} s "
          f"(target < {UP_TARGET_S:g} s)")
    print(f"local_cluster_down_{args.nodes}_nodes{suffix}: {statistics.median(downs):.3f} s "
          f"(target < {DOWN_TARGET_S:g} s)")


if __name__ == "__main__":
    main()
