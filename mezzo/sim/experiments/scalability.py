"""Scalability (§6.5, Fig. 10): the overhead of launching a task as the cluster grows.

As in the paper: 200 frameworks keep the cluster full, each launching a new task as soon as
it is offered room, with task durations drawn from N(30 s, 10 s). Once the cluster is in
steady state (all agents busy, tasks ending and being replaced continuously) a test framework
registers and launches one 10 s task; the overhead is the time beyond 10 s from its
registration to the report of the task's completion. The master's cost is the CPU time its
real code took (`--cost measured`, the default here), so the figure measures mezzo.

Each agent has room for one task (`cpus:1;mem:1024`, the tasks' size), so N agents carry
N/30 task launches per second in steady state, and every launch costs the master an ACCEPT,
two status updates and two acknowledgements, plus an allocation. Three test frameworks
register 10 s apart; the row reports their mean overhead (and the worst).
"""

from __future__ import annotations

import gc
import random
import time

import psutil

from mezzo.sim.cluster import SimCluster
from mezzo.sim.frameworks import ContinuousFramework, ProbeFramework, normal_duration
from mezzo.sim.report import NoProgress, Progress, Result, markdown_table

TITLE = "Scalability: overhead of launching a task, 1,000 -> 50,000 agents (Fig. 10)"
DEFAULT_COST = "measured"
AGENTS = {"small": [100, 400],
          "paper": [1_000, 5_000, 10_000, 20_000, 30_000, 40_000, 50_000]}
FRAMEWORKS = {"small": 20, "paper": 200}
PAPER = {
    "figure": "Fig. 10",
    "overhead_s": {"50000": 0.75},
    "claim": "overhead under 1 s from 1,000 to 50,000 agents; about 0.75 s at 50,000",
}
TASK = "cpus:1;mem:1024"
# Registration spread 10 s, then at least two mean task lengths to mix the ages; a large
# cluster's first launches take the master longer (SUBSCRIBE of every agent, then a launch
# per agent), so they get a second per thousand agents more.
WARMUP = 60.0
WARMUP_PER_1000_AGENTS = 1.0
# How long after the last probe registered its task may take to be reported (a saturated
# master delays it; the row then shows how much).
PROBE_PATIENCE = 60.0
PROBES = 3
PROBE_GAP = 10.0
PROBE_LENGTH = 10.0


def run_point(agents: int, frameworks: int, seed: int, cost: str, progress: Progress) -> dict:
    gc.collect()
    cluster = SimCluster(seed=seed, cost=cost)
    rng = random.Random(seed)
    cluster.add_agents(agents, TASK, spread=10.0)
    load = [
        ContinuousFramework(cluster.engine, f"load{i}", task=(1.0, 1024.0),
                            duration=normal_duration(rng, 30.0, 10.0))
        for i in range(frameworks)
    ]
    for framework in load:
        cluster.add_framework(framework)
    engine = cluster.engine
    start = engine.now
    warmup = WARMUP + WARMUP_PER_1000_AGENTS * agents / 1000
    horizon = warmup + PROBES * PROBE_GAP + PROBE_LENGTH + PROBE_PATIENCE
    progress.start(f"{agents:,} agents", horizon)
    cluster.run(until=start + warmup, progress=lambda now: progress.update(now - start))
    master = cluster.master
    busy0, t0 = master.busy_seconds, engine.now
    launched0 = sum(f.launched for f in load)
    kinds0 = {kind: (stat.count, stat.seconds) for kind, stat in master.stats.items()}
    gc0 = (getattr(master.cost, "gc_seconds", 0.0), getattr(master.cost, "gc_charged", 0.0))
    probes = [
        cluster.add_framework(
            ProbeFramework(engine, f"probe{k}", length=PROBE_LENGTH, resources=TASK),
            at=t0 + k * PROBE_GAP,
        )
        for k in range(PROBES)
    ]
    cluster.run(
        until=start + horizon,
        # Checked after every event: the last probe (usually the last to finish) first.
        stop=lambda: probes[-1].done_at is not None  # type: ignore[attr-defined]
        and all(p.done_at is not None for p in probes),  # type: ignore[attr-defined]
        progress=lambda now: progress.update(now - start),
    )
    progress.update(horizon)
    window = engine.now - t0
    overheads = [p.overhead for p in probes if p.overhead is not None]  # type: ignore[attr-defined]
    running = sum(a.running_tasks for a in cluster.agents)
    launches = (sum(f.launched for f in load) - launched0) / window
    busy = (master.busy_seconds - busy0) / window
    launched = max(launches * window, 1.0)
    # Where the master's time went over the window: per job kind, jobs and µs per launch
    # (the core's measured time plus the shell's, writes included).
    kinds = {}
    for kind, stat in sorted(master.stats.items()):
        count0, seconds0 = kinds0.get(kind, (0, 0.0))
        if stat.count > count0:
            kinds[kind] = {"per_launch": round((stat.count - count0) / launched, 2),
                           "us_per_launch": round(1e6 * (stat.seconds - seconds0) / launched, 1)}
    gc_whole = getattr(master.cost, "gc_seconds", 0.0) - gc0[0]
    gc_charged = getattr(master.cost, "gc_charged", 0.0) - gc0[1]
    return {
        "agents": agents,
        "frameworks": frameworks,
        "overhead_s": round(sum(overheads) / len(overheads), 4) if overheads else None,
        "overhead_max_s": round(max(overheads), 4) if overheads else None,
        "master_cpu_pct": round(100.0 * busy, 2),
        "launches_per_s": round(launches, 1),
        "master_ms_per_launch": round(1000.0 * busy / launches, 3) if launches else None,
        "master_rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
        "busy_agents_pct": round(100.0 * running / agents, 1),
        "tasks_per_s": round(agents / 30.0, 1),
        "master_jobs": master.jobs,
        "kinds": kinds,
        "gc_in_master_jobs_us_per_launch": round(1e6 * gc_whole / launched, 1),
        "gc_charged_us_per_launch": round(1e6 * gc_charged / launched, 1),
        "gc_share": round(getattr(master.cost, "gc_share", 1.0), 3),
    }


