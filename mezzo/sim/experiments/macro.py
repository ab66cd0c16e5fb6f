"""Macrobenchmark (§6.1, Figs 5-7, Tables 4-5): four frameworks sharing a cluster.

96 agents (4 cpus, 15 GB). Four workloads, each either alone on a static partition of 24
agents (with its own storage: its data on its 24 agents) or all four on one mezzo master
sharing the 96 agents with DRF (data spread over all 96):

- `facebook_hadoop`: 100 jobs from Table 3's job-size bins, shuffled, Poisson arrivals with a
  14 s mean; map tasks 6 s local / 10 s remote, reduces 15 s (short Hive queries); FIFO with
  delay scheduling (5 s);
- `large_hadoop`: 10 text-search jobs of 2,400 maps each, back to back; maps 10 s / 20 s;
- `spark`: 5 iterative jobs (ALS) back to back, 10 iterations of 144 tasks; the first
  iteration's tasks 40 s (loading), later ones 15 s;
- `torque`: 8 MPI jobs (tachyon) back to back, each a rigid gang of 24 ranks (2 cpus, 4 GB)
  for 380 s, gathered with `GangPlanner` (hoards offers until it holds the whole gang).

Task shapes: Hadoop 1 cpu / 2 GB, Spark 1 cpu / 3 GB. Speed-up = (sum of job times, static)
/ (sum of job times, mezzo). Utilisation: CPU (memory) seconds used by tasks over the
cluster's CPU (memory) capacity, over the same window in both set-ups: from the start until
the last elastic framework finishes on the shared cluster (after that only the rigid Torque
jobs run, in both set-ups alike); the gain compares the two.
"""

from __future__ import annotations

import math
import random
import time

from mezzo.frameworks.batch_policy import place_blocks
from mezzo.sim.cluster import SimCluster
from mezzo.sim.engine import Engine
from mezzo.sim.framework import SimFramework
from mezzo.sim.report import NoProgress, Progress, Result, markdown_table
from mezzo.sim.workload_frameworks import (
    BatchFramework,
    BatchJobSpec,
    GangFramework,
    IterativeFramework,
    IterativeJobSpec,
)

TITLE = "Macrobenchmark: four frameworks under DRF vs static partitioning"
DEFAULT_COST = "fixed"
AGENT_CPUS, AGENT_MEM = 4.0, 15360.0
AGENT = f"cpus:{AGENT_CPUS:g};mem:{AGENT_MEM:g}"
FRAMEWORKS = ["facebook_hadoop", "large_hadoop", "spark", "torque"]
# Table 3: (map tasks, reduce tasks, jobs) per bin.
FACEBOOK_BINS = [(1, 0, 38), (2, 0, 18), (10, 2, 14), (50, 0, 12), (100, 10, 6), (200, 0, 6),
                 (400, 0, 4), (400, 30, 2)]
PARAMS = {
    "small": {"partition": 6, "fb_jobs": 20, "large_jobs": 2, "large_maps": 240,
              "spark_jobs": 2, "spark_tasks": 36, "spark_iters": 5, "torque_jobs": 2,
              "torque_ranks": 6, "torque_s": 120.0},
    "paper": {"partition": 24, "fb_jobs": 100, "large_jobs": 10, "large_maps": 2400,
              "spark_jobs": 5, "spark_tasks": 144, "spark_iters": 10, "torque_jobs": 8,
              "torque_ranks": 24, "torque_s": 380.0},
}
PAPER = {
    "tables": "Tables 4-5, Figs 5-7",
    "speedup": {"facebook_hadoop": 1.14, "large_hadoop": 2.10, "spark": 1.26, "torque": 0.96},
    "sum_of_job_times_s": {
        "facebook_hadoop": {"static": 7235, "mesos": 6319},
        "large_hadoop": {"static": 3143, "mesos": 1494},
        "spark": {"static": 1684, "mesos": 1338},
        "torque": {"static": 3210, "mesos": 3352},
    },
    "cpu_util_gain_pct": 10,
    "mem_util_gain_pct": 17,
}


