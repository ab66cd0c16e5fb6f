"""Calibration: the simulator's figures for the shapes the real-process benchmarks measure.

- `launch_latency`: as `bench/launch.py latency`: one agent, one framework launching one
  task at a time; ACCEPT sent -> TASK_RUNNING received by the scheduler.
- `launch_rate`: as `bench/launch.py rate`: 100 agents, every offer accepted with 10 (or 1)
  tiny tasks, tasks never end; TASK_RUNNING updates per second once the master is saturated,
  and the master's CPU time per task (the figure to compare: the real benchmark's rate is
  bounded by its client processes, which share the machine's two CPUs with the master).
- `scale_shape`: as `bench/scale.py`: agents of 8 cpus, 200 frameworks launching 1-cpu tasks
  of N(30 s, 10 s) on every offer; test frameworks measure SUBSCRIBE sent -> TASK_RUNNING.
- `fixed_costs`: median measured service time per job kind from a measured run (the source of
  `master_node.FIXED_COSTS`).
- `launch_costs`: where the master's CPU goes per launch in the scalability shape: per job
  kind, jobs per launch and the core's and the shell's time per launch (docs/evaluation.md,
  "Where the master's CPU goes per launch").

- `failover_shape`: as `bench/scale.py --failover` at 1,000 agents: the scale shape, the leader
  killed, everyone back.

`mezzo sim calibrate` prints them next to the benchmarks' figures (docs/benchmarks.md); the
comparison is in docs/evaluation.md.
"""

from __future__ import annotations

import statistics

from mezzo.api.common import Offer, TaskState, TaskStatus
from mezzo.sim.cluster import SimCluster
from mezzo.sim.engine import Engine
from mezzo.sim.framework import SimFramework


class _Sequential(SimFramework):
    """Launches one task per offer, the next when the previous is RUNNING."""

    def __init__(self, engine: Engine, launches: int) -> None:
        super().__init__(engine, "calibrate")
        self.left = launches
        self.sent_at: float | None = None
        self.samples: list[float] = []

    def on_offers(self, offers: list[Offer]) -> None:
        for offer in offers:
            if self.left and self.sent_at is None:
                self.left -= 1
                self.sent_at = self.engine.now
                self.launch([offer.id.value], [self.task(offer, "cpus:0.01;mem:1", 0.0)], refuse=0.0)
            else:
                self.decline([offer.id.value], refuse=0.0)

    def on_update(self, status: TaskStatus) -> None:
        if status.state == TaskState.TASK_RUNNING and self.sent_at is not None:
            self.samples.append(self.engine.now - self.sent_at)
            self.sent_at = None


class _Flood(SimFramework):
    """Accepts every offer with `per_accept` tasks that never end; counts TASK_RUNNING."""

    def __init__(self, engine: Engine, per_accept: int) -> None:
        super().__init__(engine, "flood")
        self.per_accept = per_accept
        self.running = 0

    def on_offers(self, offers: list[Offer]) -> None:
        for offer in offers:
            tasks = [self.task(offer, "cpus:0.01;mem:1", None) for _ in range(self.per_accept)]
            self.launch([offer.id.value], tasks, refuse=0.0)

    def on_update(self, status: TaskStatus) -> None:
        if status.state == TaskState.TASK_RUNNING:
            self.running += 1


def launch_latency(launches: int = 500, cost: str = "measured", latency: float | None = None) -> dict:
    kw = {} if latency is None else {"latency": latency}
    cluster = SimCluster(seed=1, cost=cost, **kw)
    cluster.add_agents(1, "cpus:64;mem:65536")
    fw = _Sequential(cluster.engine, launches)
    cluster.add_framework(fw)
    cluster.run_for(launches * 2.0, stop=lambda: len(fw.samples) >= launches)
    samples = sorted(fw.samples)
    return {"launches": len(samples),
            "p50_ms": round(1000 * statistics.median(samples), 3),
            "p99_ms": round(1000 * samples[int(0.99 * (len(samples) - 1))], 3)}


def launch_rate(agents: int = 100, per_accept: int = 10, seconds: float = 10.0,
                cost: str = "measured") -> dict:
    """The rate once the master is saturated, and what bench/launch.py's rate mode also
    reports: the master's CPU time (its busy time here) per task launched."""
    cluster = SimCluster(seed=1, cost=cost)
    cluster.add_agents(agents, "cpus:100000;mem:10000000")
    fw = _Flood(cluster.engine, per_accept)
    cluster.add_framework(fw)
    cluster.run_for(2.0)
    master = cluster.master
    before, t0, busy0 = fw.running, cluster.engine.now, master.busy_seconds
    cluster.run_for(seconds)
    tasks = max(fw.running - before, 1)
    return {"tasks_per_s": round(tasks / (cluster.engine.now - t0), 1),
            "master_cpu_ms_per_task": round(1000 * (master.busy_seconds - busy0) / tasks, 3)}


