"""Simulated frameworks of the paper's workloads, built on mezzo's framework decision cores.

- `BatchFramework`: Hadoop-like MapReduce jobs, FIFO across jobs, delay scheduling for map
  locality (`mezzo.frameworks.batch_policy.DelayScheduler`, the policy of the paper's §6.3);
  a job's reduce tasks start when its maps are done and have no locality preference.
- `GangFramework`: Torque/MPI-style rigid jobs, all ranks at once (`GangPlanner` of
  `mezzo.frameworks.gang_policy`: it hoards offers until it holds a whole gang).
- `IterativeFramework`: Spark-style jobs of iterations; each iteration is a wave of tasks and
  the next starts when all are done (a barrier); the first iteration loads the data, later ones
  are shorter (cached), or every one loads when `cached` is False (Hadoop-style).

Each records the per-job times and the CPU/memory seconds its tasks used.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from mezzo.api.common import Offer, TaskState, TaskStatus, is_terminal
from mezzo.frameworks.batch_policy import DelayScheduler, Job, MapTask, make_job
from mezzo.frameworks.gang_policy import GangPlanner
from mezzo.sim.engine import Engine
from mezzo.sim.framework import SimFramework, slots


class _Usage:
    """CPU and memory seconds used by a framework's tasks (RUNNING -> terminal)."""

    def __init__(self, cpus: float, mem: float) -> None:
        self.cpus = cpus
        self.mem = mem
        self.cpu_seconds = 0.0
        self.mem_seconds = 0.0
        self.intervals: list[tuple[float, float]] = []  # (RUNNING, terminal) of each task
        self._started: dict[str, float] = {}

    def update(self, task_id: str, state: TaskState, now: float) -> None:
        if state == TaskState.TASK_RUNNING:
            self._started.setdefault(task_id, now)
        elif is_terminal(state):
            started = self._started.pop(task_id, None)
            if started is not None:
                self.cpu_seconds += (now - started) * self.cpus
                self.mem_seconds += (now - started) * self.mem
                self.intervals.append((started, now))

    def used_until(self, end: float) -> tuple[float, float]:
        """(CPU seconds, memory MB-seconds) used by tasks before time `end`."""
        seconds = sum(min(b, end) - a for a, b in self.intervals if a < end)
        return seconds * self.cpus, seconds * self.mem


# --------------------------------------------------------------------------- batch


@dataclass
class BatchJobSpec:
    """One MapReduce job: when it is submitted, its maps' block locations, its reduces."""

    name: str
    submit_at: float | None  # None: when the framework's previous job finishes
    locations: list[frozenset[str]]
    reduces: int = 0
    map_local_s: float = 10.0
    map_remote_s: float = 20.0
    reduce_s: float = 30.0


@dataclass
class JobRecord:
    name: str
    submitted: float
    finished: float | None = None
    maps_done: bool = False
    reduce_job: Job | None = None

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.submitted


