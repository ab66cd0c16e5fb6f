"""`service`: keep N instances of a long-running command up, in the spirit of Marathon.

Every instance is a command task holding one port from its offer (in `$PORT`); the default
command is a real web server (`python -m http.server $PORT`). `ServicePlanner`
(`service_policy`) decides: instances that end are restarted after an exponential backoff, and
at most ceil(N / agents) instances run on one agent. `--kill-every S` kills a random running
instance every S seconds (chaos testing), to watch restarts happen.

High availability: the framework registers with `failover_timeout` and `checkpoint`, and with
`--state-file` it stores its framework id there. A second scheduler started with the same
state file (after the first died, or was stopped with `--failover`) re-subscribes as the same
framework, reconciles, and adopts the instances that kept running.

Hot standby (`--standby`): the active scheduler holds an exclusive `flock` on
`<state-file>.lock` for as long as it lives; the kernel releases it when the process dies,
kill -9 included. A scheduler started with `--standby` blocks on that lock, then reads the
framework id from the state file and subscribes with it: the master treats that as a failover
(within `--failover-timeout`), and if the old scheduler were still connected it would get
ERROR "Framework failed over" and be closed. (The lock needs the two schedulers on one host
or a filesystem with working locks; `--framework-id` names the framework explicitly.)

Reports the instances kept up (mean and minimum after the first time all were up) and restarts.

    python -m mezzo.frameworks.service --master 127.0.0.1:5050 --instances 3 --duration 60
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import sys
from typing import Any

import click

from mezzo.api.common import FrameworkID, MasterInfo, Offer, TaskState, TaskStatus, is_terminal
from mezzo.frameworks.common import (
    CommonOptions,
    ExampleFramework,
    fetch_master_state,
    offer_host,
    run_framework,
)
from mezzo.frameworks.service_policy import InstanceState, ServicePlanner
from mezzo.scheduler import (
    CallRejectedError,
    NotSubscribedError,
    ports_of,
    shell_task,
    split,
)

DEFAULT_COMMAND = "exec {python} -m http.server $PORT --bind 127.0.0.1"
_TASK_RE = re.compile(r"^(?P<name>.+)-i(?P<index>\d+)-(?P<n>\d+)$")


class ServiceFramework(ExampleFramework):
    checkpoint = True

    def __init__(
        self,
        options: CommonOptions,
        *,
        instances: int = 3,
        command: str | None = None,
        duration: float | None = 60.0,
        kill_every: float = 0.0,
        backoff_initial: float = 1.0,
        backoff_maximum: float = 30.0,
        failover_timeout: float = 3600.0,
        state_file: str | None = None,
        seed: int = 1,
    ) -> None:
        super().__init__(options)
        self.failover_timeout = failover_timeout
        self.planner = ServicePlanner(
            instances, backoff_initial=backoff_initial, backoff_maximum=backoff_maximum
        )
        self.command = command or DEFAULT_COMMAND.format(python=options.python)
        self.duration = duration
        self.kill_every = kill_every
        self.state_file = state_file
        self.rng = random.Random(seed)
        self.agents = 0
        self.suppressed = False
        self.next_kill = self.clock.monotonic() + kill_every if kill_every else None
        self.next_agent_refresh = 0.0
        self.all_up_at: float | None = None
        self.min_up_after_all: int | None = None
        self.chaos_kills = 0
        self.adopted = 0
        self._launch_seq = 0
        self.reconcile_grace = 2.0
        self.reconciling_until = 0.0
        self._agent_of: dict[str, str] = {}
        if state_file and os.path.exists(state_file):
            with open(state_file) as f:
                saved = f.read().strip()
            if saved:
                self.framework_id = FrameworkID(value=saved)

    # ------------------------------------------------------------------ registration

    def registered(
        self, driver: Any, framework_id: FrameworkID, master_info: MasterInfo | None
    ) -> Any:
        failover = self.framework_id is not None and self.framework_id == framework_id
        super().registered(driver, framework_id, master_info)
        if self.state_file:
            with open(self.state_file, "w") as f:
                f.write(framework_id.value)
        if failover:
            self.say("failed over: took over the framework of the previous scheduler")
            # Launch nothing until reconciliation has told us which instances still run.
            self.reconciling_until = self.clock.monotonic() + self.reconcile_grace
        return self._after_subscribe(driver)

    def reregistered(self, driver: Any, master_info: MasterInfo | None) -> Any:
        super().reregistered(driver, master_info)
        return self._after_subscribe(driver)

    async def _after_subscribe(self, driver: Any) -> None:
        # Ask for the state of every task the master knows for us: after a failover that is
        # how the running instances are found again (implicit reconciliation).
        await self._call(driver.reconcile([]))
        await self._refresh_agents()

    async def _refresh_agents(self) -> None:
        if self.client is None or self.client.master_url is None:
            return
        try:
            state = await fetch_master_state(self.client.master_url)
            self.agents = sum(1 for a in state.get("slaves", []) if a.get("active", True))
        except Exception:
            pass  # keep the last count; offers still arrive

    # ------------------------------------------------------------------ offers

    async def resource_offers(self, driver: Any, offers: list[Offer]) -> None:
        now = self.clock.monotonic()
        if now < self.reconciling_until:
            await self._call(driver.decline([o.id for o in offers], refuse_seconds=1.0))
            return
        for offer in offers:
            agents = max(self.agents, 1)
            pieces = split(offer, self.options.task_resources, ports=1, limit=self.planner.target)
            chosen = self.planner.plan_offer(offer_host(offer), len(pieces), agents, now)
            if not chosen:
                refuse = 1.0 if self.planner.wants_offers(now) else 30.0
                await self._call(driver.decline([offer.id], refuse_seconds=refuse))
                continue
            tasks = []
            for inst, piece in zip(chosen, pieces, strict=False):
                self._launch_seq += 1
                tid = f"{self.options.name}-i{inst.index}-{self._launch_seq}"
                self.planner.launched(inst, tid)
                self._agent_of[tid] = offer.agent_id.value
                port = ports_of(piece)[0]
                env = {"PORT": str(port), "INSTANCE": str(inst.index)}
                tasks.append(shell_task(offer, piece, self.command, task_id=tid, environment=env))
                self.say(
                    f"instance {inst.index} -> {offer_host(offer)}:{port}"
                    + (f" (restart after {inst.delay:.1f}s backoff)" if inst.restarts else "")
                )
            if not await self._call(driver.launch([offer.id], tasks, refuse_seconds=1.0)):
                for inst in chosen:
                    self.planner.unlaunch(inst)
        if not self.planner.wants_offers(now) and not self.suppressed:
            await self._call(driver.suppress())
            self.suppressed = True

    # ------------------------------------------------------------------ status

    async def status_update(self, driver: Any, status: TaskStatus) -> None:
        self.track(status)
        now = self.clock.monotonic()
        tid = status.task_id.value
        inst = self.planner.instance_of(tid)
        if inst is None:
            self._maybe_adopt(status, now)
            return
        if status.state == TaskState.TASK_RUNNING:
            self.planner.task_running(tid, now)
            self._note_up(now)
        elif is_terminal(status.state):
            ended = self.planner.task_ended(tid, now)
            if ended is not None:
                self.say(
                    f"instance {ended.index} {status.state.value}; restarting in {ended.delay:.1f}s"
                )
            self._note_up(now)

    def _maybe_adopt(self, status: TaskStatus, now: float) -> None:
        m = _TASK_RE.match(status.task_id.value)
        if m is None or m["name"] != self.options.name:
            return
        if status.state == TaskState.TASK_RUNNING:
            agent = status.agent_id.value if status.agent_id else "?"
            if self.planner.adopt(int(m["index"]), status.task_id.value, agent, now):
                self.adopted += 1
                self._launch_seq = max(self._launch_seq, int(m["n"]))
                if status.agent_id is not None:
                    self._agent_of[status.task_id.value] = status.agent_id.value
                self.say(f"adopted running instance {m['index']} ({status.task_id.value})")
                self._note_up(now)

    def _note_up(self, now: float) -> None:
        running = self.planner.running
        if self.all_up_at is None and running == self.planner.target:
            self.all_up_at = now
            self.say(f"all {running} instances up")
        if self.all_up_at is not None:
            self.min_up_after_all = (
                running if self.min_up_after_all is None else min(self.min_up_after_all, running)
            )

    # ------------------------------------------------------------------ timers

    async def tick(self, now: float) -> None:
        assert self.client is not None
        self.planner.sample(now)
        if now >= self.next_agent_refresh:
            self.next_agent_refresh = now + 5.0
            await self._refresh_agents()
        due = self.planner.next_due()
        if self.suppressed and due is not None and due <= now:
            await self._call(self.client.revive())
            self.suppressed = False
        if self.next_kill is not None and now >= self.next_kill:
            self.next_kill = now + self.kill_every
            running = [i for i in self.planner.instances if i.state == InstanceState.RUNNING]
            if running:
                victim = self.rng.choice(running)
                assert victim.task_id is not None
                self.chaos_kills += 1
                self.say(f"chaos: killing instance {victim.index}")
                await self._call(
                    self.client.kill(victim.task_id, self._agent_of.get(victim.task_id))
                )
        if self.duration is not None and self.elapsed >= self.duration:
            self.finished.set()

    async def _call(self, coro: Any) -> bool:
        try:
            await coro
            return True
        except (CallRejectedError, NotSubscribedError) as exc:
            self.say(f"call failed: {exc}")
            return False

    # ------------------------------------------------------------------ reports

    def mean_up(self) -> float:
        self.planner.sample(self.clock.monotonic())
        return self.planner.stats.up_seconds / self.elapsed if self.elapsed > 0 else 0.0

    def headline(self) -> str:
        return (
            f"{self.planner.running}/{self.planner.target} up, "
            f"{self.planner.stats.restarts} restarts"
        )

    def report(self) -> list[str]:
        stats = self.planner.stats
        lines = [
            f"{self.planner.running}/{self.planner.target} instances up at the end; "
            f"mean {self.mean_up():.2f} up over {self.elapsed:.0f}s",
            f"{stats.launches} launches, {stats.restarts} restarts "
            f"({self.chaos_kills} chaos kills), {self.adopted} adopted after failover",
        ]
        if self.all_up_at is not None:
            lines.append(
                f"all up {self.all_up_at - self.started_at:.1f}s after start; "
                f"never fewer than {self.min_up_after_all} up afterwards"
            )
        spread = self.planner.per_agent()
        if spread:
            lines.append("per agent: " + ", ".join(f"{a}={n}" for a, n in sorted(spread.items())))
        return lines


def hold_scheduler_lock(state_file: str, standby: bool) -> Any:
    """Take the active scheduler's lock (see the module docstring); the returned file must stay
    open for the life of the process."""
    lock = open(state_file + ".lock", "a")  # noqa: SIM115 - held until the process ends
    if standby:
        print(f"standby: waiting for the active scheduler (lock {lock.name})", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
        print("standby: the active scheduler is gone; taking over", flush=True)
    else:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("another scheduler is active; taking over its framework", flush=True)
    return lock


@click.command("service")
@click.option("--master", required=True, help="HOST:PORT of a master (or zk://...).")
@click.option("--instances", default=3, show_default=True, type=click.IntRange(1))
@click.option("--command", default=None, help="Shell command of an instance ($PORT is set).")
@click.option(
    "--duration",
    default=60.0,
    show_default=True,
    type=float,
    help="Seconds to keep the service up (0: until Ctrl-C).",
)
@click.option(
    "--kill-every",
    default=0.0,
    show_default=True,
    type=float,
    help="Chaos: kill a random instance every this many seconds (0: never).",
)
@click.option("--backoff", default=1.0, show_default=True, type=float)
@click.option("--backoff-max", default=30.0, show_default=True, type=float)
@click.option("--failover-timeout", default=3600.0, show_default=True, type=float)
@click.option("--state-file", default=None, help="Where the framework id is kept for failover.")
@click.option(
    "--failover",
    is_flag=True,
    help="On exit leave the instances running for a standby scheduler to adopt.",
)
@click.option(
    "--standby",
    is_flag=True,
    help="Wait until the scheduler holding --state-file's lock dies, then take over.",
)
@click.option("--framework-id", default=None, help="Subscribe as this framework (failover).")
@click.option("--cpus", default=0.1, show_default=True, type=float)
@click.option("--mem", default=64.0, show_default=True, type=float)
@click.option("--name", default="service", show_default=True)
def main(
    master: str,
    instances: int,
    command: str | None,
    duration: float,
    kill_every: float,
    backoff: float,
    backoff_max: float,
    failover_timeout: float,
    state_file: str | None,
    failover: bool,
    standby: bool,
    framework_id: str | None,
    cpus: float,
    mem: float,
    name: str,
) -> None:
    """Keep N instances of a long-running command up, spread across agents."""
    if standby and not state_file:
        raise click.UsageError("--standby needs --state-file (where the framework id is kept)")
    lock = hold_scheduler_lock(state_file, standby) if state_file else None
    framework = ServiceFramework(
        CommonOptions(master=master, name=name, cpus=cpus, mem=mem, python=sys.executable),
        instances=instances,
        command=command,
        duration=duration or None,
        kill_every=kill_every,
        backoff_initial=backoff,
        backoff_maximum=backoff_max,
        failover_timeout=failover_timeout,
        state_file=state_file,
    )
    if framework_id:
        framework.framework_id = FrameworkID(value=framework_id)
    try:
        code = run_framework(framework, failover=failover)
    finally:
        if lock is not None:
            lock.close()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
