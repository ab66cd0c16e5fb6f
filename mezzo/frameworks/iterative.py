"""`iterative`: logistic regression over in-memory partitions, in the spirit of Spark.

The scheduler places `--partitions` long-lived *holder* tasks, each run by our own executor
(`python -m mezzo.frameworks.iterative_executor`, named in the task's ExecutorInfo.command):
one executor per partition, spread over the agents. Each iteration the scheduler sends the
current weights to every executor as a framework message; the executor computes its
partition's gradient and answers with a framework message; the scheduler sums the gradients,
takes a step and starts the next iteration. The first iteration loads each partition (generates
and parses its CSV text); the executors keep the parsed data in memory, so later iterations
only compute (`--no-cache` reloads every time, for comparison). Framework messages are best
effort, so a request that is not answered within `--resend-after` seconds is sent again.

Reports every iteration's time, the speed-up of later iterations over the first, and the loss.

    python -m mezzo.frameworks.iterative --master 127.0.0.1:5050 --partitions 3 --iterations 10
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import click

from mezzo.api.common import (
    AgentID,
    CommandInfo,
    ExecutorID,
    ExecutorInfo,
    Offer,
    TaskState,
    TaskStatus,
    is_terminal,
)
from mezzo.frameworks.common import CommonOptions, ExampleFramework, offer_host, run_framework
from mezzo.frameworks.iterative_core import IterationDriver, PartitionSpec, decode, encode
from mezzo.scheduler import CallRejectedError, NotSubscribedError, shell_task, split

EXECUTOR_MODULE = "mezzo.frameworks.iterative_executor"


@dataclass
class Holder:
    """Where partition `partition` lives: its holder task and executor."""

    partition: int
    task_id: str | None = None
    executor_id: str | None = None
    agent_id: str | None = None
    host: str | None = None
    running: bool = False
    attempts: int = 0


class IterativeFramework(ExampleFramework):
    def __init__(
        self,
        options: CommonOptions,
        *,
        partitions: int = 3,
        points: int = 20_000,
        dims: int = 10,
        iterations: int = 10,
        cache: bool = True,
        seed: int = 7,
        resend_after: float = 15.0,
    ) -> None:
        super().__init__(options)
        self.specs = [PartitionSpec(seed, p, points, dims) for p in range(partitions)]
        self.driver = IterationDriver(
            partitions=partitions, iterations=iterations, dims=dims, cache=cache
        )
        self.holders = [Holder(p) for p in range(partitions)]
        self.resend_after = resend_after
        self.last_send = 0.0
        self.suppressed = False
        self.first_running_at: float | None = None

    # ------------------------------------------------------------------ placing partitions

    def _unplaced(self) -> list[Holder]:
        return [h for h in self.holders if h.task_id is None]

    async def resource_offers(self, driver: Any, offers: list[Offer]) -> None:
        for offer in offers:
            unplaced = self._unplaced()
            used_hosts = {h.host for h in self.holders if h.task_id is not None}
            # Spread: one partition per agent while there are agents without one.
            limit = 1 if offer_host(offer) not in used_hosts else len(unplaced)
            pieces = split(offer, self.options.task_resources, limit=min(limit, len(unplaced)))
            if not unplaced or not pieces:
                refuse = 1.0 if unplaced else 30.0
                await self._call(driver.decline([offer.id], refuse_seconds=refuse))
                continue
            tasks = []
            for holder, piece in zip(unplaced, pieces, strict=False):
                holder.attempts += 1
                holder.task_id = (
                    f"{self.options.name}-partition-{holder.partition}-{holder.attempts}"
                )
                holder.executor_id = holder.task_id
                holder.agent_id = offer.agent_id.value
                holder.host = offer_host(offer)
                task = shell_task(offer, piece, "true", task_id=holder.task_id)
                # A custom executor runs the task instead of the command executor.
                task.command = None
                task.executor = self._executor_info(holder.executor_id)
                task.data = self.specs[holder.partition].to_bytes()
                tasks.append(task)
            if not await self._call(driver.launch([offer.id], tasks, refuse_seconds=1.0)):
                for holder in unplaced[: len(tasks)]:
                    holder.task_id = None
        if not self._unplaced() and not self.suppressed:
            await self._call(driver.suppress())
            self.suppressed = True

    def _executor_info(self, executor_id: str) -> ExecutorInfo:
        return ExecutorInfo(
            executor_id=ExecutorID(value=executor_id),
            name=f"{self.options.name} partition executor",
            command=CommandInfo(value=f"exec {self.options.python} -m {EXECUTOR_MODULE}"),
        )

    # ------------------------------------------------------------------ task states

    async def status_update(self, driver: Any, status: TaskStatus) -> None:
        self.track(status)
        holder = next((h for h in self.holders if h.task_id == status.task_id.value), None)
        if holder is None:
            return
        now = self.clock.monotonic()
        if status.state == TaskState.TASK_RUNNING and not holder.running:
            holder.running = True
            if all(h.running for h in self.holders):
                if self.driver.current is None and not self.driver.records:
                    self.first_running_at = now
                    self.say(f"all {len(self.holders)} partition executors running")
                    await self._start_iteration(driver, now)
                elif self.driver.current is not None:
                    await self._send(driver, holder, self.driver.request())
        elif is_terminal(status.state) and not self.finished.is_set():
            # Lost the partition (its executor died): place it again; the current iteration
            # waits for it, and its new executor loads the data afresh.
            self.say(f"partition {holder.partition} {status.state.value}: {status.message or ''}")
            holder.task_id = None
            holder.running = False
            if self.suppressed:
                await self._call(driver.revive())
                self.suppressed = False

    # ------------------------------------------------------------------ iterations

    async def _start_iteration(self, driver: Any, now: float) -> None:
        request = self.driver.start(now)
        self.last_send = now
        for holder in self.holders:
            await self._send(driver, holder, request)

    async def _send(self, driver: Any, holder: Holder, message: dict[str, Any]) -> None:
        if holder.agent_id is None or holder.executor_id is None:
            return
        await self._call(
            driver.message(AgentID(value=holder.agent_id), holder.executor_id, encode(message))
        )

    async def framework_message(
        self, driver: Any, executor_id: ExecutorID, agent_id: AgentID, data: bytes
    ) -> None:
        try:
            message = decode(data)
        except ValueError:
            return
        if message.get("type") != "gradient":
            return
        now = self.clock.monotonic()
        if not self.driver.reply(message, now):
            return
        rec = self.driver.records[-1]
        load = f", loading {rec.load_seconds:.2f}s" if rec.load_seconds else ""
        self.say(f"iteration {rec.iteration}: {rec.seconds:.2f}s{load}, loss {rec.loss:.4f}")
        if self.driver.done:
            self.finished.set()
        else:
            await self._start_iteration(driver, now)

    async def tick(self, now: float) -> None:
        assert self.client is not None
        if self.driver.current is not None and now - self.last_send >= self.resend_after:
            self.last_send = now
            request = self.driver.request()
            for p in self.driver.missing():
                self.say(f"no answer from partition {p}; resending")
                await self._send(self.client, self.holders[p], request)

    async def before_stop(self) -> None:
        # Tell executors to finish their holder tasks and exit (the teardown would kill them
        # anyway; a clean exit reports TASK_FINISHED).
        if self.client is None:
            return
        for holder in self.holders:
            if holder.running:
                await self._send(self.client, holder, {"type": "stop"})

    async def _call(self, coro: Any) -> bool:
        try:
            await coro
            return True
        except (CallRejectedError, NotSubscribedError) as exc:
            self.say(f"call failed: {exc}")
            return False

    # ------------------------------------------------------------------ reports

    def headline(self) -> str:
        done = sum(1 for r in self.driver.records if r.finished_at is not None)
        speed = self.driver.speedup()
        extra = f", later ×{speed:.1f} faster" if speed else ""
        return f"iterations {done}/{self.driver.iterations}{extra}"

    def report(self) -> list[str]:
        recs = [r for r in self.driver.records if r.seconds is not None]
        lines = [
            f"{len(recs)}/{self.driver.iterations} iterations over {len(self.holders)} "
            f"in-memory partitions ({'cached' if self.driver.cache else 'reloaded each time'})"
        ]
        if recs:
            times = ", ".join(f"{r.seconds:.2f}" for r in recs)  # type: ignore[str-format]
            lines.append(f"iteration times (s): {times}")
            lines.append(f"loss {recs[0].loss:.4f} -> {recs[-1].loss:.4f}")
        speed = self.driver.speedup()
        if speed is not None:
            lines.append(f"first iteration (with loading) {speed:.1f}× the mean of later ones")
        return lines


@click.command("iterative")
@click.option("--master", required=True, help="HOST:PORT of a master (or zk://...).")
@click.option("--partitions", default=3, show_default=True, type=click.IntRange(1))
@click.option(
    "--points",
    default=20_000,
    show_default=True,
    type=click.IntRange(1),
    help="Data points per partition.",
)
@click.option("--dims", default=10, show_default=True, type=click.IntRange(1))
@click.option("--iterations", default=10, show_default=True, type=click.IntRange(1))
@click.option(
    "--cache/--no-cache",
    default=True,
    show_default=True,
    help="Keep partitions in memory between iterations.",
)
@click.option("--resend-after", default=15.0, show_default=True, type=float)
@click.option("--cpus", default=0.5, show_default=True, type=float)
@click.option("--mem", default=256.0, show_default=True, type=float)
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--name", default="iterative", show_default=True)
@click.option("--timeout", default=None, type=float, help="Give up after this many seconds.")
def main(
    master: str,
    partitions: int,
    points: int,
    dims: int,
    iterations: int,
    cache: bool,
    resend_after: float,
    cpus: float,
    mem: float,
    seed: int,
    name: str,
    timeout: float | None,
) -> None:
    """Logistic regression with executors that keep their partition in memory."""
    framework = IterativeFramework(
        CommonOptions(
            master=master, name=name, cpus=cpus, mem=mem, timeout=timeout, python=sys.executable
        ),
        partitions=partitions,
        points=points,
        dims=dims,
        iterations=iterations,
        cache=cache,
        seed=seed,
        resend_after=resend_after,
    )
    raise SystemExit(run_framework(framework))


if __name__ == "__main__":
    main()
