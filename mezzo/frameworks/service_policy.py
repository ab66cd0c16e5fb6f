"""The service framework's decision core: keep N instances up, Marathon style.

Owns the instance table (which instance runs which task on which agent), restart backoff and
spreading:
- An instance whose task ends (failed, killed, lost, even finished: a service should not exit)
  is restarted, but not before its backoff delay: `initial`, doubling after each consecutive
  failure up to `maximum`. An instance that stayed up `stable_after` seconds gets its backoff
  reset, so a long-lived instance that dies once restarts quickly.
- Spreading: at most ceil(N / agents) instances per agent, so losing one machine loses at most
  that share of the service.

No I/O and no clock reads (no jitter either: delays are exact so the policy is testable); the
shell passes `now` and the number of agents it knows of.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


class InstanceState(StrEnum):
    WAITING = "waiting"  # needs a task; may launch at or after `not_before`
    STAGING = "staging"  # launched, not yet running
    RUNNING = "running"


@dataclass
class Instance:
    index: int
    state: InstanceState = InstanceState.WAITING
    task_id: str | None = None
    agent: str | None = None
    not_before: float = 0.0
    running_since: float | None = None
    failures: int = 0  # consecutive failures, drives the backoff
    restarts: int = 0
    delay: float = 0.0  # the backoff applied before the current/next launch


@dataclass
class ServiceStats:
    launches: int = 0
    restarts: int = 0
    up_seconds: float = 0.0  # sum over instances of time spent RUNNING
    history: list[tuple[float, int]] = field(default_factory=list)  # (t, instances running)


class ServicePlanner:
    def __init__(
        self,
        instances: int,
        backoff_initial: float = 1.0,
        backoff_maximum: float = 60.0,
        backoff_factor: float = 2.0,
        stable_after: float = 30.0,
    ) -> None:
        if instances < 1:
            raise ValueError("a service needs at least one instance")
        if backoff_initial <= 0 or backoff_maximum < backoff_initial or backoff_factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        self.instances = [Instance(i) for i in range(instances)]
        self.initial = backoff_initial
        self.maximum = backoff_maximum
        self.factor = backoff_factor
        self.stable_after = stable_after
        self.stats = ServiceStats()
        self._by_task: dict[str, Instance] = {}
        self._last_sample: float | None = None

    # ------------------------------------------------------------------ queries

    @property
    def target(self) -> int:
        return len(self.instances)

    @property
    def running(self) -> int:
        return sum(1 for i in self.instances if i.state == InstanceState.RUNNING)

    def max_per_agent(self, agents: int) -> int:
        return math.ceil(self.target / max(agents, 1))

    def per_agent(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for inst in self.instances:
            if inst.state != InstanceState.WAITING and inst.agent is not None:
                counts[inst.agent] = counts.get(inst.agent, 0) + 1
        return counts

    def wants_offers(self, now: float) -> bool:
        return any(i.state == InstanceState.WAITING for i in self.instances)

    def next_due(self) -> float | None:
        """The earliest time a waiting instance may launch (for the shell's revive timer)."""
        due = [i.not_before for i in self.instances if i.state == InstanceState.WAITING]
        return min(due) if due else None

    def instance_of(self, task_id: str) -> Instance | None:
        return self._by_task.get(task_id)

    # ------------------------------------------------------------------ decisions

    def plan_offer(self, agent: str, slots: int, agents: int, now: float) -> list[Instance]:
        """Instances to launch on `agent`, which has room for `slots` of them. The caller
        then calls `launched` with each instance's task id."""
        room = self.max_per_agent(agents) - self.per_agent().get(agent, 0)
        take = min(slots, room)
        chosen: list[Instance] = []
        for inst in self.instances:
            if len(chosen) >= take:
                break
            if inst.state == InstanceState.WAITING and inst.not_before <= now:
                chosen.append(inst)
                # Reserve the spot now so a second offer from the same agent in this batch
                # sees it taken.
                inst.state = InstanceState.STAGING
                inst.agent = agent
        return chosen

    def launched(self, inst: Instance, task_id: str) -> None:
        if inst.task_id is not None:
            self._by_task.pop(inst.task_id, None)
        inst.task_id = task_id
        self._by_task[task_id] = inst
        self.stats.launches += 1

    def adopt(self, index: int, task_id: str, agent: str, now: float) -> bool:
        """A running task found by reconciliation after a failover (the new scheduler did not
        launch it): take it over as instance `index` if that instance has no task."""
        if not 0 <= index < len(self.instances) or task_id in self._by_task:
            return False
        inst = self.instances[index]
        if inst.state != InstanceState.WAITING:
            return False
        inst.state = InstanceState.STAGING
        inst.agent = agent
        inst.task_id = task_id
        self._by_task[task_id] = inst
        self.task_running(task_id, now)
        return True

    def unlaunch(self, inst: Instance) -> None:
        """The launch did not happen (accept refused): wait again without penalty."""
        inst.state = InstanceState.WAITING
        inst.agent = None

    def task_running(self, task_id: str, now: float) -> None:
        inst = self._by_task.get(task_id)
        if inst is None or inst.state == InstanceState.RUNNING:
            return
        self.sample(now)
        inst.state = InstanceState.RUNNING
        inst.running_since = now
        self._record(now)

    def task_ended(self, task_id: str, now: float) -> Instance | None:
        """The instance's task reached a terminal state: schedule a restart with backoff."""
        inst = self._by_task.pop(task_id, None)
        if inst is None or inst.task_id != task_id:
            return None
        self.sample(now)
        if inst.running_since is not None and now - inst.running_since >= self.stable_after:
            inst.failures = 0
        inst.delay = self.backoff(inst.failures)
        inst.failures += 1
        inst.restarts += 1
        self.stats.restarts += 1
        inst.state = InstanceState.WAITING
        inst.task_id = None
        inst.agent = None
        inst.running_since = None
        inst.not_before = now + inst.delay
        self._record(now)
        return inst

    def backoff(self, failures: int) -> float:
        """Delay before the restart that follows `failures` earlier consecutive failures."""
        return min(self.initial * self.factor**failures, self.maximum)

    def sample(self, now: float) -> None:
        """Accumulate instance-seconds of uptime (call before every change and periodically)."""
        if self._last_sample is not None and now > self._last_sample:
            self.stats.up_seconds += self.running * (now - self._last_sample)
        self._last_sample = now

    def _record(self, now: float) -> None:
        if not self.stats.history or self.stats.history[-1][1] != self.running:
            self.stats.history.append((now, self.running))
