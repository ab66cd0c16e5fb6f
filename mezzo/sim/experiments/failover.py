"""Master failover (§6.6): mean time to recovery as the cluster grows.

200 frameworks run tasks on every agent (one long task per agent, so that each agent has
something to re-register with). Then the leading master dies. Its ZooKeeper session expires
`session_timeout` later, and ZooKeeper's own delay beyond that later (`calibration.ELECTION_DELAY`,
0.3 s measured with `bench/scale.py --failover`) a standby is elected; it recovers the registry (the same store:
admitted agents) and serves. Agents and frameworks follow the leader advertised in ZooKeeper:
each hears of the new leader a detection delay (50 ms) later and re-subscribes after a small
jitter (up to 50 ms: the emulated agents of bench/failover.py wake at once on a leader change,
the SDK likewise). The new master rebuilds frameworks and tasks from the agents'
re-registrations, each costing the CPU time the real code takes (`--cost measured`).

MTTR: from the crash until every agent and every framework is registered with the new
master. Default session timeout 2 s (bench/failover.py's, for calibration); Mesos's default is
10 s and the paper does not say which it used.
"""

from __future__ import annotations

import random
import time

from mezzo.sim.calibration import ELECTION_DELAY
from mezzo.sim.cluster import SimCluster
from mezzo.sim.frameworks import ContinuousFramework
from mezzo.sim.report import NoProgress, Progress, Result, markdown_table

TITLE = "Master failover: mean time to recovery (§6.6)"
DEFAULT_COST = "measured"
AGENTS = {"small": [50, 200], "paper": [200, 1_000, 2_000, 4_000, 10_000, 50_000]}
FRAMEWORKS = {"small": 20, "paper": 200}
SESSION_TIMEOUT = 2.0
PAPER = {
    "section": "§6.6",
    "mttr_s": [4, 8],
    "claim": "MTTR between 4 and 8 s for 200 frameworks and 200 to 4,000 agents "
             "(95% confidence intervals up to 3 s)",
}
TASK = "cpus:1;mem:1024"


def run_point(agents: int, frameworks: int, seed: int, cost: str, session_timeout: float,
              progress: Progress) -> dict:
    cluster = SimCluster(seed=seed, cost=cost)
    rng = random.Random(seed)
    cluster.add_agents(agents, TASK, spread=5.0)
    fws = [cluster.add_framework(ContinuousFramework(
        cluster.engine, f"fw{i}", task=(1.0, 1024.0), duration=lambda: rng.uniform(3600, 7200)))
        for i in range(frameworks)]
    engine = cluster.engine
    start = engine.now
    progress.start(f"{agents:,} agents", 1.0)
    # Long enough for every agent to have its task: a large cluster's registrations and first
    # launches take the master a second or so per thousand agents.
    warmup = 20.0 + agents / 1000
    cluster.run(until=start + warmup,
                progress=lambda now: progress.update((now - start) / (2 * warmup)))
    running = sum(a.running_tasks for a in cluster.agents)
    crash = engine.now
    cluster.fail_over(session_timeout=session_timeout + ELECTION_DELAY, detect_delay=0.05, agent_backoff=0.05,
                      framework_backoff=0.05)

    def recovered() -> bool:
        return (all(a.subscribed and a.registered_at is not None and a.registered_at > crash
                    for a in cluster.agents)
                and all(f.connected and f.subscribed_at is not None and f.subscribed_at > crash
                        for f in fws))

    cluster.run(until=crash + 600.0, stop=recovered,
                progress=lambda now: progress.update(0.5 + (now - crash) / 40.0))
    progress.update(1.0)
    agents_back = max(a.registered_at or 0.0 for a in cluster.agents) - crash
    frameworks_back = max(f.subscribed_at or 0.0 for f in fws) - crash
    master = cluster.master.master
    return {
        "agents": agents,
        "frameworks": frameworks,
        "mttr_s": round(engine.now - crash, 3),
        "agents_back_s": round(agents_back, 3),
        "frameworks_back_s": round(frameworks_back, 3),
        "session_timeout_s": session_timeout,
        "elected_s": round(session_timeout + ELECTION_DELAY, 3),
        "tasks_before": running,
        "tasks_known_after": sum(len(a.tasks) for a in master.agents.values()),
        "reregistration_cpu_s": round(cluster.master.stats["agent.SUBSCRIBE"].seconds, 3),
    }


def run(scale: str, seed: int, progress: Progress | None = None, cost: str | None = None,
        session_timeout: float = SESSION_TIMEOUT, agents: list[int] | None = None) -> Result:
    progress = progress or NoProgress()
    cost = cost or DEFAULT_COST
    wall = time.monotonic()
    rows = [run_point(n, FRAMEWORKS[scale], seed, cost, session_timeout, progress)
            for n in agents or AGENTS[scale]]
    table = markdown_table(
        ["agents", "paper MTTR (s)", "mezzo MTTR (s)", "of which election (s)",
         "agents back (s)", "frameworks back (s)", "tasks before / known after"],
        [[f"{r['agents']:,}", "4-8" if r["agents"] <= 4000 else "—", r["mttr_s"],
          r["elected_s"], r["agents_back_s"], r["frameworks_back_s"],
          f"{r['tasks_before']:,} / {r['tasks_known_after']:,}"] for r in rows],
    )
    return Result("failover", scale, seed, rows, PAPER, table=table, extra={
        "cost_model": cost, "session_timeout_s": session_timeout, "election_delay_s": ELECTION_DELAY,
        "wall_s": round(time.monotonic() - wall, 1)})


def plot(result: Result, fig) -> None:  # type: ignore[no-untyped-def]
    ax = fig.add_subplot(1, 1, 1)
    xs = [r["agents"] for r in result.rows]
    ax.plot(xs, [r["mttr_s"] for r in result.rows], "o-", label="mezzo MTTR (simulated)")
    ax.plot(xs, [r["elected_s"] for r in result.rows], ":", color="grey",
            label="standby elected (session timeout + ZooKeeper's delay)")
    ax.axhspan(4, 8, color="tab:red", alpha=0.15, label="paper: 4-8 s (200-4,000 agents)")
    ax.set_xscale("log")
    ax.set_xlabel("agents")
    ax.set_ylabel("time to recovery (s)")
    ax.set_title("Master failover (§6.6)")
    ax.legend()
