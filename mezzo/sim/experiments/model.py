"""§4.2's analytic model (Table 2) against the simulation.

The model: a framework entitled to k slots arrives at a cluster whose slots are all busy with
other frameworks' tasks; slots free up as those tasks end, and the allocator (DRF here) hands
each freed slot to the newcomer until it holds its k. Tasks last T on average, constant or
exponentially distributed. The framework's job is β·k·T of work. An *elastic* framework
starts a task on every slot it gets; a *rigid* one (MPI) needs all k slots before it can
start, and holds (hoards) the ones it got meanwhile. Table 2 of the paper:

| | elastic, constant | elastic, exponential | rigid, constant | rigid, exponential |
|---|---|---|---|---|
| ramp-up time | T | T ln k | T | T ln k |
| completion time | (1/2 + β) T | (1 + β) T | (1 + β) T | (ln k + β) T |
| utilisation | 1 | 1 | β / (1/2 + β) | β / (ln k − 1 + β) |

The simulation: k one-slot agents (the newcomer's share), a background framework keeping every
slot busy with tasks of duration T (constant, with start times spread over T so that remaining
times are uniform, or exponential); at steady state the test framework arrives and the
background stops launching on those slots (they are the newcomer's share now), so each slot
goes to the newcomer as its task ends. Elastic: β·k tasks of the same
distribution, at most k at a time. Rigid: one gang of k ranks of β·T each (`GangPlanner`).
Ramp-up: arrival until k slots are held; completion: arrival until the work is done;
utilisation: useful slot-seconds over slot-seconds held. Averaged over several arrivals.
"""

from __future__ import annotations

import math
import random
import time

from mezzo.api.common import Offer, TaskState, TaskStatus, is_terminal
from mezzo.sim.cluster import SimCluster
from mezzo.sim.engine import Engine
from mezzo.sim.framework import SimFramework
from mezzo.sim.frameworks import ContinuousFramework
from mezzo.sim.report import NoProgress, Progress, Result, markdown_table
from mezzo.sim.workload_frameworks import GangFramework

TITLE = "§4.2 analytic model (Table 2) vs simulation"
DEFAULT_COST = "fixed"
T = 30.0
BETA = 2.0
PARAMS = {"small": {"k": 10, "repeats": 2}, "paper": {"k": 20, "repeats": 8}}
PAPER = {"table": "Table 2", "T_s": T, "beta": BETA}
SLOT = "cpus:1;mem:1024"


def analytic(k: int) -> dict[str, dict[str, float]]:
    ln = math.log(k)
    return {
        "elastic/constant": {"ramp_up_s": T, "completion_s": (0.5 + BETA) * T, "utilization": 1.0},
        "elastic/exponential": {"ramp_up_s": T * ln, "completion_s": (1 + BETA) * T, "utilization": 1.0},
        "rigid/constant": {"ramp_up_s": T, "completion_s": (1 + BETA) * T,
                           "utilization": BETA / (0.5 + BETA)},
        "rigid/exponential": {"ramp_up_s": T * ln, "completion_s": (ln + BETA) * T,
                              "utilization": BETA / (ln - 1 + BETA)},
    }


class ElasticJob(SimFramework):
    """`tasks` tasks, at most `k` running, each of `duration()` seconds."""

    def __init__(self, engine: Engine, name: str, *, k: int, tasks: int, duration) -> None:  # type: ignore[no-untyped-def]
        super().__init__(engine, name)
        self.k, self.left, self.duration = k, tasks, duration
        self.slots_seen: set[str] = set()
        self.running = 0
        self.remaining = tasks
        self.full_at: float | None = None
        self.done_at: float | None = None
        self.busy = 0.0
        self._started: dict[str, float] = {}

    def on_offers(self, offers: list[Offer]) -> None:
        for offer in offers:
            # Ramped up once it has been offered all k slots (with exponential durations its
            # own short tasks may end, and their slots come back, before k run at once).
            self.slots_seen.add(offer.agent_id.value)
            if len(self.slots_seen) == self.k and self.full_at is None:
                self.full_at = self.engine.now
            if self.left and self.running < self.k:
                self.left -= 1
                self.running += 1
                self.launch([offer.id.value], [self.task(offer, SLOT, self.duration())], refuse=0.0)
            else:
                self.decline([offer.id.value], refuse=3600.0 if not self.left else 0.0)

    def on_update(self, status: TaskStatus) -> None:
        name = status.task_id.value
        if status.state == TaskState.TASK_RUNNING:
            self._started[name] = self.engine.now
        elif is_terminal(status.state):
            self.busy += self.engine.now - self._started.pop(name, self.engine.now)
            self.running -= 1
            self.remaining -= 1
            if self.remaining == 0:
                self.done_at = self.engine.now