def _facebook_jobs(n_jobs: int, hosts: list[str], rng: random.Random) -> list[BatchJobSpec]:
    sizes = [(m, r) for m, r, count in FACEBOOK_BINS for _ in range(count)]
    if n_jobs < len(sizes):  # small scale: a proportional sample of the bins
        sizes = sizes[:: math.ceil(len(sizes) / n_jobs)]
    rng.shuffle(sizes)
    t = 0.0
    out = []
    for i, (maps, reduces) in enumerate(sizes):
        t += rng.expovariate(1 / 14.0)
        name = f"fb{i}"
        out.append(BatchJobSpec(name, t, place_blocks(name, maps, hosts, 3, rng), reduces,
                                map_local_s=6.0, map_remote_s=10.0, reduce_s=15.0))
    return out


def _large_jobs(p: dict, hosts: list[str], rng: random.Random) -> list[BatchJobSpec]:
    return [BatchJobSpec(f"large{i}", 0.0 if i == 0 else None,
                         place_blocks(f"large{i}", p["large_maps"], hosts, 3, rng),
                         map_local_s=10.0, map_remote_s=20.0)
            for i in range(p["large_jobs"])]


def _spark_jobs(p: dict) -> list[IterativeJobSpec]:
    return [IterativeJobSpec(f"als{i}", 0.0 if i == 0 else None, p["spark_iters"],
                             p["spark_tasks"], first_s=40.0, later_s=15.0)
            for i in range(p["spark_jobs"])]


def _build(name: str, engine: Engine, p: dict, hosts: list[str], seed: int) -> SimFramework:
    rng = random.Random(f"{seed}-{name}")
    if name == "facebook_hadoop":
        return BatchFramework(engine, name, _facebook_jobs(p["fb_jobs"], hosts, rng),
                              locality_wait=5.0, task=(1.0, 2048.0), all_hosts=hosts)
    if name == "large_hadoop":
        return BatchFramework(engine, name, _large_jobs(p, hosts, rng), locality_wait=5.0,
                              task=(1.0, 2048.0), all_hosts=hosts)
    if name == "spark":
        return IterativeFramework(engine, name, _spark_jobs(p), task=(1.0, 3072.0))
    return GangFramework(engine, name, size=p["torque_ranks"], runs=p["torque_jobs"],
                         run_s=p["torque_s"], task=(2.0, 4096.0))


def _job_times(fw: SimFramework) -> list[float]:
    if isinstance(fw, BatchFramework):
        return [r.duration for r in fw.records.values() if r.duration is not None]
    if isinstance(fw, IterativeFramework):
        return [j.finished - j.submitted for j in fw.jobs if j.finished is not None]
    assert isinstance(fw, GangFramework)
    return list(fw.job_times)


def _done(fw: SimFramework) -> bool:
    return bool(getattr(fw, "done"))  # noqa: B009 - every workload framework has `done`


