"""Data locality with delay scheduling (§6.3, Fig. 8).

16 Hadoop-like frameworks share 93 agents (4 cpus, 15 GB each; a map task takes one cpu and
1 GB). Every job is a text search over blocks stored HDFS-style: 3 replicas on random agents
of the whole cluster. A map task reading a local block takes 10 s, a remote one 20 s (the
network read is the bottleneck of a text search). Four set-ups, the same jobs in each:

- `static`: the cluster split into 16 partitions of 5-6 agents, one per framework (each runs
  alone on its own master); a partition holds only a few of the replicas its jobs read;
- `delay_0s`, `delay_1s`, `delay_5s`: all 16 on one mezzo master (DRF), each framework
  running delay scheduling (`mezzo.frameworks.batch_policy`) with that locality wait.

Rows: the share of map tasks that ran on an agent holding their block, and the mean job
time (submission to last map).
"""

from __future__ import annotations

import random
import time

from mezzo.frameworks.batch_policy import place_blocks
from mezzo.sim.cluster import SimCluster
from mezzo.sim.report import NoProgress, Progress, Result, markdown_table
from mezzo.sim.workload_frameworks import BatchFramework, BatchJobSpec

TITLE = "Data locality with delay scheduling (Fig. 8)"
DEFAULT_COST = "fixed"
AGENT = "cpus:4;mem:15360"
PARAMS = {
    "small": {"agents": 24, "frameworks": 4, "jobs": 2, "maps": 48},
    "paper": {"agents": 93, "frameworks": 16, "jobs": 3, "maps": 120},
}
SETUPS = [("static", None), ("delay_0s", 0.0), ("delay_1s", 1.0), ("delay_5s", 5.0)]
PAPER = {
    "figure": "Fig. 8",
    "local_pct": {"static": 18, "delay_0s": 50, "delay_1s": 90, "delay_5s": 95},
    "claim": "delay scheduling: 18% locality (static) -> ~50% (0 s) -> >90% (1 s) -> 95% (5 s); "
             "jobs 1.7x faster than static",
    "job_speedup_vs_static": 1.7,
}
LOCAL_S, REMOTE_S = 10.0, 20.0
STAGGER = 5.0  # framework i submits its jobs at i * STAGGER


def _jobs(params: dict, hosts: list[str], seed: int) -> list[list[BatchJobSpec]]:
    rng = random.Random(seed)
    out = []
    for f in range(params["frameworks"]):
        specs = []
        for j in range(params["jobs"]):
            name = f"f{f}-job{j}"
            specs.append(BatchJobSpec(
                name=name, submit_at=0.0, locations=place_blocks(name, params["maps"], hosts, 3, rng),
                map_local_s=LOCAL_S, map_remote_s=REMOTE_S,
            ))
        out.append(specs)
    return out


def _at(specs: list[BatchJobSpec], start: float, f: int) -> list[BatchJobSpec]:
    return [BatchJobSpec(s.name, start + f * STAGGER, s.locations, s.reduces, s.map_local_s,
                         s.map_remote_s, s.reduce_s) for s in specs]


def _summary(frameworks: list[BatchFramework]) -> tuple[float, float]:
    local = total = 0
    times: list[float] = []
    for fw in frameworks:
        a, b = fw.locality()
        local += a
        total += b
        times += [r.duration for r in fw.records.values() if r.duration is not None]
    return 100.0 * local / max(1, total), sum(times) / max(1, len(times))


def run_setup(setup: str, wait: float | None, params: dict, seed: int, cost: str,
              progress: Progress) -> dict:
    hosts = [f"node{i}" for i in range(params["agents"])]
    jobs = _jobs(params, hosts, seed)
    horizon = 20_000.0
    frameworks: list[BatchFramework] = []
    progress.start(setup, 1.0)
    if wait is None:
        # Static partitions: framework f alone on its share of the agents.
        n = params["frameworks"]
        for f in range(n):
            part = hosts[f * len(hosts) // n:(f + 1) * len(hosts) // n]
            cluster = SimCluster(seed=seed + f, cost=cost)
            cluster.add_agents(len(part), AGENT, names=part)
            start = cluster.engine.now
            fw = BatchFramework(cluster.engine, f"hadoop{f}", _at(jobs[f], start, f),
                                locality_wait=0.0)
            cluster.add_framework(fw)
            cluster.run(until=start + horizon, stop=lambda fw=fw: fw.done)
            frameworks.append(fw)
            progress.update((f + 1) / n)
    else:
        cluster = SimCluster(seed=seed, cost=cost)
        cluster.add_agents(len(hosts), AGENT, names=hosts)
        start = cluster.engine.now
        for f, specs in enumerate(jobs):
            fw = BatchFramework(cluster.engine, f"hadoop{f}", _at(specs, start, f),
                                locality_wait=wait)
            frameworks.append(fw)
            cluster.add_framework(fw)
        cluster.run(until=start + horizon, stop=lambda: all(fw.done for fw in frameworks),
                    progress=lambda now: progress.update(min(1.0, (now - start) / 600.0)))
        progress.update(1.0)
    local_pct, mean_job = _summary(frameworks)
    return {"setup": setup, "local_pct": round(local_pct, 1), "mean_job_s": round(mean_job, 1),
            "jobs_done": sum(sum(r.finished is not None for r in fw.records.values())
                             for fw in frameworks)}


def run(scale: str, seed: int, progress: Progress | None = None, cost: str | None = None) -> Result:
    progress = progress or NoProgress()
    cost = cost or DEFAULT_COST
    params = PARAMS[scale]
    wall = time.monotonic()
    rows = [run_setup(name, wait, params, seed, cost, progress) for name, wait in SETUPS]
    static = rows[0]["mean_job_s"]
    for row in rows:
        row["speedup_vs_static"] = round(static / row["mean_job_s"], 2) if row["mean_job_s"] else None
    table = markdown_table(
        ["set-up", "paper local %", "mezzo local %", "mezzo mean job (s)", "job speed-up vs static"],
        [[r["setup"], PAPER["local_pct"][r["setup"]], r["local_pct"], r["mean_job_s"],
          r["speedup_vs_static"]] for r in rows],
    ) + f"\nPaper: jobs {PAPER['job_speedup_vs_static']}x faster with delay scheduling than static.\n"
    return Result("locality", scale, seed, rows, PAPER, table=table,
                  extra={"cost_model": cost, "params": params,
                         "wall_s": round(time.monotonic() - wall, 1)})


def plot(result: Result, fig) -> None:  # type: ignore[no-untyped-def]
    ax = fig.add_subplot(1, 1, 1)
    names = [r["setup"] for r in result.rows]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [result.paper["local_pct"][n] for n in names], 0.4,
           label="paper", color="tab:grey")
    ax.bar([x + 0.2 for x in xs], [r["local_pct"] for r in result.rows], 0.4,
           label="mezzo (simulated)", color="tab:blue")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("map tasks on a node with their data (%)")
    ax.set_ylim(0, 105)
    ax2 = ax.twinx()
    ax2.plot(list(xs), [r["mean_job_s"] for r in result.rows], "o-", color="tab:orange",
             label="mezzo mean job time")
    ax2.set_ylabel("mean job time (s)")
    ax2.set_ylim(0, max(r["mean_job_s"] for r in result.rows) * 1.2)
    ax.set_title("Data locality with delay scheduling (Fig. 8)")
    ax.legend(loc="upper left")
