"""The batch framework's decision core: MapReduce-style jobs and delay scheduling.

Owns the job model (a job is a list of map tasks; each task reads one input block stored on a
few agents), block placement, and the delay-scheduling policy of Zaharia et al. (EuroSys 2010),
the policy the Mesos paper's Hadoop port used (§6.3): when an offer arrives from agent `n`, a
job launches a task whose block is on `n` if it has one; otherwise it *skips* the offer, unless
it has already waited `locality_wait` seconds since it started skipping, in which case it
launches any pending task there. A local launch resets the wait.

No I/O and no clock reads: the shell passes `now` and the offer's locality key (a hostname or
agent id), and gets back which tasks to launch.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass
class MapTask:
    """One map task of a job: reads `block`, whose replicas live on `locations`."""

    job_id: str
    index: int
    block: str
    locations: frozenset[str]
    launched_at: float | None = None
    finished_at: float | None = None
    agent: str | None = None  # locality key of the agent it ran on (last attempt)
    local: bool | None = None
    attempts: int = 0

    @property
    def task_name(self) -> str:
        return f"{self.job_id}-map-{self.index}"


@dataclass
class Job:
    """A MapReduce job: its map tasks, when it was submitted and when its last map finished."""

    job_id: str
    tasks: list[MapTask]
    submitted_at: float
    finished_at: float | None = None
    # Delay scheduling: when this job first skipped a non-local offer (None = not waiting).
    waiting_since: float | None = None
    pending: list[MapTask] = field(default_factory=list)
    running: int = 0

    def __post_init__(self) -> None:
        if not self.pending:
            self.pending = list(self.tasks)

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    @property
    def completion_time(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.submitted_at

    def local_task_for(self, key: str) -> MapTask | None:
        for task in self.pending:
            if key in task.locations:
                return task
        return None


@dataclass(frozen=True)
class Placement:
    """The decision for one task slot of an offer."""

    task: MapTask
    local: bool


def place_blocks(
    job_id: str,
    blocks: int,
    nodes: Sequence[str],
    replication: int,
    rng: random.Random,
) -> list[frozenset[str]]:
    """Where each of `blocks` input blocks is stored: `replication` distinct nodes per block,
    chosen at random like HDFS's default placement on a single rack."""
    if not nodes:
        raise ValueError("cannot place blocks without nodes")
    copies = max(1, min(replication, len(nodes)))
    ordered = sorted(nodes)  # the rng, not the discovery order, decides placement
    return [frozenset(rng.sample(ordered, copies)) for _ in range(blocks)]


def make_job(job_id: str, locations: Iterable[frozenset[str]], submitted_at: float) -> Job:
    tasks = [
        MapTask(job_id=job_id, index=i, block=f"{job_id}/block-{i}", locations=where)
        for i, where in enumerate(locations)
    ]
    return Job(job_id=job_id, tasks=tasks, submitted_at=submitted_at)


class DelayScheduler:
    """Delay scheduling across jobs in FIFO order (the Hadoop FIFO scheduler plus delay).

    `locality_wait` is D in the paper: how long a job may skip non-local offers. 0 disables
    delay scheduling (every offer is taken at once, local or not).
    """

    def __init__(self, locality_wait: float) -> None:
        if locality_wait < 0:
            raise ValueError("locality_wait must be >= 0")
        self.locality_wait = locality_wait
        self.jobs: list[Job] = []
        self._by_name: dict[str, MapTask] = {}

    def submit(self, job: Job) -> None:
        self.jobs.append(job)
        for task in job.tasks:
            self._by_name[task.task_name] = task

    def task(self, name: str) -> MapTask | None:
        return self._by_name.get(name)

    @property
    def pending_tasks(self) -> int:
        return sum(len(j.pending) for j in self.jobs)

    @property
    def all_done(self) -> bool:
        return bool(self.jobs) and all(j.done for j in self.jobs)

    def choose(self, key: str, now: float) -> Placement | None:
        """Pick a task for one free slot on the agent with locality key `key`, or None to skip.

        Jobs are visited in submission order; a job that skips leaves the slot to the next
        job (which is what lets a later job with local data use it)."""
        for job in self.jobs:
            if not job.pending:
                continue
            local = job.local_task_for(key)
            if local is not None:
                job.waiting_since = None
                return self._launch(job, local, key, now, True)
            if job.waiting_since is None:
                job.waiting_since = now
            if now - job.waiting_since >= self.locality_wait:
                # Waited long enough: run a non-local task. The wait is not reset, so the job
                # keeps accepting any slot until a local launch happens (Zaharia's Algorithm 2).
                return self._launch(job, job.pending[0], key, now, False)
        return None

    def plan_offer(self, key: str, slots: int, now: float) -> list[Placement]:
        """Fill up to `slots` task slots of one offer."""
        out: list[Placement] = []
        for _ in range(slots):
            placement = self.choose(key, now)
            if placement is None:
                break
            out.append(placement)
        return out

    def _launch(self, job: Job, task: MapTask, key: str, now: float, local: bool) -> Placement:
        job.pending.remove(task)
        job.running += 1
        task.launched_at = now
        task.agent = key
        task.local = local
        task.attempts += 1
        return Placement(task=task, local=local)

    def unlaunch(self, task: MapTask) -> None:
        """The launch never happened (offer rescinded, accept refused): make it pending again."""
        self.task_failed(task, 0.0)

    def task_finished(self, task: MapTask, now: float) -> Job:
        job = self._job(task)
        if task.finished_at is None:
            task.finished_at = now
            job.running -= 1
            if not job.pending and job.running == 0:
                job.finished_at = now
        return job

    def task_failed(self, task: MapTask, now: float) -> Job:
        """A failed or lost attempt: the task goes back to the front of its job's queue."""
        job = self._job(task)
        if task.finished_at is None and task not in job.pending:
            job.running -= 1
            job.pending.insert(0, task)
            task.local = None
        return job

    def _job(self, task: MapTask) -> Job:
        for job in self.jobs:
            if job.job_id == task.job_id:
                return job
        raise KeyError(task.job_id)

    # ------------------------------------------------------------------ reporting

    def locality(self) -> tuple[int, int]:
        """(finished tasks that ran local, finished tasks)."""
        finished = [t for j in self.jobs for t in j.tasks if t.finished_at is not None]
        return sum(1 for t in finished if t.local), len(finished)
