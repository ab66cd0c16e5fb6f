"""Simple simulated frameworks: a continuous task launcher and a one-task probe.

`ContinuousFramework` fills every offer with tasks whose durations are drawn from a
distribution, forever (the background load of the scalability experiment, the "other
frameworks" of the analytic-model experiment). `ProbeFramework` subscribes, launches one
task of fixed length on its first usable offer and records when the task's completion
reached it (the scalability experiment's test framework).

The workload frameworks built on mezzo's framework decision cores (delay scheduling, gangs,
iterations) are in `mezzo.sim.workload_frameworks`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from mezzo.api.common import Offer, TaskState, TaskStatus
from mezzo.sim.engine import Engine
from mezzo.sim.framework import SimFramework, slots


class ContinuousFramework(SimFramework):
    """Keeps every slot it is offered busy with tasks of `duration()` seconds."""

    def __init__(self, engine: Engine, name: str, *, task: tuple[float, float],
                 duration: Callable[[], float], refuse: float = 1.0, kill: bool = False) -> None:
        super().__init__(engine, name)
        # kill: tasks run until killed and the framework sends KILL after their duration
        # (as bench/scale.py's frameworks do) rather than ending by themselves.
        self.kill_tasks = kill
        self.task_cpus, self.task_mem = task
        self.resources = f"cpus:{self.task_cpus};mem:{self.task_mem}"
        self.duration = duration
        self.refuse = refuse
        self.launched = 0
        self.finished = 0
        self.running = 0
        self.paused = False  # when True, launches nothing more (lets its slots drain)

    def on_offers(self, offers: list[Offer]) -> None:
        for offer in offers:
            if self.paused:
                self.decline([offer.id.value], refuse=3600.0)
                continue
            n = slots(offer, self.task_cpus, self.task_mem)
            if n == 0:
                # A fragment too small for a task: don't see it again for a while.
                self.decline([offer.id.value], refuse=60.0)
                continue
            if self.kill_tasks:
                tasks = [self.task(offer, self.resources, None) for _ in range(n)]
                agent_id = offer.agent_id.value
                for info in tasks:
                    self.engine.after(self.duration(), self.kill, info.task_id.value, agent_id)
            else:
                tasks = [self.task(offer, self.resources, self.duration()) for _ in range(n)]
            self.launched += n
            self.running += n
            self.launch([offer.id.value], tasks, refuse=self.refuse)

    def on_update(self, status: TaskStatus) -> None:
        if status.state in (TaskState.TASK_FINISHED, TaskState.TASK_FAILED, TaskState.TASK_KILLED,
                            TaskState.TASK_LOST, TaskState.TASK_ERROR, TaskState.TASK_DROPPED):
            self.running -= 1
            if status.state == TaskState.TASK_FINISHED:
                self.finished += 1


def normal_duration(rng: random.Random, mean: float, sd: float, floor: float = 1.0) -> Callable[[], float]:
    return lambda: max(floor, rng.gauss(mean, sd))


class ProbeFramework(SimFramework):
    """Registers, runs one task of `length` seconds, records when its end was reported."""

    def __init__(self, engine: Engine, name: str, *, length: float, resources: str) -> None:
        super().__init__(engine, name)
        self.length = length
        self.resources = resources
        self.cpus = float(resources.split("cpus:")[1].split(";")[0])
        self.mem = float(resources.split("mem:")[1].split(";")[0])
        self.launched_at: float | None = None
        self.running_at: float | None = None
        self.done_at: float | None = None

    def on_offers(self, offers: list[Offer]) -> None:
        unused = []
        for offer in offers:
            if self.launched_at is None and slots(offer, self.cpus, self.mem) >= 1:
                self.launched_at = self.engine.now
                self.launch([offer.id.value], [self.task(offer, self.resources, self.length)])
                self.suppress()  # it wants nothing more
            else:
                unused.append(offer.id.value)
        self.decline(unused, refuse=3600.0)  # one call for all (as bench/scale.py's probe)

    def on_update(self, status: TaskStatus) -> None:
        if status.state == TaskState.TASK_RUNNING and self.running_at is None:
            self.running_at = self.engine.now
        if status.state == TaskState.TASK_FINISHED and self.done_at is None:
            self.done_at = self.engine.now
            self.teardown()

    @property
    def overhead(self) -> float | None:
        """Seconds beyond the task's length from registration to the completion report."""
        if self.done_at is None or self.started_at is None:
            return None
        return self.done_at - self.started_at - self.length