def run(scale: str, seed: int, progress: Progress | None = None, cost: str | None = None) -> Result:
    progress = progress or NoProgress()
    cost = cost or DEFAULT_COST
    p = PARAMS[scale]
    wall = time.monotonic()
    horizon = 50_000.0
    part = p["partition"]
    results: dict[str, dict] = {}

    # Static partitions: each framework alone on `part` agents, its data on them.
    static_span = 0.0
    static_frameworks = []
    for k, name in enumerate(FRAMEWORKS):
        progress.start(f"static: {name}", 1.0)
        cluster = SimCluster(seed=seed + k, cost=cost)
        hosts = [f"node{k * part + i}" for i in range(part)]
        cluster.add_agents(part, AGENT, names=hosts)
        start = cluster.engine.now
        fw = cluster.add_framework(_build(name, cluster.engine, p, hosts, seed))
        cluster.run(until=start + horizon, stop=lambda fw=fw: _done(fw),
                    progress=lambda now, s=start: progress.update(min(1.0, (now - s) / 4000)))
        results[name] = {"static": _job_times(fw)}
        static_span = max(static_span, cluster.engine.now - start)
        static_frameworks.append((fw, start))

    # All four on one mezzo master.
    progress.start("mezzo: all four", 1.0)
    cluster = SimCluster(seed=seed, cost=cost)
    hosts = [f"node{i}" for i in range(4 * part)]
    cluster.add_agents(4 * part, AGENT, names=hosts)
    start = cluster.engine.now
    frameworks = [cluster.add_framework(_build(n, cluster.engine, p, hosts, seed)) for n in FRAMEWORKS]
    cluster.run(until=start + horizon, stop=lambda: all(_done(f) for f in frameworks),
                progress=lambda now: progress.update(min(1.0, (now - start) / 4000)))
    mesos_span = cluster.engine.now - start
    # The window: until the last elastic framework's last task ended on the shared cluster.
    window = max(max((b for _a, b in f.usage.intervals), default=start)  # type: ignore[attr-defined]
                 for f in frameworks if not isinstance(f, GangFramework)) - start

    def used(pairs: list[tuple[SimFramework, float]]) -> tuple[float, float]:
        cpu = mem = 0.0
        for fw, t0 in pairs:
            c, m = fw.usage.used_until(t0 + window)  # type: ignore[attr-defined]
            cpu, mem = cpu + c, mem + m
        return cpu, mem

    static_usage = used(static_frameworks)
    mesos_usage = used([(f, start) for f in frameworks])
    for name, fw in zip(FRAMEWORKS, frameworks, strict=True):
        results[name]["mesos"] = _job_times(fw)

    rows = []
    for name in FRAMEWORKS:
        s, m = sum(results[name]["static"]), sum(results[name]["mesos"])
        rows.append({"framework": name, "speedup": round(s / m, 2) if m else None,
                     "static_sum_s": round(s, 1), "mezzo_sum_s": round(m, 1),
                     "jobs": len(results[name]["mesos"])})
    cap_cpu, cap_mem = 4 * part * AGENT_CPUS, 4 * part * AGENT_MEM
    util = {
        "static": (static_usage[0] / (cap_cpu * window), static_usage[1] / (cap_mem * window)),
        "mesos": (mesos_usage[0] / (cap_cpu * window), mesos_usage[1] / (cap_mem * window)),
    }
    cpu_gain = 100.0 * (util["mesos"][0] / util["static"][0] - 1)
    mem_gain = 100.0 * (util["mesos"][1] / util["static"][1] - 1)
    table = markdown_table(
        ["framework", "paper static (s)", "paper Mesos (s)", "paper speed-up",
         "mezzo static (s)", "mezzo (s)", "mezzo speed-up"],
        [[r["framework"], PAPER["sum_of_job_times_s"][r["framework"]]["static"],
          PAPER["sum_of_job_times_s"][r["framework"]]["mesos"], PAPER["speedup"][r["framework"]],
          r["static_sum_s"], r["mezzo_sum_s"], r["speedup"]] for r in rows],
    ) + (f"\nUtilisation gain of sharing: CPU {cpu_gain:+.1f}% (paper +10%), memory "
         f"{mem_gain:+.1f}% (paper +17%), over the first {window:,.0f} s; makespan "
         f"{static_span:,.0f} s static vs {mesos_span:,.0f} s shared.\n")
    return Result("macro", scale, seed, rows, PAPER, table=table, extra={
        "cpu_util_gain_pct": round(cpu_gain, 1), "mem_util_gain_pct": round(mem_gain, 1),
        "utilisation": {k: {"cpu": round(v[0], 3), "mem": round(v[1], 3)} for k, v in util.items()},
        "makespan_s": {"static": round(static_span, 1), "mezzo": round(mesos_span, 1)},
        "utilisation_window_s": round(window, 1),
        "cost_model": cost, "params": p, "wall_s": round(time.monotonic() - wall, 1),
    })


def plot(result: Result, fig) -> None:  # type: ignore[no-untyped-def]
    ax = fig.add_subplot(1, 1, 1)
    names = [r["framework"] for r in result.rows]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [result.paper["speedup"][n] for n in names], 0.4,
           label="paper", color="tab:grey")
    ax.bar([x + 0.2 for x in xs], [r["speedup"] or 0 for r in result.rows], 0.4,
           label="mezzo (simulated)", color="tab:blue")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("speed-up vs static partitioning")
    ax.set_title("Macrobenchmark (Table 4)")
    ax.legend()