class BatchFramework(SimFramework):
    def __init__(self, engine: Engine, name: str, jobs: list[BatchJobSpec], *,
                 locality_wait: float, task: tuple[float, float] = (1.0, 1024.0),
                 all_hosts: list[str] | None = None) -> None:
        super().__init__(engine, name)
        self.specs = {spec.name: spec for spec in jobs}
        self.scheduler = DelayScheduler(locality_wait)
        self.cpus, self.mem = task
        self.resources = f"cpus:{self.cpus};mem:{self.mem}"
        self.all_hosts = frozenset(all_hosts or [])
        self.records: dict[str, JobRecord] = {}
        self.usage = _Usage(self.cpus, self.mem)
        self._suppressed = False
        self._by_task: dict[str, MapTask] = {}
        self._chained = [spec for spec in jobs if spec.submit_at is None]
        for spec in jobs:
            if spec.submit_at is not None:
                engine.at(spec.submit_at, self._submit, spec)

    # -- jobs
    def _submit(self, spec: BatchJobSpec) -> None:
        job = make_job(spec.name, spec.locations, self.engine.now)
        self.records[spec.name] = JobRecord(spec.name, self.engine.now)
        self.scheduler.submit(job)
        self._wake_up()

    def _wake_up(self) -> None:
        if self._suppressed:
            self._suppressed = False
            self.revive()

    @property
    def done(self) -> bool:
        return len(self.records) == len(self.specs) and all(
            r.finished is not None for r in self.records.values())

    def locality(self) -> tuple[int, int]:
        """(map tasks that ran local, map tasks finished) — reduces are not counted."""
        local = total = 0
        for job in self.scheduler.jobs:
            if job.job_id.endswith("-reduce"):
                continue
            for t in job.tasks:
                if t.finished_at is not None:
                    total += 1
                    local += bool(t.local)
        return local, total

    # -- offers
    def on_offers(self, offers: list[Offer]) -> None:
        now = self.engine.now
        for offer in offers:
            n = slots(offer, self.cpus, self.mem)
            placements = self.scheduler.plan_offer(offer.hostname, n, now) if n else []
            if not placements:
                # Nothing to run here now (delay scheduling skipped it, or no work): decline
                # briefly, so that the offer comes back when a job may take it.
                self.decline([offer.id.value], refuse=1.0 if self.scheduler.pending_tasks else 30.0)
                if not self.scheduler.pending_tasks and not self._suppressed:
                    self._suppressed = True
                    self.suppress()
                continue
            tasks = []
            for p in placements:
                spec = self.specs.get(p.task.job_id.removesuffix("-reduce"))
                assert spec is not None
                if p.task.job_id.endswith("-reduce"):
                    duration = spec.reduce_s
                else:
                    duration = spec.map_local_s if p.local else spec.map_remote_s
                name = f"{p.task.task_name}.{p.task.attempts}"
                self._by_task[name] = p.task
                tasks.append(self.task(offer, self.resources, duration, name=name))
            self.launch([offer.id.value], tasks, refuse=1.0)

    def on_update(self, status: TaskStatus) -> None:
        now = self.engine.now
        name = status.task_id.value
        self.usage.update(name, status.state, now)
        task = self._by_task.get(name)
        if task is None or not is_terminal(status.state):
            return
        del self._by_task[name]
        if status.state != TaskState.TASK_FINISHED:
            self.scheduler.task_failed(task, now)
            self._wake_up()
            return
        job = self.scheduler.task_finished(task, now)
        if not job.done:
            return
        base = job.job_id.removesuffix("-reduce")
        record = self.records[base]
        spec = self.specs[base]
        if job.job_id.endswith("-reduce") or spec.reduces == 0:
            record.finished = now
            if self._chained:
                self._submit(self._chained.pop(0))
            return
        # Maps done: the reduces, which read from every map, prefer no node.
        hosts = self.all_hosts or frozenset({task.agent or ""})
        reduce_job = make_job(f"{base}-reduce", [hosts] * spec.reduces, now)
        record.reduce_job = reduce_job
        self.scheduler.submit(reduce_job)
        self._wake_up()


# --------------------------------------------------------------------------- gang (MPI)


class GangFramework(SimFramework):
    """`runs` rigid jobs of `size` ranks, one after another, each rank `run_s` seconds."""

    def __init__(self, engine: Engine, name: str, *, size: int, runs: int, run_s: float,
                 task: tuple[float, float], hold_timeout: float = 60.0,
                 retry_delay: float = 5.0, start_at: float = 0.0) -> None:
        super().__init__(engine, name)
        self.size = size
        self.run_s = run_s
        self.cpus, self.mem = task
        self.resources = f"cpus:{self.cpus};mem:{self.mem}"
        self.planner = GangPlanner(size, runs, hold_timeout, retry_delay, now=start_at)
        self.usage = _Usage(self.cpus, self.mem)
        self.offers: dict[str, Offer] = {}
        self.job_times: list[float] = []
        self._ranks: dict[str, int] = {}
        self._run_started: float | None = None
        self._tick_timer = None
        self._received: dict[str, float] = {}
        # Slot-seconds held without running anything (offers hoarded while gathering).
        self.idle_slot_seconds = 0.0
        self.launched_at: float | None = None

    def on_subscribed(self) -> None:
        self.planner.gather_started = self.engine.now
        self._arm()

    def _arm(self) -> None:
        if self._tick_timer is None and not self.planner.done:
            self._tick_timer = self.engine.after(1.0, self._tick)

    def _tick(self) -> None:
        self._tick_timer = None
        self._apply(self.planner.tick(self.engine.now))
        self._arm()

    def on_offers(self, offers: list[Offer]) -> None:
        now = self.engine.now
        for offer in offers:
            self.offers[offer.id.value] = offer
            self._received[offer.id.value] = now
            self._apply(self.planner.offered(offer.id.value, offer.hostname,
                                             slots(offer, self.cpus, self.mem), now))

    def on_rescind(self, offer_id: str) -> None:
        self.offers.pop(offer_id, None)
        self.planner.rescinded(offer_id)

    def _apply(self, decision) -> None:  # type: ignore[no-untyped-def]
        now = self.engine.now
        if decision.decline:
            for o in decision.decline:
                if o in self.offers:
                    self.idle_slot_seconds += (now - self._received.pop(o, now)) * slots(
                        self.offers[o], self.cpus, self.mem)
            self.decline([o for o in decision.decline if self.offers.pop(o, None) is not None],
                         refuse=1.0)
        for offer_id, ranks in decision.launch:
            offer = self.offers.pop(offer_id)
            self.idle_slot_seconds += (now - self._received.pop(offer_id, now)) * len(ranks)
            tasks = []
            for rank in ranks:
                run = len(self.planner.history) + 1
                name = f"{self.name}-run{run}-rank{rank}"
                self._ranks[name] = rank
                tasks.append(self.task(offer, self.resources, self.run_s, name=name))
            self.launch([offer_id], tasks, refuse=1.0)
        if decision.launch:
            self._run_started = self.engine.now
            if self.launched_at is None:
                self.launched_at = self.engine.now
        if self.planner.done:
            self.suppress()

    def on_update(self, status: TaskStatus) -> None:
        now = self.engine.now
        name = status.task_id.value
        self.usage.update(name, status.state, now)
        rank = self._ranks.get(name)
        if rank is None or not is_terminal(status.state):
            return
        del self._ranks[name]
        before = len(self.planner.history)
        if status.state == TaskState.TASK_FINISHED:
            self._apply(self.planner.rank_finished(rank, now))
        else:
            self._apply(self.planner.rank_failed(rank, now))
        if len(self.planner.history) > before:
            record = self.planner.history[-1]
            # A job's time: from when it started gathering its gang to its last rank's end.
            self.job_times.append(now - record.started_at + record.gather_seconds)
        self._arm()

    @property
    def done(self) -> bool:
        return self.planner.done