def run(scale: str, seed: int, progress: Progress | None = None, cost: str | None = None,
        agents: list[int] | None = None) -> Result:
    progress = progress or NoProgress()
    cost = cost or DEFAULT_COST
    rows = []
    wall = time.monotonic()
    for n in agents or AGENTS[scale]:
        rows.append(run_point(n, FRAMEWORKS[scale], seed, cost, progress))
    table = markdown_table(
        ["agents", "paper overhead (s)", "mezzo overhead (s)", "worst of 3 (s)",
         "master CPU %", "launches/s (needed)", "master ms per launch", "agents busy %",
         "RSS (MB)"],
        [[f"{r['agents']:,}", "0.75" if r["agents"] == 50_000 else "< 1", r["overhead_s"],
          r["overhead_max_s"], r["master_cpu_pct"],
          f"{r['launches_per_s']:,.0f} ({r['tasks_per_s']:,.0f})", r["master_ms_per_launch"],
          r["busy_agents_pct"], r["master_rss_mb"]] for r in rows],
    )
    return Result(
        "scalability", scale, seed, rows, PAPER, table=table,
        extra={"cost_model": cost, "wall_s": round(time.monotonic() - wall, 1)},
    )


def plot(result: Result, fig) -> None:  # type: ignore[no-untyped-def]
    ax = fig.add_subplot(1, 1, 1)
    done = [r for r in result.rows if r["overhead_s"] is not None]
    stuck = [r for r in result.rows if r["overhead_s"] is None]
    # Log scale: milliseconds when the master keeps up, up to a minute when it does not.
    ax.set_yscale("log")
    ax.plot([r["agents"] for r in done], [max(r["overhead_s"], 1e-3) for r in done], "o-",
            label="mezzo (simulated)")
    top = max([2.0] + [3.0 * r["overhead_s"] for r in done])
    if stuck:
        # A saturated master: the test framework's task was not reported within the window.
        ax.plot([r["agents"] for r in stuck], [0.6 * top] * len(stuck), "x", color="tab:blue",
                markersize=10, label="mezzo: not reported within the window (saturated)")
    ax.plot([50_000], [0.75], "s", color="tab:red", label="paper (50,000 agents)")
    ax.axhline(1.0, color="grey", linestyle=":", label="paper: < 1 s throughout")
    ax.set_ylim(1e-3, top)
    ax.set_xlabel("agents")
    ax.set_ylabel("task launch overhead (s, log scale)")
    ax.set_title("Scalability (Fig. 10)")
    ax2 = ax.twinx()
    ax2.plot([r["agents"] for r in result.rows], [r["master_cpu_pct"] for r in result.rows], "^--",
             color="tab:green", label="master CPU % (right)")
    ax2.set_ylabel("master CPU % (one core)")
    ax2.set_ylim(0, 110)
    lines, labels = ax.get_legend_handles_labels()
    lines2, labels2 = ax2.get_legend_handles_labels()
    ax.legend(lines + lines2, labels + labels2, loc="upper left", fontsize="small")
