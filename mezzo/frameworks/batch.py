"""`batch`: MapReduce-style jobs of map tasks with delay scheduling for data locality.

Each job has `--maps` map tasks; map i reads block i, stored on `--replication` agents chosen
at random (seeded) among the cluster's machines, which the framework reads from the master's
`/master/state` when it registers (`--placement FILE` gives the placement instead: a JSON list
per job of lists of host names). Offers are matched to tasks by `DelayScheduler`
(`batch_policy`): local offers are taken at once, non-local ones are declined for up to
`--locality-wait` seconds. Map tasks are command tasks run by the agent's command executor:
`sleep`, for `--map-seconds`, times `--remote-read-factor` when the block is not local (the
cost of reading it over the network, which is what makes locality worth waiting for).

Reports the share of map tasks that ran local and every job's completion time.

    python -m mezzo.frameworks.batch --master 127.0.0.1:5050 --jobs 3 --maps 8
"""

from __future__ import annotations

import json
import random
from typing import Any

import click

from mezzo.api.common import Offer, OfferID, TaskState, TaskStatus, is_terminal
from mezzo.frameworks.batch_policy import DelayScheduler, MapTask, make_job, place_blocks
from mezzo.frameworks.common import (
    CommonOptions,
    ExampleFramework,
    fetch_master_state,
    offer_host,
    run_framework,
    state_agent_host,
)
from mezzo.scheduler import CallRejectedError, NotSubscribedError, shell_task, split


class BatchFramework(ExampleFramework):
    def __init__(
        self,
        options: CommonOptions,
        *,
        jobs: int = 3,
        maps: int = 8,
        map_seconds: float = 1.0,
        remote_read_factor: float = 2.0,
        locality_wait: float = 3.0,
        replication: int = 1,
        submit_interval: float = 0.0,
        placement: list[list[list[str]]] | None = None,
        seed: int = 1,
    ) -> None:
        super().__init__(options)
        self.policy = DelayScheduler(locality_wait)
        self.job_count = jobs
        self.maps = maps
        self.map_seconds = map_seconds
        self.remote_read_factor = remote_read_factor
        self.replication = replication
        self.submit_interval = submit_interval
        self.placement = placement
        self.rng = random.Random(seed)
        self.hosts: list[str] = []
        self.submitted = 0
        self.next_submit = 0.0
        self.suppressed = False
        self._task_of: dict[str, MapTask] = {}
        self._hosts_seen: set[str] = set()

    # ------------------------------------------------------------------ jobs

    async def _learn_hosts(self) -> None:
        """The machines blocks can live on: every agent the master knows of."""
        if self.hosts or self.placement is not None or self.client is None:
            return
        try:
            state = await fetch_master_state(self.client.master_url or "")
            hosts = {state_agent_host(a) for a in state.get("slaves", []) if a.get("active", True)}
        except Exception as exc:  # the state endpoint is a convenience, offers also tell
            self.say(f"cannot read the master's state ({exc}); using the hosts of offers")
            hosts = set(self._hosts_seen)
        self.hosts = sorted(h for h in hosts if h)
        if self.hosts:
            self.say(f"blocks placed on {len(self.hosts)} hosts: {', '.join(self.hosts)}")

    def _submit_due(self, now: float) -> None:
        while self.submitted < self.job_count and now >= self.next_submit:
            job_id = f"job-{self.submitted + 1}"
            if self.placement is not None:
                where = [frozenset(b) for b in self.placement[self.submitted]]
            elif self.hosts:
                where = place_blocks(job_id, self.maps, self.hosts, self.replication, self.rng)
            else:
                return  # no hosts known yet
            self.policy.submit(make_job(job_id, where, now))
            self.submitted += 1
            self.next_submit = now + self.submit_interval
            self.say(f"submitted {job_id}: {len(where)} map tasks")

    async def tick(self, now: float) -> None:
        await self._learn_hosts()
        before = self.submitted
        self._submit_due(now)
        if self.submitted > before and self.suppressed and self.client is not None:
            await self.client.revive()
            self.suppressed = False

    # ------------------------------------------------------------------ offers

    async def resource_offers(self, driver: Any, offers: list[Offer]) -> None:
        now = self.clock.monotonic()
        for offer in offers:
            self._hosts_seen.add(offer_host(offer))
            await self._handle_offer(driver, offer, now)
        if (
            self.policy.all_done
            or (self.submitted == self.job_count and not self.policy.pending_tasks)
        ) and not self.suppressed:
            await self._call(driver.suppress())
            self.suppressed = True

    async def _handle_offer(self, driver: Any, offer: Offer, now: float) -> None:
        pending = self.policy.pending_tasks
        pieces = split(offer, self.options.task_resources, limit=pending) if pending else []
        plan = self.policy.plan_offer(offer_host(offer), len(pieces), now)
        if not plan:
            # A short filter: delay scheduling needs this agent offered again soon.
            more = pending or self.submitted < self.job_count
            await self._call(driver.decline([offer.id], refuse_seconds=1.0 if more else 30.0))
            return
        tasks = []
        for placement, piece in zip(plan, pieces, strict=False):
            task = placement.task
            seconds = self.map_seconds * (1.0 if placement.local else self.remote_read_factor)
            task_id = f"{task.task_name}-{task.attempts}"
            self._task_of[task_id] = task
            command = f"echo 'map {task.block} local={placement.local}'; sleep {seconds:.2f}"
            tasks.append(
                shell_task(
                    offer,
                    piece,
                    command,
                    task_id=task_id,
                    name=task.task_name,
                    environment={"MAP_BLOCK": task.block},
                )
            )
        if not await self._call(driver.launch([offer.id], tasks, refuse_seconds=1.0)):
            for placement in plan:
                self.policy.unlaunch(placement.task)

    async def _call(self, coro: Any) -> bool:
        try:
            await coro
            return True
        except (CallRejectedError, NotSubscribedError) as exc:
            self.say(f"call failed: {exc}")
            return False

    def offer_rescinded(self, driver: Any, offer_id: OfferID) -> None:
        pass  # nothing is held: offers are answered as they come

    # ------------------------------------------------------------------ status

    async def status_update(self, driver: Any, status: TaskStatus) -> None:
        self.track(status)
        task = self._task_of.get(status.task_id.value)
        if task is None or not is_terminal(status.state):
            return
        now = self.clock.monotonic()
        if status.state == TaskState.TASK_FINISHED:
            job = self.policy.task_finished(task, now)
            if job.done:
                local, total = _job_locality(job.tasks)
                self.say(
                    f"{job.job_id} done in {job.completion_time:.1f}s ({local}/{total} maps local)"
                )
        else:
            self.policy.task_failed(task, now)
            self.say(f"{task.task_name} {status.state.value}: {status.message or ''}; retrying")
            if self.suppressed:
                await self._call(driver.revive())
                self.suppressed = False
        if self.submitted == self.job_count and self.policy.all_done:
            self.finished.set()

    # ------------------------------------------------------------------ reports

    def locality_percent(self) -> float | None:
        local, total = self.policy.locality()
        return 100.0 * local / total if total else None

    def headline(self) -> str:
        done = sum(1 for j in self.policy.jobs if j.done)
        pct = self.locality_percent()
        loc = f", {pct:.0f}% local" if pct is not None else ""
        return f"jobs {done}/{self.job_count}{loc}"

    def report(self) -> list[str]:
        local, total = self.policy.locality()
        lines = [
            f"{sum(1 for j in self.policy.jobs if j.done)}/{self.job_count} jobs done, "
            f"{total} map tasks finished",
            f"data locality: {local}/{total} map tasks local"
            + (f" ({100.0 * local / total:.0f}%)" if total else "")
            + f" with locality wait {self.policy.locality_wait:g}s",
        ]
        for job in self.policy.jobs:
            jl, jt = _job_locality(job.tasks)
            when = (
                f"{job.completion_time:.1f}s" if job.completion_time is not None else "unfinished"
            )
            lines.append(f"{job.job_id}: completion time {when}, {jl}/{jt} local")
        return lines