# --------------------------------------------------------------------------- iterative


@dataclass
class IterativeJobSpec:
    name: str
    submit_at: float | None  # None: when the framework's previous job finishes
    iterations: int
    tasks: int
    first_s: float  # a task of the first iteration (reads and parses its input)
    later_s: float  # a task of a later iteration (cached data; = first_s when not cached)


@dataclass
class _IterJob:
    spec: IterativeJobSpec
    submitted: float
    iteration: int = 0
    pending: int = 0
    running: int = 0
    finished: float | None = None
    iteration_ends: list[float] = field(default_factory=list)


class IterativeFramework(SimFramework):
    """Elastic iterative jobs, FIFO; each iteration is a wave of `tasks` tasks."""

    def __init__(self, engine: Engine, name: str, jobs: list[IterativeJobSpec], *,
                 task: tuple[float, float], rng: random.Random | None = None) -> None:
        super().__init__(engine, name)
        self.cpus, self.mem = task
        self.resources = f"cpus:{self.cpus};mem:{self.mem}"
        self.usage = _Usage(self.cpus, self.mem)
        self.jobs: list[_IterJob] = []
        self.specs = jobs
        self._owner: dict[str, _IterJob] = {}
        self._suppressed = False
        self._chained = [spec for spec in jobs if spec.submit_at is None]
        for spec in jobs:
            if spec.submit_at is not None:
                engine.at(spec.submit_at, self._submit, spec)

    def _submit(self, spec: IterativeJobSpec) -> None:
        job = _IterJob(spec, self.engine.now, iteration=1, pending=spec.tasks)
        self.jobs.append(job)
        if self._suppressed:
            self._suppressed = False
            self.revive()

    @property
    def done(self) -> bool:
        return len(self.jobs) == len(self.specs) and all(j.finished is not None for j in self.jobs)

    def on_offers(self, offers: list[Offer]) -> None:
        for offer in offers:
            room = slots(offer, self.cpus, self.mem)
            tasks = []
            for job in self.jobs:
                while room and job.pending and job.finished is None:
                    spec = job.spec
                    duration = spec.first_s if job.iteration == 1 else spec.later_s
                    info = self.task(offer, self.resources, duration)
                    self._owner[info.task_id.value] = job
                    tasks.append(info)
                    job.pending -= 1
                    job.running += 1
                    room -= 1
            if tasks:
                self.launch([offer.id.value], tasks, refuse=1.0)
            else:
                self.decline([offer.id.value], refuse=1.0)
                if self.done and not self._suppressed:
                    self._suppressed = True
                    self.suppress()

    def on_update(self, status: TaskStatus) -> None:
        now = self.engine.now
        self.usage.update(status.task_id.value, status.state, now)
        job = self._owner.pop(status.task_id.value, None) if is_terminal(status.state) else None
        if job is None:
            return
        job.running -= 1
        if status.state != TaskState.TASK_FINISHED:
            job.pending += 1
            return
        if job.running == 0 and job.pending == 0:
            job.iteration_ends.append(now)
            if job.iteration == job.spec.iterations:
                job.finished = now
                if self._chained:
                    self._submit(self._chained.pop(0))
            else:
                job.iteration += 1
                job.pending = job.spec.tasks
                # A new stage: as Spark's TaskSchedulerImpl.submitTasks -> reviveOffers(),
                # REVIVE clears the filters of the offers declined while the barrier drained,
                # so the next iteration's tasks are offered slots at once.
                self._suppressed = False
                self.revive()
