"""Master core CPU time per task launch in the simulator's steady-state scalability shape.

Runs a SimCluster (5,000 agents, 200 continuous frameworks launching 1-cpu tasks of ~30 s) with
the measured cost model, warms up 60 simulated seconds, then reports the master's busy CPU time
per launch over the next 30 simulated seconds. GC is disabled for the measured window (the sim's
heap also holds every simulated agent, so GC pauses are noise here). `--gc` keeps it on;
`--profile N` prints the top N cProfile rows (by tottime) of the measured window.

    PYTHONPATH=$PWD .venv/bin/python bench/sim_steady.py [--gc] [--profile 40]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats

from mezzo.core.gc_tuning import tune_for_daemon
from mezzo.sim.calibration import scalability_cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gc", action="store_true", help="keep the garbage collector on")
    parser.add_argument("--profile", type=int, default=0, help="print this many profile rows")
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--frameworks", type=int, default=200)
    args = parser.parse_args()

    tune_for_daemon()
    cluster, load = scalability_cluster(args.agents, args.frameworks)
    cluster.run_for(60.0)
    master = cluster.master
    if not args.gc:
        gc.disable()
    busy0 = master.busy_seconds
    launched0 = sum(f.launched for f in load)
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    cluster.run_for(30.0)
    if profiler is not None:
        profiler.disable()
    launched = sum(f.launched for f in load) - launched0
    print("launches", launched)
    print("master ms/launch", round(1000 * (master.busy_seconds - busy0) / launched, 3))
    cost = master.cost
    if args.gc and hasattr(cost, "gc_seconds"):  # collections inside master jobs, whole and charged
        print("gc in master jobs s", round(cost.gc_seconds, 3), "charged s", round(cost.gc_charged, 3),
              "share", round(cost.gc_share, 3))
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
