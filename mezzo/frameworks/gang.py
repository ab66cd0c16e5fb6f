"""`gang`: MPI/Torque-style jobs that need all N slots at once.

The framework holds the offers it gets (it neither accepts nor declines them) until they add up
to `--size` slots of `--cpus`/`--mem`; then it launches all N ranks in one go, one ACCEPT per
offer, and declines the rest. If `--hold-timeout` passes first it declines everything it holds
(so other frameworks are not starved by its hoarding) and tries again after `--retry-delay`.
While a gang runs, its resources stay in use until every rank has finished; if one rank fails
the others are killed and the run is retried (an MPI job cannot lose a rank). Runs `--runs`
gangs one after another; each rank is a command task (`sleep --rank-seconds`) with `RANK`,
`SIZE` and `RUN` in its environment.

Reports completed and failed runs, the time spent gathering slots, and how often it released.

    python -m mezzo.frameworks.gang --master 127.0.0.1:5050 --size 6 --runs 2
"""

from __future__ import annotations

from typing import Any

import click

from mezzo.api.common import Offer, OfferID, TaskState, TaskStatus, is_terminal
from mezzo.frameworks.common import CommonOptions, ExampleFramework, offer_host, run_framework
from mezzo.frameworks.gang_policy import Decision, GangPlanner, Phase
from mezzo.resources import Resources
from mezzo.scheduler import CallRejectedError, NotSubscribedError, shell_task, split


class GangFramework(ExampleFramework):
    def __init__(
        self,
        options: CommonOptions,
        *,
        size: int = 4,
        runs: int = 2,
        rank_seconds: float = 3.0,
        hold_timeout: float = 15.0,
        retry_delay: float = 2.0,
    ) -> None:
        super().__init__(options)
        self.planner = GangPlanner(size, runs, hold_timeout, retry_delay, self.clock.monotonic())
        self.rank_seconds = rank_seconds
        self._offers: dict[str, tuple[Offer, list[Resources]]] = {}
        self._rank_of: dict[str, tuple[int, int]] = {}  # task id -> (run, rank)
        self._run_task_ids: dict[int, str] = {}  # rank -> task id of the current run
        self._agent_of: dict[str, str] = {}
        self._phase = self.planner.phase
        self._last_held = 0

    async def resource_offers(self, driver: Any, offers: list[Offer]) -> None:
        now = self.clock.monotonic()
        for offer in offers:
            pieces = split(offer, self.options.task_resources, limit=self.planner.size)
            self._offers[offer.id.value] = (offer, pieces)
            decision = self.planner.offered(offer.id.value, offer_host(offer), len(pieces), now)
            await self._carry_out(driver, decision)
        held = self.planner.held_slots
        if self.planner.phase == Phase.GATHERING and held and held != self._last_held:
            self.say(f"holding {held}/{self.planner.size} slots")
        self._last_held = held

    def offer_rescinded(self, driver: Any, offer_id: OfferID) -> None:
        self.planner.rescinded(offer_id.value)
        self._offers.pop(offer_id.value, None)

    async def tick(self, now: float) -> None:
        assert self.client is not None
        await self._carry_out(self.client, self.planner.tick(now))

    async def status_update(self, driver: Any, status: TaskStatus) -> None:
        self.track(status)
        tid = status.task_id.value
        if tid not in self._rank_of or not is_terminal(status.state):
            return
        run, rank = self._rank_of.pop(tid)
        current = self.planner.current
        if current is None or current.run != run:
            return  # a rank of an earlier, already aborted run
        now = self.clock.monotonic()
        if status.state == TaskState.TASK_FINISHED:
            decision = self.planner.rank_finished(rank, now)
        else:
            self.say(f"rank {rank} of run {run} {status.state.value}; aborting the run")
            decision = self.planner.rank_failed(rank, now)
        await self._carry_out(driver, decision)

    async def _carry_out(self, driver: Any, decision: Decision) -> None:
        if decision.launch:
            await self._launch(driver, decision)
        for offer_id in decision.decline:
            self._offers.pop(offer_id, None)
            # While running, others may use these; when releasing, stay away a retry_delay.
            refuse = max(self.planner.retry_delay, 1.0)
            await self._call(driver.decline([OfferID(value=offer_id)], refuse_seconds=refuse))
        for rank in decision.kill:
            tid = self._run_task_ids.get(rank)
            if tid is not None:
                await self._call(driver.kill(tid, self._agent_of.get(tid)))
        await self._phase_changed(driver)

    async def _launch(self, driver: Any, decision: Decision) -> None:
        run = self.planner.current
        assert run is not None
        self._run_task_ids = {}
        for offer_id, ranks in decision.launch:
            offer, pieces = self._offers.pop(offer_id)
            tasks = []
            for rank, piece in zip(ranks, pieces, strict=False):
                tid = f"run-{run.run}-rank-{rank}"
                self._rank_of[tid] = (run.run, rank)
                self._run_task_ids[rank] = tid
                self._agent_of[tid] = offer.agent_id.value
                env = {"RANK": str(rank), "SIZE": str(self.planner.size), "RUN": str(run.run)}
                command = f"echo rank $RANK of $SIZE; sleep {self.rank_seconds:.2f}"
                tasks.append(shell_task(offer, piece, command, task_id=tid, environment=env))
            if not await self._call(driver.launch([offer.id], tasks)):
                # The master answers a launch that cannot happen with TASK_ERROR/DROPPED
                # updates too; failing here early just aborts the run sooner.
                await self._carry_out(
                    driver, self.planner.rank_failed(ranks[0], self.clock.monotonic())
                )
                return
        where = ", ".join(f"{host}×{n}" for host, n in sorted(run.agents.items()))
        self.say(
            f"run {run.run}: all {self.planner.size} ranks launched ({where}) "
            f"after gathering {run.gather_seconds:.1f}s"
        )

    async def _phase_changed(self, driver: Any) -> None:
        phase = self.planner.phase
        if phase == self._phase:
            return
        previous, self._phase = self._phase, phase
        if phase == Phase.GATHERING:
            # Clear our decline filters so every agent is offered to us again promptly.
            await self._call(driver.revive())
        if phase == Phase.COOLING and previous == Phase.GATHERING:
            self.say(
                f"no {self.planner.size} slots within {self.planner.hold_timeout:g}s; "
                "released what it held, retrying"
            )
        if previous == Phase.RUNNING and self.planner.history:
            last = self.planner.history[-1]
            if last.ok:
                self.say(f"run {last.run} finished in {last.finished_at - last.started_at:.1f}s")  # type: ignore[operator]
        if phase == Phase.DONE:
            await self._call(driver.suppress())
            self.finished.set()

    async def _call(self, coro: Any) -> bool:
        try:
            await coro
            return True
        except (CallRejectedError, NotSubscribedError) as exc:
            self.say(f"call failed: {exc}")
            return False

    # ------------------------------------------------------------------ reports

    def headline(self) -> str:
        p = self.planner
        state = p.phase.value
        if p.phase == Phase.GATHERING:
            state = f"gathering {p.held_slots}/{p.size}"
        return f"runs {p.completed_runs}/{p.runs} of {p.size} ranks, {state}"

    def report(self) -> list[str]:
        p = self.planner
        lines = [
            f"{p.completed_runs}/{p.runs} gang runs of {p.size} ranks completed, "
            f"{p.failed_runs} aborted, {p.releases} hold timeouts (offers released)",
        ]
        for r in p.history:
            took = f"{r.finished_at - r.started_at:.1f}s" if r.finished_at is not None else "-"
            lines.append(
                f"run {r.run}: {'ok' if r.ok else 'aborted'}, gathered {r.gather_seconds:.1f}s, "
                f"ran {took} on {len(r.agents)} agents"
            )
        return lines


