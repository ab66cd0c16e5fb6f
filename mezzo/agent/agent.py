"""The agent's asyncio shell: carries out what the decision core decides.

`Agent` owns the I/O around one `AgentCore` (`mezzo.agent.core`) and is its `AgentOutbox`:

- containers: `launch_container` creates the sandbox, builds the executor's environment and
  limits (`mezzo.agent.launch`) and starts it through the `Containerizer`; the outcome
  (`ContainerLaunched` / `ContainerLaunchFailed`), a limit it breaks (`ContainerLimited`: the
  core has it destroyed) and, later, the container's end (`ContainerExited`, from a watcher
  task per container) go back to the core as events;
- checkpoints: each record goes to the `Checkpointer` (files under `<work_dir>/meta`);
- executors: events are encoded onto their `RecordStream`s (the executor API passes the
  streams in); the master: calls go to the `MasterLink` (`send_call`);
- garbage: finished executors' sandboxes go to the `SandboxCollector` (`sandbox_gc`);
- time: one timer, re-armed after every event at `core.next_deadline()`, calls `core.tick()`.

Every input goes through `handle(event)` (the core's one mutator), after which the timer is
re-armed. The composition root is `mezzo.agent.main`; recovery is `mezzo.agent.recovery`; the
executor API and read endpoints are `executor_api` and `http`. Nothing here decides: anything
that changes frameworks, executors or tasks is the core's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import uuid as uuidlib
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from mezzo.agent import launch as launching
from mezzo.agent import volumes as volume_dirs
from mezzo.agent.auth import AgentSecurity
from mezzo.agent.checkpoint import Checkpointer, read_checkpointed_resources
from mezzo.agent.container_support import rlimits_of
from mezzo.agent.containerizer import (
    Containerizer,
    ContainerState,
    LaunchError,
)
from mezzo.agent.containerizer import paths as layout
from mezzo.agent.containerizer.io_switchboard import Switchboard, window_of
from mezzo.agent.core import VERSION, AgentCore, AgentOptions
from mezzo.agent.events import (
    AgentInput,
    ContainerExited,
    ContainerLaunched,
    ContainerLaunchFailed,
    ContainerLimited,
    MasterDisconnected,
    TasksFetched,
)
from mezzo.agent.fetcher import Fetcher, FetchError
from mezzo.agent.flags import AgentFlags
from mezzo.agent.operations import ResourcesCheckpoint
from mezzo.agent.outbox import CheckpointRecord, ContainerLaunch, TaskFetch
from mezzo.agent.sandbox_gc import SandboxCollector
from mezzo.agent.state import Framework
from mezzo.agent.updates import StatusUpdateManager
from mezzo.api import executor as exe
from mezzo.api.codec import encode
from mezzo.api.common import (
    URI,
    AgentID,
    AgentInfo,
    ContainerInfo,
    ExecutorInfo,
    FrameworkID,
    FrameworkInfo,
    KillPolicy,
    TaskGroupInfo,
    TaskID,
    TaskInfo,
)
from mezzo.api.internal import (
    AgentCall,
    AgentEvent,
    AgentEventType,
    AgentKillTask,
    AgentRunTask,
    AgentRunTaskGroup,
)
from mezzo.core.clock import Clock, RealClock
from mezzo.core.errors import NotFoundError
from mezzo.net.stream import RecordStream
from mezzo.resources import Resources
from mezzo.security.executor_tokens import TOKEN_ENV

__all__ = ["VERSION", "Agent", "options_from_flags"]

log = logging.getLogger(__name__)


def options_from_flags(flags: AgentFlags) -> AgentOptions:
    return AgentOptions(
        work_dir=flags.work_dir,
        executor_registration_timeout=flags.executor_registration_timeout,
        executor_shutdown_grace_period=flags.executor_shutdown_grace_period,
        executor_reregistration_timeout=flags.executor_reregistration_timeout,
        status_update_retry_interval=flags.status_update_retry_interval,
        status_update_retry_max=flags.status_update_retry_max,
    )


class Agent:
    """One agent's shell (see the module docstring)."""

    def __init__(
        self,
        flags: AgentFlags,
        containerizer: Containerizer,
        info: AgentInfo,
        *,
        clock: Clock | None = None,
        uuid_bytes: Callable[[], bytes] | None = None,
        endpoint: tuple[str, int] | None = None,
    ) -> None:
        self.flags = flags
        self.containerizer = containerizer
        self.clock = clock or RealClock()
        self.checkpointer = Checkpointer(flags.work_dir)
        self.core = AgentCore(
            info, self, clock=self.clock,
            uuid_bytes=uuid_bytes or (lambda: uuidlib.uuid4().bytes),
            options=options_from_flags(flags), recovering=True,
        )
        # Where executors and the master reach this agent (the bound, advertised address).
        self.endpoint_ip, self.endpoint_port = endpoint or ("127.0.0.1", flags.port)
        # Calls to the master go through this (MasterLink.send); None = not connected yet.
        self.send_call: Callable[[AgentCall], None] = lambda call: None
        self.recovered = asyncio.Event()  # the core finished recovery
        self.stopped = asyncio.Event()  # the master's SHUTDOWN was carried out
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self.gc = SandboxCollector(
            flags.work_dir, self.clock, flags.gc_delay, flags.disk_watch_interval,
            flags.gc_disk_headroom,
        )
        self._fetcher: Fetcher | None = None  # created at the first fetch
        # Containers whose standard streams the agent carries (a TTY, a session): the executors'
        # with a TTYInfo, and nested ones (`container_api`), by containerizer id.
        self.switchboards: dict[str, Switchboard] = {}
        # Authentication, executor tokens and ACLs of this agent's endpoints.
        self.security = AgentSecurity.from_flags(flags)

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:
            parent = self.flags.fetcher_cache_dir or os.path.join(self.flags.work_dir, "fetch")
            # One cache per agent (work_dir), emptied when the agent starts, as Mesos does.
            tag = hashlib.sha256(os.path.abspath(self.flags.work_dir).encode()).hexdigest()[:16]
            self._fetcher = Fetcher(os.path.join(parent, tag), self.flags.fetcher_cache_size)
        return self._fetcher

    # ================================================================= read-only views

    @property
    def info(self) -> AgentInfo:
        return self.core.info

    @property
    def agent_id(self) -> AgentID | None:
        return self.core.info.id

    @property
    def total(self) -> Resources:
        return self.core.total

    @property
    def frameworks(self) -> dict[str, Framework]:
        return self.core.frameworks

    @property
    def completed_frameworks(self) -> Any:
        return self.core.completed_frameworks

    @property
    def updates(self) -> StatusUpdateManager:
        return self.core.updates

    @property
    def registered(self) -> bool:
        return self.core.registered

    @property
    def recovering(self) -> bool:
        return self.core.recovering

    @property
    def master_info(self) -> object | None:
        return self.core.master_info

    @property
    def metrics(self) -> dict[str, int]:
        return self.core.metrics

    @property
    def task_counts(self) -> dict[str, int]:
        return self.core.task_counts

    @property
    def start_time(self) -> float:
        return self.core.start_time

    def used_resources(self) -> Resources:
        return self.core.used_resources()

    @property
    def pid(self) -> str:
        return f"slave(1)@{self.endpoint_ip}:{self.endpoint_port}"

    def subscribe_body(self) -> bytes:
        """The SUBSCRIBE call to the master (registration or re-registration)."""
        return encode(self.core.subscribe_call(pid=self.pid))

    # ================================================================= inputs

    def handle(self, event: AgentInput) -> None:
        """Hand one event to the core (CallRefused propagates), then re-arm the timer."""
        try:
            self.core.handle(event)
        finally:
            self._arm_timer()

    def on_master_event(self, event: AgentEvent) -> None:
        self.handle(event)

    def on_master_disconnected(self) -> None:
        self.handle(MasterDisconnected())

    def run_task(
        self,
        framework_info: FrameworkInfo,
        tasks: list[TaskInfo],
        executor_info: ExecutorInfo | None,
        *,
        group: bool,
    ) -> None:
        """As if the master sent RUN_TASK (or RUN_TASK_GROUP)."""
        if group:
            assert executor_info is not None
            event = AgentEvent(
                type=AgentEventType.RUN_TASK_GROUP,
                run_task_group=AgentRunTaskGroup(
                    framework_info=framework_info, executor_info=executor_info,
                    task_group=TaskGroupInfo(tasks=tasks),
                ),
            )
        else:
            event = AgentEvent(
                type=AgentEventType.RUN_TASK,
                run_task=AgentRunTask(
                    framework_info=framework_info, task=tasks[0], executor_info=executor_info
                ),
            )
        self.handle(event)

    def kill_task(self, framework_id: FrameworkID, task_id: TaskID, policy: KillPolicy | None) -> None:
        """As if the master sent KILL_TASK."""
        self.handle(
            AgentEvent(
                type=AgentEventType.KILL_TASK,
                kill_task=AgentKillTask(framework_id=framework_id, task_id=task_id,
                                        kill_policy=policy),
            )
        )

    # ================================================================= the timer

    def _arm_timer(self) -> None:
        """Have the timer fire by the core's next deadline. A timer already armed for an
        earlier time is kept (it fires, `tick` finds nothing due, and it is re-armed), so the
        common case, a later deadline, costs no timer churn."""
        deadline = self.core.next_deadline()
        if deadline is None:
            return  # an armed timer fires once for nothing and is not re-armed
        if self._timer is not None and self._timer_deadline is not None:
            if self._timer_deadline <= deadline:
                return
            self._timer.cancel()
        self._timer_deadline = deadline
        delay = max(0.0, deadline - self.clock.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_deadline = None
        try:
            self.core.tick()
        finally:
            self._arm_timer()

    # ================================================================= the outbox

    def launch_container(self, launch: ContainerLaunch) -> None:
        self.spawn(self._launch(launch))

    async def _launch(self, launch: ContainerLaunch) -> None:
        assert self.info.id is not None and launch.framework.id is not None
        try:
            sandbox = layout.create_sandbox(
                self.flags.work_dir, self.info.id.value, launch.framework.id.value,
                launch.executor.executor_id.value, launch.container_id,
            )
            endpoint = launching.AgentEndpoint(
                self.info.id.value, self.endpoint_ip, self.endpoint_port, self.flags.work_dir
            )
            env = launching.executor_environment(
                framework=launch.framework, executor=launch.executor, sandbox=sandbox,
                agent=endpoint,
                shutdown_grace_period=launching.shutdown_grace(
                    launch.executor, self.flags.executor_shutdown_grace_period
                ),
                recovery_timeout=self.flags.recovery_timeout,
                reregistration_timeout=self.flags.executor_reregistration_timeout,
                http_command_executor=self.flags.http_command_executor,
                base=self.flags.executor_environment_variables, command=launch.command,
            )
            token = self.security.mint(
                launch.framework.id.value, launch.executor.executor_id.value, launch.container_id
            )
            env.pop(TOKEN_ENV, None)  # never the agent's own, if it has one
            # With TLS, executors reach this agent over HTTPS with the agent's trust.
            env.update(self.security.tls.child_environment())
            if token is not None:
                env[TOKEN_ENV] = token
            config = launching.container_config(
                executor=launch.executor, command=launch.command,
                command_executor_argv=self.flags.command_executor, sandbox=sandbox,
                env=env,
                # A command task's user runs its executor; any other executor runs as its own
                # CommandInfo.user, else the framework's (the default executor's tasks share it).
                user=launching.executor_user(
                    launch.framework, launch.executor,
                    launch.first_task if launch.command else None, self.flags.switch_user,
                ),
                resources=launch.resources, pids_max=self.flags.pids_max,
                rlimits=rlimits_of(
                    launch.first_task.container if launch.command else launch.executor.container
                ),
                work_dir=self.flags.work_dir,
            )
            ports = tuple(launch.resources.ranges("ports"))
            config = replace(config, ports=ports or None)
            if launch.uris:
                # Off the event loop: downloads, copies and archives block.
                await asyncio.to_thread(self.fetcher.fetch, launch.uris, sandbox, config.user)
            board = tty_switchboard(
                launch.first_task.container if launch.command else launch.executor.container,
                sandbox,
            )
            if board is not None:  # a TTY: the agent carries the container's I/O (attach)
                config = replace(config, stdio=board.stdio)
            try:
                pid = await self.containerizer.launch(launch.container_id, config)
            except BaseException:
                if board is not None:
                    board.close()
                raise
            if board is not None:
                board.started()
                self.switchboards[launch.container_id] = board
        except FetchError as e:
            self.handle(ContainerLaunchFailed(
                launch.container_id,
                f"Failed to launch container: Failed to fetch all URIs for container "
                f"'{launch.container_id}': {e}",
            ))
            return
        except (LaunchError, OSError) as e:
            self.handle(ContainerLaunchFailed(launch.container_id, str(e)))
            return
        self._report_limitations(launch.container_id)
        self.handle(ContainerLaunched(launch.container_id, pid))
        self.spawn(self._watch(launch.container_id))

    def _report_limitations(self, container_id: str) -> None:
        """A limit this container breaks goes to the core (ContainerLimited), which has it
        destroyed; the containerizer does not kill it on its own."""
        with contextlib.suppress(NotFoundError):  # it ended already: ContainerExited says so
            self.containerizer.on_limitation(
                container_id, lambda limitation: self.handle(ContainerLimited(container_id, limitation)))

    async def _watch(self, container_id: str) -> None:
        termination = await self.containerizer.wait(container_id)
        board = self.switchboards.pop(container_id, None)
        if board is not None:
            await board.drain_and_close()
        self.handle(ContainerExited(container_id, termination))

    def fetch_task_uris(self, fetch: TaskFetch) -> None:
        self.spawn(self._fetch_task_uris(fetch))

    async def _fetch_task_uris(self, fetch: TaskFetch) -> None:
        """A group's URIs into its tasks' sandboxes, off the event loop (the fetcher blocks)."""
        user = launching.executor_user(fetch.framework, fetch.executor, None, self.flags.switch_user)
        error = None
        try:
            for directory, uris in fetch.fetches:
                await asyncio.to_thread(self._fetch_into_task_sandbox, Path(directory), uris, user)
        except FetchError as e:
            error = f"Failed to fetch all URIs for container '{fetch.container_id}': {e}"
        except OSError as e:
            error = f"Failed to prepare the task's sandbox: {e}"
        self.handle(TasksFetched(fetch.container_id, fetch.key, error))

    def _fetch_into_task_sandbox(self, sandbox: Path, uris: tuple[URI, ...], user: str | None) -> None:
        sandbox.mkdir(parents=True, exist_ok=True)
        self.fetcher.fetch(uris, sandbox, user)
        if user and os.geteuid() == 0:  # the executor, running as `user`, writes there too
            for path in (sandbox, layout.stdout_path(sandbox), layout.stderr_path(sandbox)):
                if path.exists():
                    shutil.chown(path, user)

    def destroy_container(self, container_id: str) -> None:
        self.spawn(self._destroy(container_id))

    async def _destroy(self, container_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.containerizer.destroy(container_id)

    def update_container(self, container_id: str, resources: Resources) -> None:
        self.spawn(self._update(container_id, resources))

    async def _update(self, container_id: str, resources: Resources) -> None:
        with contextlib.suppress(Exception):
            await self.containerizer.update(
                container_id, cpus=resources.cpus() or None, mem_mb=resources.mem() or None,
                volumes=launching.volume_mounts(self.flags.work_dir, resources),
                ports=tuple(resources.ranges("ports")),
            )

    def adopt_containers(self, containers: list[tuple[str, int]]) -> None:
        self.spawn(self._adopt(containers))

    async def _adopt(self, containers: list[tuple[str, int]]) -> None:
        await self.containerizer.recover([ContainerState(cid, pid) for cid, pid in containers])
        for container_id, _pid in containers:
            self._report_limitations(container_id)
            ex = self.core.containers.get(container_id)
            if ex is not None:  # the isolators learn the recovered container's ports again
                with contextlib.suppress(Exception):
                    await self.containerizer.update(
                        container_id, ports=tuple(ex.resources.ranges("ports")))
            self.spawn(self._watch(container_id))

    def send_executor(self, stream: Any, event: exe.Event) -> None:
        assert isinstance(stream, RecordStream)
        stream.send(encode(event))

    def close_executor(self, stream: Any, reason: str) -> None:
        assert isinstance(stream, RecordStream)
        stream.close(reason)

    def send_master(self, call: AgentCall) -> None:
        self.send_call(call)

    def checkpoint(self, record: CheckpointRecord) -> None:
        if isinstance(record, ResourcesCheckpoint):
            # Volume directories follow the checkpointed resources (created before they
            # are checkpointed, as Mesos); what was checkpointed last is on disk.
            before = Resources.from_wire(read_checkpointed_resources(self.flags.work_dir))
            try:
                volume_dirs.sync(self.flags.work_dir, before, Resources.from_wire(record.resources))
            except OSError as e:
                log.error("persistent volumes not synced with the checkpointed resources: %s", e)
        self.checkpointer.write(record)

    def recovery_complete(self) -> None:
        self.recovered.set()
        # Runs of containers the core no longer knows are finished: collect them too.
        self.gc.start(self.core.containers)

    def schedule_gc(self, paths: list[str]) -> None:
        self.gc.schedule(paths)

    def stop_agent(self, forget: bool) -> None:
        self.spawn(self._stop(forget))

    async def _stop(self, forget: bool) -> None:
        """Wait (bounded) for the containers the core is ending, then stop."""
        for container_id, grace, _checkpointing in self.core.live_executor_containers():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.containerizer.wait(container_id), grace + 5)
        if forget:
            with contextlib.suppress(OSError):
                layout.latest_agent_path(self.flags.work_dir).unlink()
        self.stopped.set()

    # ================================================================= helpers

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine in the background, keeping a reference until it is done."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)


def tty_switchboard(container: ContainerInfo | None, sandbox: Path) -> Switchboard | None:
    """A TTY for an executor's container whose ContainerInfo has a `tty_info` (Mesos gives
    one, so that its task can be attached to: ATTACH_CONTAINER_INPUT/OUTPUT); None without."""
    if container is None or container.tty_info is None:
        return None
    return Switchboard(sandbox, tty=True, wait_for_connection=False,
                       window=window_of(container.tty_info))


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
