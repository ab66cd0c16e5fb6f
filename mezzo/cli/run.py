"""`mezzo run -- CMD ARGS…`: run one command task on the cluster, like `mesos-execute`.

Subscribes a short-lived framework, launches the command on the first offer that fits
`--resources`, declines every other offer, streams the task's state changes to stderr, then
prints the task's stdout and stderr (read from its sandbox through the agent's files API), tears
the framework down and exits with the task's status: 0 for TASK_FINISHED, N for a TASK_FAILED
whose message says "Command exited with status N", 1 for anything else. Ctrl-C kills the task
and exits 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import re
import shlex
import signal
import sys

import click

from mezzo.api.common import FrameworkInfo, Offer, TaskInfo, TaskState, TaskStatus, is_terminal
from mezzo.cli.common import (
    CliError,
    display,
    friendly_errors,
    get,
    get_json,
    master_option,
    read_whole_file,
    resolve_master,
    sandbox_directory,
)
from mezzo.core.errors import MezzoError
from mezzo.resources import Resources
from mezzo.scheduler import Scheduler, SchedulerClient, SchedulerError, fits, shell_task

EXIT_STATUS = re.compile(r"[Cc]ommand exited with status (\d+)")
DECLINE_SECONDS = 3600.0  # offers we will never use: keep them away from us
KILL_WAIT_SECONDS = 10.0


def exit_code_of(status: TaskStatus | None) -> int:
    """0 for FINISHED; the command's code for "Command exited with status N"; else 1."""
    if status is None:
        return 1
    if status.state == TaskState.TASK_FINISHED:
        return 0
    match = EXIT_STATUS.search(status.message or "")
    if status.state == TaskState.TASK_FAILED and match:
        return int(match.group(1)) or 1
    return 1


def _say(text: str) -> None:
    click.echo(text, err=True)


class RunScheduler(Scheduler):
    """Launch one task on the first fitting offer and follow it to a terminal state."""

    def __init__(self, resources: Resources, command: str, name: str | None) -> None:
        self.resources = resources
        self.command = command
        self.name = name
        self.task: TaskInfo | None = None
        self.offer: Offer | None = None
        self.final: TaskStatus | None = None
        self.failure: str | None = None
        self.done = asyncio.Event()

    def registered(self, driver: SchedulerClient, framework_id, master_info) -> None:  # type: ignore[no-untyped-def]
        _say(f"subscribed as framework {framework_id.value}; waiting for an offer")

    async def resource_offers(self, driver: SchedulerClient, offers: list[Offer]) -> None:
        unused: list[Offer] = []
        for offer in offers:
            if self.task is None and fits(offer, self.resources):
                task = shell_task(offer, self.resources, self.command, name=self.name or "run")
                self.task, self.offer = task, offer
                await driver.launch(offer, [task])
                _say(f"launched task {task.task_id.value} on agent {offer.hostname}")
            else:
                unused.append(offer)
        if unused:
            await driver.decline(unused, refuse_seconds=DECLINE_SECONDS)
        if self.task is not None:
            with contextlib.suppress(SchedulerError):
                await driver.suppress()

    def status_update(self, driver: SchedulerClient, status: TaskStatus) -> None:
        if self.task is None or status.task_id != self.task.task_id:
            return
        detail = f": {status.message}" if status.message else ""
        _say(f"task {status.task_id.value} is {status.state}{detail}")
        if is_terminal(status.state):
            self.final = status
            self.done.set()

    def error(self, driver: SchedulerClient, message: str) -> None:
        self.failure = message
        self.done.set()


def _agent_url(offer: Offer) -> str | None:
    url = offer.url
    if url is None or url.address is None:
        return None
    host = url.address.ip or url.address.hostname
    return f"{url.scheme or 'http'}://{host}:{url.address.port}"


def _print_output(sched: RunScheduler) -> None:
    """Print the task's stdout to stdout and stderr to stderr; warn (not fail) if unreadable."""
    assert sched.task is not None and sched.offer is not None
    agent = _agent_url(sched.offer)
    if agent is None:
        _say("warning: the offer carried no agent address; cannot fetch the task's output")
        return
    task_id = sched.task.task_id.value
    try:
        state = get_json(agent + "/state", f"agent at {display(agent)}")
        directory = sandbox_directory(state, task_id)
        out, _ = read_whole_file(agent, f"{directory}/stdout")
        err, _ = read_whole_file(agent, f"{directory}/stderr")
    except CliError as exc:
        _say(f"warning: cannot fetch the task's output: {exc.format_message()}")
        return
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(err)
    sys.stderr.buffer.flush()


async def _run(base: str, info: FrameworkInfo, sched: RunScheduler) -> int:
    client = SchedulerClient(base, info, sched)
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        await client.start()
        done = asyncio.ensure_future(sched.done.wait())
        stop = asyncio.ensure_future(interrupted.wait())
        await asyncio.wait({done, stop}, return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
        stop.cancel()
        if interrupted.is_set() and not sched.done.is_set():
            _say("interrupted")
            if sched.task is not None and client.connected:
                with contextlib.suppress(SchedulerError):
                    await client.kill(sched.task.task_id, sched.task.agent_id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sched.done.wait(), KILL_WAIT_SECONDS)
            return 130
        if sched.failure is not None:
            raise CliError(f"the master refused the framework: {sched.failure}")
        await asyncio.to_thread(_print_output, sched)
        return exit_code_of(sched.final)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        await client.stop()  # TEARDOWN: nothing of ours stays behind


@click.command("run", context_settings={"allow_interspersed_args": False})
@master_option
@click.option("--name", default=None, help="Task name (default: run).")
@click.option(
    "--resources",
    default="cpus:0.1;mem:32",
    show_default=True,
    help='Resources for the task, e.g. "cpus:0.5;mem:64".',
)
@click.option("--framework-name", default="mezzo-run", show_default=True)
@click.option("--role", default=None, help="Role to subscribe with (default: *).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@friendly_errors
def run(
    master: str,
    name: str | None,
    resources: str,
    framework_name: str,
    role: str | None,
    command: tuple[str, ...],
) -> None:
    """Run CMD ARGS… as one task and exit with its status.

    A single argument is a shell command line (`mezzo run -- "echo hi | wc -c"`); several are
    quoted and run as one command.
    """
    try:
        wanted = Resources.parse(resources)
    except MezzoError as exc:
        raise CliError(f"bad --resources {resources!r}: {exc}") from None
    base = resolve_master(master)
    # Fail fast with a clear line when the master is not there (the SDK would keep retrying).
    get(base + "/master/state", f"master at {display(base)}")
    line = command[0] if len(command) == 1 else shlex.join(command)
    info = FrameworkInfo(
        user=getpass.getuser(), name=framework_name, failover_timeout=30.0, role=role
    )
    sched = RunScheduler(wanted, line, name)
    code = asyncio.run(_run(base, info, sched))
    sys.exit(code)