@click.command("gang")
@click.option("--master", required=True, help="HOST:PORT of a master (or zk://...).")
@click.option(
    "--size", default=4, show_default=True, type=click.IntRange(1), help="Ranks per gang."
)
@click.option("--runs", default=2, show_default=True, type=click.IntRange(1))
@click.option("--rank-seconds", default=3.0, show_default=True, type=float)
@click.option(
    "--hold-timeout",
    default=15.0,
    show_default=True,
    type=float,
    help="Release held offers if N slots are not gathered within this time.",
)
@click.option("--retry-delay", default=2.0, show_default=True, type=float)
@click.option("--cpus", default=0.5, show_default=True, type=float)
@click.option("--mem", default=64.0, show_default=True, type=float)
@click.option("--name", default="gang", show_default=True)
@click.option("--timeout", default=None, type=float, help="Give up after this many seconds.")
def main(
    master: str,
    size: int,
    runs: int,
    rank_seconds: float,
    hold_timeout: float,
    retry_delay: float,
    cpus: float,
    mem: float,
    name: str,
    timeout: float | None,
) -> None:
    """MPI-style gang runs: all N ranks start together or not at all."""
    framework = GangFramework(
        CommonOptions(master=master, name=name, cpus=cpus, mem=mem, timeout=timeout),
        size=size,
        runs=runs,
        rank_seconds=rank_seconds,
        hold_timeout=hold_timeout,
        retry_delay=retry_delay,
    )
    raise SystemExit(run_framework(framework))


if __name__ == "__main__":
    main()
