"""The framework of the chaos scenario (`mezzo.testing.chaos`): run N short command tasks to
completion through any fault, and write down everything it hears, so that a harness can judge.

Run as `python -m mezzo.testing.chaos_scheduler --master zk://... --state-dir DIR --marks DIR`.
It is meant to be killed -9 and started again at any moment: everything it knows is in an
append-only ledger (`DIR/ledger.jsonl`, one JSON object per line, written with `os.write`
before the action it records is taken, so a kill loses nothing written), and a restarted
process re-reads the ledger and re-subscribes with the same framework id (failing over its
predecessor).

The work: items 0..N-1; an item is done when one attempt of it (task `w<item>-<attempt>`)
reports TASK_FINISHED. An attempt that ends any other way (LOST, DROPPED, FAILED, GONE...) is
replaced by a new attempt; TASK_UNREACHABLE is not an end (the framework is PARTITION_AWARE):
the attempt may come back. At most `--max-running` attempts are in flight. Each task's shell
leaves a start marker `<marks>/<task>.<pid>.start` and carries `chaos-<task>` in its command
line, so the harness can find its processes.

It exits (status 0) once every item is done and every attempt is settled: its terminal update
heard on the stream, or the master's reconciliation answer says it does not know the task
(nobody will report it then). So it waits for the agents' retried updates of tasks it learned
about by reconciling, and a task that never gets its update keeps it running until the
harness's deadline, which the verdict reports.

Like a careful Mesos framework it reconciles: explicitly after each (re-)subscription and
every `--reconcile-interval` seconds, for the attempts it has not heard a terminal update of.
Answers to reconciliation are recorded as such (`"reconciliation": true` when they come from
the master with REASON_RECONCILIATION), so the harness can tell a terminal update the framework
got on its stream from one it only learned by asking.

Ledger records (`ev`): `start`, `subscribed` (framework id, master id), `launch` (before the
ACCEPT), `accepted` / `accept_failed` (its answer), `update` (every status update), `reconcile`
(the tasks asked about), `done` (every item finished).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mezzo.api.common import (
    CommandInfo,
    FrameworkCapability,
    FrameworkCapabilityType,
    FrameworkID,
    FrameworkInfo,
    Offer,
    Reason,
    Source,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
    is_terminal,
)
from mezzo.resources import Resources
from mezzo.scheduler.client import SchedulerClient, SchedulerError, SchedulerOptions
from mezzo.scheduler.scheduler import Scheduler

log = logging.getLogger("mezzo.chaos.scheduler")

TASK_CPUS = 0.25
TASK_MEM = 32.0


def ended(state: str) -> bool:
    """A terminal state, or TASK_UNKNOWN (a PARTITION_AWARE framework's "the master has never
    heard of it", from reconciliation): either way this attempt will not run to completion."""
    return state == "TASK_UNKNOWN" or is_terminal(TaskState(state))


# What a PARTITION_AWARE framework's reconciliation answers for a task the master does not know.
UNKNOWN_TO_MASTER = ("TASK_UNKNOWN", "TASK_GONE")


def credited(record: dict[str, Any]) -> bool:
    """Whether an `update` record reached the framework on its stream as a task update rather
    than as the master's answer to a reconciliation."""
    return not record.get("reconciliation", False)


@dataclass
class Attempt:
    task_id: str
    item: int
    agent_id: str | None = None
    state: str = "TASK_STAGING"
    terminal: bool = False
    # Nothing more to hear: a terminal update on the stream, or a reconciliation answer
    # saying the master does not know the task (then no agent will report it either).
    settled: bool = False
    last_heard: float = 0.0


@dataclass
class Ledger:
    """The append-only record (see the module docstring) and what it says so far."""

    path: Path
    items: int
    attempts: dict[str, Attempt] = field(default_factory=dict)
    per_item: dict[int, list[str]] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    framework_id: str | None = None
    _fd: int = -1

    def open(self) -> None:
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    try:
                        self._apply(json.loads(line))
                    except ValueError:
                        continue  # a line cut short by a kill -9: it recorded nothing done
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        record = {"t": time.time(), "pid": os.getpid(), **record}
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
        self._apply(record)

    def _apply(self, record: dict[str, Any]) -> None:
        ev = record.get("ev")
        if ev == "subscribed":
            self.framework_id = record["framework_id"]
        elif ev == "launch":
            attempt = Attempt(record["task"], record["item"], record.get("agent"),
                              last_heard=record["t"])
            self.attempts[attempt.task_id] = attempt
            self.per_item.setdefault(attempt.item, []).append(attempt.task_id)
        elif ev == "update":
            attempt = self.attempts.get(record["task"])
            if attempt is None:
                return
            attempt.last_heard = record["t"]
            heard_end = credited(record) and ended(record["state"])
            if heard_end or record["state"] in UNKNOWN_TO_MASTER:
                attempt.settled = True
            if attempt.terminal:
                return
            attempt.state = record["state"]
            attempt.agent_id = record.get("agent") or attempt.agent_id
            if ended(record["state"]):
                attempt.terminal = True
                if record["state"] == "TASK_FINISHED":
                    self.finished.add(attempt.item)

    def complete(self) -> bool:
        """Every item finished and every attempt settled (its terminal update heard)."""
        return len(self.finished) == self.items and all(a.settled for a in self.attempts.values())

    def in_flight(self) -> list[Attempt]:
        return [a for a in self.attempts.values() if not a.terminal]

    def pending_items(self) -> list[int]:
        """Items with no finished attempt and no attempt in flight."""
        busy = {a.item for a in self.in_flight()}
        return [i for i in range(self.items) if i not in self.finished and i not in busy]

    def next_task_id(self, item: int) -> str:
        return f"w{item:03d}-{len(self.per_item.get(item, []))}"


class ChaosFramework(Scheduler):
    def __init__(self, args: argparse.Namespace, ledger: Ledger) -> None:
        self.args = args
        self.ledger = ledger
        self.rng = random.Random(args.seed)
        self.done = asyncio.Event()
        self.client: SchedulerClient | None = None
        self.master_id: str | None = None

    # ------------------------------------------------------------------ callbacks

    async def registered(self, driver: Any, framework_id: FrameworkID, master_info: Any) -> None:
        await self._subscribed(driver, framework_id.value, master_info)

    async def reregistered(self, driver: Any, master_info: Any) -> None:
        await self._subscribed(driver, driver.framework_id.value, master_info)

    async def _subscribed(self, driver: Any, framework_id: str, master_info: Any) -> None:
        self.master_id = master_info.id if master_info is not None else None
        self.ledger.write({"ev": "subscribed", "framework_id": framework_id,
                           "master": self.master_id})
        await self.reconcile(driver)
        if self.ledger.pending_items():
            await self._call(driver.revive())

    async def resource_offers(self, driver: Any, offers: list[Offer]) -> None:
        for offer in offers:
            await self._use(driver, offer)

    async def _use(self, driver: Any, offer: Offer) -> None:
        available = Resources.from_wire(offer.resources)
        room = min(self.args.max_running - len(self.ledger.in_flight()), self.args.per_offer)
        tasks: list[TaskInfo] = []
        for item in self.ledger.pending_items()[: max(room, 0)]:
            need = Resources.parse(f"cpus:{TASK_CPUS};mem:{TASK_MEM}")
            if not available.unallocate().contains(need):
                break
            available = available.unallocate() - need
            tasks.append(self._task(item, offer))
            self.ledger.write({"ev": "launch", "task": tasks[-1].task_id.value, "item": item,
                               "agent": offer.agent_id.value, "master": self.master_id})
        if not tasks:
            await self._call(driver.decline(offer, refuse_seconds=1.0))
            return
        try:
            await driver.launch(offer, tasks, refuse_seconds=0.5)
        except SchedulerError as exc:
            # The call did not go through (or its answer was lost): the tasks stay in flight
            # until an update or a reconciliation says what became of them.
            self.ledger.write({"ev": "accept_failed", "tasks": [t.task_id.value for t in tasks],
                               "error": str(exc)[:200]})
            return
        for task in tasks:
            self.ledger.write({"ev": "accepted", "task": task.task_id.value})

    def _task(self, item: int, offer: Offer) -> TaskInfo:
        task_id = self.ledger.next_task_id(item)
        duration = self.rng.uniform(self.args.min_duration, self.args.max_duration)
        marks = self.args.marks
        script = (f": chaos-{task_id}; echo $$ > {marks}/{task_id}.$$.start; "
                  f"sleep {duration:.2f}; touch {marks}/{task_id}.$$.end")
        return TaskInfo(
            name=task_id, task_id=TaskID(value=task_id), agent_id=offer.agent_id,
            resources=Resources.parse(f"cpus:{TASK_CPUS};mem:{TASK_MEM}").to_wire(),
            command=CommandInfo(value=script, shell=True),
        )

    async def status_update(self, driver: Any, status: TaskStatus) -> None:
        reconciliation = (status.source == Source.SOURCE_MASTER
                          and status.reason == Reason.REASON_RECONCILIATION)
        self.ledger.write({
            "ev": "update", "task": status.task_id.value, "state": str(status.state),
            "source": str(status.source) if status.source else None,
            "reason": str(status.reason) if status.reason else None,
            "message": (status.message or "")[:160], "uuid": status.uuid is not None,
            "agent": status.agent_id.value if status.agent_id else None,
            "reconciliation": reconciliation, "master": self.master_id,
        })
        if self.ledger.complete() and not self.done.is_set():
            self.ledger.write({"ev": "done"})
            self.done.set()

    def error(self, driver: Any, message: str) -> None:
        log.error("framework error: %s", message)
        self.ledger.write({"ev": "error", "message": message})

    # ------------------------------------------------------------------ reconciliation

    async def reconcile(self, driver: Any) -> None:
        flight = self.ledger.in_flight()
        if not flight:
            return
        self.ledger.write({"ev": "reconcile", "tasks": [a.task_id for a in flight]})
        await self._call(driver.reconcile([(a.task_id, a.agent_id) for a in flight]))

    async def reconcile_periodically(self, driver: SchedulerClient) -> None:
        while True:
            await asyncio.sleep(self.args.reconcile_interval)
            if driver.connected:
                await self.reconcile(driver)

    @staticmethod
    async def _call(call: Any) -> None:
        try:
            await call
        except SchedulerError as exc:
            log.info("call failed: %s", exc)


async def run(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(state_dir / "ledger.jsonl", args.tasks)
    ledger.open()
    ledger.write({"ev": "start"})
    framework = ChaosFramework(args, ledger)
    info = FrameworkInfo(
        user=args.user, name="chaos", checkpoint=True, failover_timeout=3600.0,
        id=FrameworkID(value=ledger.framework_id) if ledger.framework_id else None,
        capabilities=[FrameworkCapability(type=FrameworkCapabilityType.PARTITION_AWARE)],
    )
    client = SchedulerClient(args.master, info, framework, SchedulerOptions(
        heartbeat_timeout=10.0, backoff_initial=0.2, backoff_max=2.0, call_timeout=5.0))
    if ledger.complete():
        return 0
    await client.start()
    reconciler = asyncio.create_task(framework.reconcile_periodically(client))
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    waiters = [asyncio.ensure_future(framework.done.wait()), asyncio.ensure_future(stopped.wait()),
               asyncio.ensure_future(client.join())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    reconciler.cancel()
    await client.stop(failover=True)  # the harness checks the cluster before tearing down
    return 0 if framework.done.is_set() else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--marks", required=True)
    parser.add_argument("--tasks", type=int, default=120)
    parser.add_argument("--max-running", type=int, default=10)
    parser.add_argument("--per-offer", type=int, default=2, help="tasks launched per offer at most (spreads them)")
    parser.add_argument("--min-duration", type=float, default=3.0)
    parser.add_argument("--max-duration", type=float, default=8.0)
    parser.add_argument("--reconcile-interval", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--user", default=os.environ.get("USER", "root"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