def scalability_cluster(
    agents: int, frameworks: int = 200, *, keep_samples: bool = False
) -> tuple[SimCluster, list[SimFramework]]:
    """The scalability experiment's shape with measured costs, not yet run: `agents` of one
    1-cpu task each, `frameworks` launching tasks of N(30 s, 10 s) on every offer."""
    import random

    from mezzo.sim.frameworks import ContinuousFramework, normal_duration

    cluster = SimCluster(seed=1, cost="measured", keep_samples=keep_samples)
    rng = random.Random(1)
    cluster.add_agents(agents, "cpus:1;mem:1024", spread=10.0)
    load = [
        cluster.add_framework(ContinuousFramework(
            cluster.engine, f"l{i}", task=(1.0, 1024.0), duration=normal_duration(rng, 30.0, 10.0)))
        for i in range(frameworks)
    ]
    return cluster, load


def fixed_costs(agents: int = 2000) -> dict[str, tuple[float, int]]:
    """Median measured service time (µs) and sample count per job kind, from a measured run
    of the scalability shape."""
    cluster, _ = scalability_cluster(agents, keep_samples=True)
    # The table is charged times CORE_SLOWDOWN (`FixedCost`): its source is the simulator's own
    # measurement, without it.
    cluster.master.cost.core_factor = 1.0  # type: ignore[attr-defined]
    cluster.master.regimes = False  # nor times the regimes' factors
    cluster.run_for(60.0)
    return {kind: (round(1e6 * statistics.median(s.samples), 1), len(s.samples))
            for kind, s in sorted(cluster.master.stats.items()) if s.samples}


def launch_costs(agents: int = 2000, warmup: float = 60.0, window: float = 30.0) -> dict:
    """The scalability experiment's shape (agents of one task, 200 frameworks, N(30 s, 10 s))
    with measured costs: over a steady window after `warmup`, per job kind, how many jobs a
    launch causes and their core (measured: decode, core, encode) and shell (calibrated
    overheads) time per launch, in µs."""
    cluster, load = scalability_cluster(agents, keep_samples=True)
    cluster.run_for(warmup)
    stats = cluster.master.stats
    before = {kind: (s.count, s.seconds, sum(s.samples)) for kind, s in stats.items()}
    launched0 = sum(f.launched for f in load)  # type: ignore[attr-defined]
    cluster.run_for(window)
    launches = max(sum(f.launched for f in load) - launched0, 1)  # type: ignore[attr-defined]
    out: dict[str, dict[str, float]] = {}
    for kind, stat in sorted(stats.items()):
        count0, seconds0, core0 = before.get(kind, (0, 0.0, 0.0))
        if stat.count == count0:
            continue  # none in the window (subscriptions, recovery)
        core = sum(stat.samples) - core0
        total = stat.seconds - seconds0
        out[kind] = {"per_launch": round((stat.count - count0) / launches, 2),
                     "core_us": round(1e6 * core / launches, 1),
                     "shell_us": round(1e6 * (total - core) / launches, 1),
                     "total_us": round(1e6 * total / launches, 1)}
    return {"agents": agents, "launches_per_s": round(launches / window, 1), "kinds": out}


def _scale_cluster(agents: int, frameworks: int, cost: str, *,
                   settle: float) -> tuple[SimCluster, list[SimFramework]]:
    """bench/scale.py's cluster in the simulator, run for `settle` seconds: agents of 8 cpus
    (with its disk and ports), `frameworks` filling every offer with 1-cpu tasks and killing
    each after N(30 s, 10 s). Returns the cluster and the load's frameworks."""
    import random

    from mezzo.sim.frameworks import ContinuousFramework, normal_duration

    cluster = SimCluster(seed=1, cost=cost)
    rng = random.Random(1)
    cluster.add_agents(agents, "cpus:8;mem:16384;disk:100000;ports:[31000-32000]", spread=10.0)
    load = [cluster.add_framework(ContinuousFramework(
        cluster.engine, f"l{i}", task=(1.0, 2048.0), duration=normal_duration(rng, 30.0, 10.0),
        kill=True)) for i in range(frameworks)]
    cluster.run_for(settle)
    return cluster, load