def simulate(kind: str, dist: str, k: int, seed: int, cost: str) -> dict[str, float]:
    rng = random.Random(seed)

    def draw() -> float:
        return T if dist == "constant" else rng.expovariate(1.0 / T)

    cluster = SimCluster(seed=seed, cost=cost)
    # Constant durations: agents come up over T, so background tasks end uniformly spread.
    cluster.add_agents(k, SLOT, spread=T)
    background = ContinuousFramework(cluster.engine, "background", task=(1.0, 1024.0),
                                     duration=draw, refuse=0.0)
    cluster.add_framework(background)
    engine = cluster.engine
    cluster.run(until=engine.now + 3 * T + rng.uniform(0, T))
    arrival = engine.now
    background.paused = True
    if kind == "elastic":
        job = ElasticJob(engine, "job", k=k, tasks=int(BETA * k), duration=draw)
        cluster.add_framework(job)
        cluster.run(until=arrival + 50 * T,
                    stop=lambda: job.done_at is not None and job.full_at is not None)
        assert job.done_at is not None
        held = job.busy  # an elastic job holds a slot exactly while a task runs on it
        full_at = job.full_at if job.full_at is not None else job.done_at
        return {"ramp_up_s": full_at - arrival, "completion_s": job.done_at - arrival,
                "utilization": job.busy / held if held else 1.0}
    gang = GangFramework(engine, "gang", size=k, runs=1, run_s=BETA * T, task=(1.0, 1024.0),
                         hold_timeout=1e9, start_at=arrival)
    cluster.add_framework(gang)
    cluster.run(until=arrival + 50 * T, stop=lambda: gang.done)
    assert gang.done and gang.launched_at is not None
    useful = k * BETA * T
    return {"ramp_up_s": gang.launched_at - arrival, "completion_s": engine.now - arrival,
            "utilization": useful / (useful + gang.idle_slot_seconds)}


def run(scale: str, seed: int, progress: Progress | None = None, cost: str | None = None) -> Result:
    progress = progress or NoProgress()
    cost = cost or DEFAULT_COST
    p = PARAMS[scale]
    k = p["k"]
    wall = time.monotonic()
    expected = analytic(k)
    rows = []
    cases = list(expected)
    progress.start(f"k={k}", len(cases) * p["repeats"])
    done = 0
    for case in cases:
        kind, dist = case.split("/")
        runs = []
        for r in range(p["repeats"]):
            runs.append(simulate(kind, dist, k, seed * 100 + r, cost))
            done += 1
            progress.update(done)
        for metric in ("ramp_up_s", "completion_s", "utilization"):
            sim = sum(run[metric] for run in runs) / len(runs)
            rows.append({"case": f"{case}/{metric}", "analytic": round(expected[case][metric], 3),
                         "simulated": round(sim, 3)})
    table = markdown_table(
        ["case", "analytic (Table 2)", "simulated (mezzo)"],
        [[r["case"], r["analytic"], r["simulated"]] for r in rows],
    ) + f"\nk = {k} slots, T = {T:g} s, β = {BETA:g}; mean of {p['repeats']} arrivals.\n"
    paper = dict(PAPER, k=k, values=expected)
    return Result("model", scale, seed, rows, paper, table=table, extra={
        "cost_model": cost, "wall_s": round(time.monotonic() - wall, 1)})


def plot(result: Result, fig) -> None:  # type: ignore[no-untyped-def]
    metrics = ["ramp_up_s", "completion_s", "utilization"]
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(1, 3, i + 1)
        rows = [r for r in result.rows if r["case"].endswith(metric)]
        labels = [r["case"].rsplit("/", 1)[0].replace("/", "\n") for r in rows]
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [r["analytic"] for r in rows], 0.4, label="analytic",
               color="tab:grey")
        ax.bar([x + 0.2 for x in xs], [r["simulated"] for r in rows], 0.4, label="simulated",
               color="tab:blue")
        ax.set_xticks(list(xs), labels, fontsize=6)
        ax.set_title(metric, fontsize=9)
        if i == 0:
            ax.legend(fontsize=7)
