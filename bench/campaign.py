"""Campaign throughput: entries per hour with 1, 2 and 4 tests at once on this machine
(the local pool), and with the Dask executor on two workers in network namespaces.

Every executor runs the same campaign: RUNS short raftkv tests (3 nodes, register under
partitions, TIME_LIMIT seconds of workload each), so the figure is what set-up, teardown
and checking cost around a fixed test time, and how well side-by-side tests overlap them.
The whole benchmark runs in a private host (fresh network, mount and PID namespaces, see
harness/control/userns.py), so the Dask workers' cleans see only its own tests.

    .venv/bin/python bench/campaign.py [--repeats 3] [--runs 6]

Targets: 2 at a time at least 1.6x the entries per hour of 1 (tests mostly wait on a
fixed time limit, so two overlap well on 2 cores); Dask on two workers within 25% of the
local pool of 2 (the same parallelism; the scheduler and shipping run dirs back add little).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness.control.userns import ENV_MARK, private_host_command  # noqa: E402

TIME_LIMIT = 4
CAMPAIGN = """
name: bench-{label}
base: {{target: raftkv, workload: register, nemesis: [partition], node_count: 3, concurrency: 3,
       time_limit: {time_limit}, rate: 40, nemesis_interval: 1.5, recovery_time: 2, op_timeout: 1,
       seed: 1}}
entries:
  - {{repeat: {runs}}}
"""


def entries_per_hour(label: str, runs: int, executor) -> float:
    """Run the campaign with executor; entries (here: runs) finished per hour of wall time."""
    from harness.campaign import run_campaign
    with tempfile.TemporaryDirectory(prefix="tectonic-bench-campaign-") as d:
        path = os.path.join(d, "bench.yaml")
        with open(path, "w") as f:
            f.write(textwrap.dedent(CAMPAIGN.format(label=label, runs=runs, time_limit=TIME_LIMIT)))
        with open(os.devnull, "w") as quiet:
            started = time.monotonic()
            code = run_campaign(path, store=os.path.join(d, "store"), executor=executor, stream=quiet)
            seconds = time.monotonic() - started
        if code != 0:
            raise SystemExit(f"bench campaign {label} did not pass (exit {code}); see its store in {d}")
    return runs / seconds * 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/campaign.py: run as root (it builds namespaces and Dask hosts)")
    if os.environ.get(ENV_MARK) != "1":
        command = private_host_command([sys.executable, os.path.abspath(__file__), *sys.argv[1:]])
        os.execv(command[0], command)

    from harness.campaign_exec import DaskExecutor, PoolExecutor, SerialExecutor
    from harness.dask_lab import DaskLab
    figures: dict[str, list[float]] = {"1": [], "2": [], "4": [], "dask-2": []}
    for r in range(args.repeats):
        # Interleaved, so a slow spell of the machine hits every executor alike.
        figures["1"].append(entries_per_hour("serial", args.runs, SerialExecutor()))
        figures["2"].append(entries_per_hour("pool2", args.runs, PoolExecutor(2)))
        figures["4"].append(entries_per_hour("pool4", args.runs, PoolExecutor(4)))
        with DaskLab(workers=2, nthreads=1) as lab:
            figures["dask-2"].append(entries_per_hour("dask", args.runs, DaskExecutor(lab.address)))
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}/h" for k, v in figures.items()), flush=True)
    median = {k: statistics.median(v) for k, v in figures.items()}
    print(f"({args.runs} runs of {TIME_LIMIT} s workload per campaign, medians of {args.repeats} repeats)")
    print(f"campaign local 1 at a time: {median['1']:.0f} entries/h")
    print(f"campaign local 2 at a time: {median['2']:.0f} entries/h, {median['2'] / median['1']:.2f}x of 1 (target 1.6x)")
    print(f"campaign local 4 at a time: {median['4']:.0f} entries/h, {median['4'] / median['1']:.2f}x of 1")
    print(f"campaign dask 2 namespace workers: {median['dask-2']:.0f} entries/h, "
          f"{median['dask-2'] / median['2']:.2f}x of local 2 (target 0.75x)")


if __name__ == "__main__":
    main()
