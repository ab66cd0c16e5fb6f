"""Overhead (§6.2): one framework alone through mezzo vs the same work scheduled directly.

Simulated rows: each workload alone on 50 agents (4 cpus, 15 GB) through the real master
core, vs the same tasks placed by an ideal direct scheduler that starts every task on a free
slot the instant one exists (no offers, no messages) — the best any scheduler could do:

- `hadoop`: one job of 1,000 map tasks of 20 s (a WordCount-like job, no locality effect);
- `mpi`: a rigid job of 200 ranks of 50 s (LINPACK-like);
- `spark`: 10 iterations of 200 tasks, 20 s the first, 4 s later.

Real row (`hadoop_real`, on this machine, `--scale paper` only): the same batch job through a
real `mezzo local` cluster (master and agent processes, the command executor running
`sleep`) vs the same `sleep` commands run by a process pool of as many workers as the
cluster has slots.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mezzo.sim.cluster import SimCluster
from mezzo.sim.report import NoProgress, Progress, Result, markdown_table
from mezzo.sim.workload_frameworks import (
    BatchFramework,
    BatchJobSpec,
    GangFramework,
    IterativeFramework,
    IterativeJobSpec,
)

TITLE = "Overhead: a framework alone through mezzo vs scheduled directly (§6.2)"
DEFAULT_COST = "fixed"
PARAMS = {
    "small": {"agents": 10, "maps": 120, "ranks": 40, "iters": 3, "iter_tasks": 40, "real": False},
    "paper": {"agents": 50, "maps": 1000, "ranks": 200, "iters": 10, "iter_tasks": 200, "real": True},
}
SLOTS_PER_AGENT = 4
PAPER = {
    "section": "§6.2",
    "overhead_pct_below": 4,
    "claim": "frameworks alone on Mesos run within 4% of their time on a dedicated cluster "
             "(MPI LINPACK 50.9 s vs 51.8 s; Hadoop WordCount 160 s vs 166 s)",
}


def _alone(fw_factory, agents: int, seed: int, cost: str) -> float:  # type: ignore[no-untyped-def]
    cluster = SimCluster(seed=seed, cost=cost)
    cluster.add_agents(agents, "cpus:4;mem:15360", names=[f"node{i}" for i in range(agents)])
    fw = fw_factory(cluster.engine)
    start = cluster.engine.now
    cluster.add_framework(fw)
    cluster.run(until=start + 100_000, stop=lambda: fw.done)
    return cluster.engine.now - start


def simulated_rows(p: dict, seed: int, cost: str, progress: Progress) -> list[dict]:
    agents = p["agents"]
    slots = agents * SLOTS_PER_AGENT
    hosts = [f"node{i}" for i in range(agents)]
    rows = []
    progress.start("simulated", 3)
    hadoop = _alone(lambda e: BatchFramework(e, "hadoop", [BatchJobSpec(
        "wc", 0.0, [frozenset(hosts)] * p["maps"], map_local_s=20.0, map_remote_s=20.0)],
        locality_wait=0.0, task=(1.0, 2048.0)), agents, seed, cost)
    rows.append(("hadoop", math.ceil(p["maps"] / slots) * 20.0, hadoop))
    progress.update(1)
    mpi = _alone(lambda e: GangFramework(e, "mpi", size=p["ranks"], runs=1, run_s=50.0,
                                         task=(1.0, 2048.0)), agents, seed, cost)
    rows.append(("mpi", 50.0, mpi))
    progress.update(2)
    waves = math.ceil(p["iter_tasks"] / slots)
    spark = _alone(lambda e: IterativeFramework(e, "spark", [IterativeJobSpec(
        "lr", 0.0, p["iters"], p["iter_tasks"], first_s=20.0, later_s=4.0)], task=(1.0, 2048.0)),
        agents, seed, cost)
    rows.append(("spark", waves * (20.0 + 4.0 * (p["iters"] - 1)), spark))
    progress.update(3)
    return [{"framework": name, "alone_s": round(direct, 2), "on_mezzo_s": round(mezzo, 2),
             "overhead_pct": round(100.0 * (mezzo - direct) / direct, 2), "kind": "simulated"}
            for name, direct, mezzo in rows]


def real_row(tasks: int = 32, seconds: float = 5.0, agents: int = 2, slots: int = 4) -> dict:
    """The same batch job through a real `mezzo local` cluster vs a process pool (this
    machine): `mezzo local` and the batch framework run as separate processes."""
    started = time.monotonic()
    with ThreadPoolExecutor(agents * slots) as pool:
        list(pool.map(lambda _: subprocess.run(["/bin/sh", "-c", f"sleep {seconds}"], check=True),
                      range(tasks)))
    direct = time.monotonic() - started

    mezzo = [sys.executable, str(Path(sys.executable).parent / "mezzo")]
    local = subprocess.Popen(
        [*mezzo, "local", "--agents", str(agents), "--port", "0",
         "--agent-resources", f"cpus:{slots};mem:4096;disk:1000"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        address = None
        assert local.stdout is not None
        for line in local.stdout:  # "master  http://...   (--master HOST:PORT)"
            found = re.search(r"--master (\S+)\)", line)
            if found:
                address = found.group(1)
                break
        if address is None:
            raise RuntimeError("mezzo local did not start")
        done = subprocess.run(
            [sys.executable, "-m", "mezzo.frameworks.batch", "--master", address,
             "--jobs", "1", "--maps", str(tasks), "--map-seconds", str(seconds),
             "--cpus", "1", "--mem", "32", "--locality-wait", "0", "--remote-read-factor", "1",
             "--timeout", "300"],
            check=True, capture_output=True, text=True,
        )
    finally:
        local.send_signal(signal.SIGINT)
        try:
            local.wait(timeout=30)
        except subprocess.TimeoutExpired:
            local.kill()
            local.wait()
    # The job's own completion time (submission to last task), as the framework reports it:
    # the framework process's start-up is not the scheduler's overhead.
    match = re.search(r"completion time ([0-9.]+)s", done.stdout)
    if match is None:
        raise RuntimeError(f"the batch framework reported no completion time: {done.stdout[-500:]}")
    on_mezzo = float(match.group(1))
    return {"framework": "hadoop_real", "alone_s": round(direct, 2), "on_mezzo_s": round(on_mezzo, 2),
            "overhead_pct": round(100.0 * (on_mezzo - direct) / direct, 2), "kind": "real processes",
            "detail": json.dumps({"tasks": tasks, "task_s": seconds, "slots": agents * slots})}


def run(scale: str, seed: int, progress: Progress | None = None, cost: str | None = None,
        real: bool | None = None) -> Result:
    progress = progress or NoProgress()
    cost = cost or DEFAULT_COST
    p = PARAMS[scale]
    wall = time.monotonic()
    rows = simulated_rows(p, seed, cost, progress)
    if p["real"] if real is None else real:
        progress.start("real processes", 1)
        rows.append(real_row())
        progress.update(1)
    table = markdown_table(
        ["framework", "how", "scheduled directly (s)", "through mezzo (s)", "overhead %", "paper"],
        [[r["framework"], r["kind"], r["alone_s"], r["on_mezzo_s"], r["overhead_pct"], "< 4 %"]
         for r in rows],
    )
    return Result("overhead", scale, seed, rows, PAPER, table=table, extra={
        "cost_model": cost, "params": p, "wall_s": round(time.monotonic() - wall, 1)})


def plot(result: Result, fig) -> None:  # type: ignore[no-untyped-def]
    ax = fig.add_subplot(1, 1, 1)
    names = [r["framework"] for r in result.rows]
    xs = range(len(names))
    ax.bar(list(xs), [r["overhead_pct"] for r in result.rows], color="tab:blue",
           label="mezzo overhead")
    ax.axhline(4.0, color="tab:red", linestyle=":", label="paper: < 4 %")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("overhead vs direct scheduling (%)")
    ax.set_title("Overhead of running through mezzo (§6.2)")
    ax.legend()