def _job_locality(tasks: list[MapTask]) -> tuple[int, int]:
    done = [t for t in tasks if t.finished_at is not None]
    return sum(1 for t in done if t.local), len(done)


@click.command("batch")
@click.option("--master", required=True, help="HOST:PORT of a master (or zk://...).")
@click.option("--jobs", default=3, show_default=True, type=click.IntRange(1))
@click.option(
    "--maps", default=8, show_default=True, type=click.IntRange(1), help="Map tasks per job."
)
@click.option("--map-seconds", default=1.0, show_default=True, type=float)
@click.option(
    "--remote-read-factor",
    default=2.0,
    show_default=True,
    type=float,
    help="How much longer a map runs when its block is read over the network.",
)
@click.option(
    "--locality-wait",
    default=3.0,
    show_default=True,
    type=float,
    help="Delay scheduling: seconds a job skips non-local offers (0 = off).",
)
@click.option("--replication", default=1, show_default=True, type=click.IntRange(1))
@click.option("--submit-interval", default=0.0, show_default=True, type=float)
@click.option(
    "--placement",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON: per job, per block, the hosts holding it.",
)
@click.option("--cpus", default=0.2, show_default=True, type=float)
@click.option("--mem", default=32.0, show_default=True, type=float)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--name", default="batch", show_default=True)
@click.option("--timeout", default=None, type=float, help="Give up after this many seconds.")
def main(
    master: str,
    jobs: int,
    maps: int,
    map_seconds: float,
    remote_read_factor: float,
    locality_wait: float,
    replication: int,
    submit_interval: float,
    placement: str | None,
    cpus: float,
    mem: float,
    seed: int,
    name: str,
    timeout: float | None,
) -> None:
    """MapReduce-style jobs with delay scheduling; reports locality and job times."""
    layout = None
    if placement is not None:
        with open(placement) as f:
            layout = json.load(f)
        if len(layout) < jobs:
            raise click.BadParameter(f"placement describes {len(layout)} jobs, not {jobs}")
    framework = BatchFramework(
        CommonOptions(master=master, name=name, cpus=cpus, mem=mem, timeout=timeout),
        jobs=jobs,
        maps=maps,
        map_seconds=map_seconds,
        remote_read_factor=remote_read_factor,
        locality_wait=locality_wait,
        replication=replication,
        submit_interval=submit_interval,
        placement=layout,
        seed=seed,
    )
    raise SystemExit(run_framework(framework))


if __name__ == "__main__":
    main()