def scale_shape(agents: int = 1000, frameworks: int = 200, samples: int = 10,
                cost: str = "measured") -> dict:
    """bench/scale.py's shape in the simulator: agents of 8 cpus (with its disk and ports), 200
    frameworks filling every offer with 1-cpu tasks and killing each after N(30 s, 10 s); after
    a settling period, a
    steady window in which test frameworks measure SUBSCRIBE sent -> TASK_RUNNING one after
    another. Reports what the benchmark reports: the launch overhead, the master's CPU % and
    launches per second over the window, and from them the master's CPU time per launch."""
    from mezzo.sim.frameworks import ProbeFramework

    cluster, load = _scale_cluster(agents, frameworks, cost, settle=60.0)
    master = cluster.master
    busy0, t0 = master.busy_seconds, cluster.engine.now
    launched0 = sum(f.launched for f in load)  # type: ignore[attr-defined]
    probes = [cluster.add_framework(
        ProbeFramework(cluster.engine, f"probe{k}", length=10.0, resources="cpus:1;mem:2048"),
        at=t0 + 2.0 * k) for k in range(samples)]
    cluster.run_for(2.0 * samples + 15.0)
    window = cluster.engine.now - t0
    launches = (sum(f.launched for f in load) - launched0) / window  # type: ignore[attr-defined]
    busy = (master.busy_seconds - busy0) / window
    overheads = sorted(p.running_at - p.started_at for p in probes  # type: ignore[attr-defined,operator]
                       if p.running_at is not None)  # type: ignore[attr-defined]
    return {"agents": agents,
            "launch_overhead_p50_s": round(statistics.median(overheads), 4),
            "launch_overhead_p99_s": round(overheads[-1], 4),
            "master_cpu_pct": round(100 * busy, 1),
            "launches_per_s": round(launches, 1),
            "master_cpu_ms_per_launch": round(1000 * busy / launches, 3) if launches else None}


# What the real failover spends outside the masters, which the simulator does not run: the
# standby is elected ELECTION_DELAY after the session timeout (ZooKeeper expires sessions on
# its own tick), and the clients' detectors name it about when it is elected. Measured by
# `bench/scale.py --sizes 1000 --failover --session-timeout 2secs --settle 30 --window 20
# --samples 5` (2026-12-06 03:41, load 2.9): elected 2.30 s after the kill, the six agent
# processes' detectors named it at 2.28-2.35 s; DETECT_DELAY is the simulator's 50 ms.
ELECTION_DELAY = 0.30
DETECT_DELAY = 0.05


def failover_shape(agents: int = 1000, frameworks: int = 200, *, session_timeout: float = 2.0,
                   election_delay: float = ELECTION_DELAY, detect_delay: float = DETECT_DELAY,
                   backoff: float = 0.05,
                   cost: str = "measured") -> dict:
    """`bench/scale.py --failover`'s shape in the simulator: the scale shape (`scale_shape`) run
    for 40 s, then the leader dies; a standby is elected `session_timeout + election_delay`
    later (ZooKeeper is not simulated: the delay beyond the session timeout is a measured
    input), the clients hear of it `detect_delay` later and re-subscribe within `backoff`.
    Reports what the benchmark's clients' clocks report: from the kill until every agent and
    every framework was subscribed again."""
    cluster, load = _scale_cluster(agents, frameworks, cost, settle=40.0)
    tasks = sum(a.running_tasks for a in cluster.agents)
    crash = cluster.engine.now
    cluster.fail_over(session_timeout=session_timeout + election_delay, detect_delay=detect_delay,
                      agent_backoff=backoff, framework_backoff=backoff)

    def back() -> bool:
        return (all(a.subscribed and a.registered_at is not None and a.registered_at > crash
                    for a in cluster.agents)
                and all(f.connected and f.subscribed_at is not None and f.subscribed_at > crash
                        for f in load))

    cluster.run(until=crash + 120.0, stop=back)
    return {"agents": agents, "tasks": tasks,
            "elected_s": round(session_timeout + election_delay, 3),
            "agents_back_s": round(max(a.registered_at or 0.0 for a in cluster.agents) - crash, 3),
            "frameworks_back_s": round(max(f.subscribed_at or 0.0 for f in load) - crash, 3),
            "all_back_s": round(cluster.engine.now - crash, 3),
            "reregistration_cpu_s": round(cluster.master.stats["agent.SUBSCRIBE"].seconds, 3)}
