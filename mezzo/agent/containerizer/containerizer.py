"""The Containerizer: a launcher plus ordered isolators, driven from the agent's event loop.

Lifecycle of one container (one supervisor task each):

    launch:   prepare (isolators in order) -> spawn at the barrier -> isolate (in order)
              -> release -> RUNNING
    running:  wait for the root process to exit (pidfd) or an isolator's watch() Limitation
    limited:  a container with a limitation listener (``on_limitation``: the agent's executor
              containers, whose end the agent core decides) is reported to it and keeps
              running until its owner destroys it; any other is killed at once
    ending:   a limitation or destroy() kills the container; once the root is gone the
              stragglers of its session are killed, limitations are polled one last time,
              isolators clean up in reverse order (cgroups kill their remaining members), and
              wait() resolves with a Termination

Recovery after an agent restart: ``recover`` is given the checkpointed (container id, pid)
pairs, adopts each live root through a pidfd (it is no longer our child, so its exit status is
unknown: Termination.status is None), lets isolators re-adopt their state, and reports
containers whose process is already gone as terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from mezzo.agent.containerizer.detect import IsolationOptions, create_isolators
from mezzo.agent.containerizer.isolator import Isolator
from mezzo.agent.containerizer.isolators.filesystem import PosixFilesystemIsolator
from mezzo.agent.containerizer.launcher import Child, Launcher, kill_session, kill_sessions
from mezzo.agent.containerizer.logger import ContainerLogger
from mezzo.agent.containerizer.records import (
    ContainerConfig,
    ContainerState,
    LaunchError,
    LaunchInfo,
    Limitation,
    ResourceStatistics,
    Termination,
    VolumeMount,
)
from mezzo.core.errors import NotFoundError

log = logging.getLogger(__name__)

# How many finished containers still answer wait() (the agent usually waits before the end).
_TERMINATIONS_KEPT = 1024


@dataclass
class _Container:
    container_id: str
    child: Child
    config: ContainerConfig | None
    termination: asyncio.Future[Termination]
    limitation: Limitation | None = None
    destroyed: bool = False
    supervisor: asyncio.Task[None] | None = field(default=None, repr=False)


class Containerizer:
    """Launches, watches, limits and destroys containers (see the module docstring)."""

    def __init__(self, isolators: Sequence[Isolator] = (), launcher: Launcher | None = None):
        self.isolators = list(isolators)
        self.launcher = launcher or Launcher()
        self._barrier = any(i.isolates_before_exec for i in self.isolators)
        self._containers: dict[str, _Container] = {}
        self._terminated: OrderedDict[str, Termination] = OrderedDict()
        # Sessions of ended containers waiting for the next straggler scan, and its future.
        self._straggler_sessions: set[int] = set()
        self._straggler_scan: asyncio.Future[None] | None = None
        # Who is told of a container's limitation (and destroys it), by container id.
        self._limitation_listeners: dict[str, Callable[[Limitation], None]] = {}

    @classmethod
    def create(
        cls, options: IsolationOptions | None = None, logger: ContainerLogger | None = None
    ) -> Containerizer:
        """A containerizer with the isolators named by ``options.isolation`` (ConfigError),
        writing container output through ``logger`` (default: plain sandbox files)."""
        return cls(
            with_filesystem(create_isolators(options=options or IsolationOptions())),
            Launcher(logger),
        )

    def containers(self) -> list[str]:
        """Ids of the containers launched or recovered and not yet terminated."""
        return list(self._containers)

    def pid(self, container_id: str) -> int:
        return self._get(container_id).child.pid

    async def launch(self, container_id: str, config: ContainerConfig) -> int:
        """Start the container; returns its root pid (= its session and process group)."""
        if container_id in self._containers:
            raise LaunchError(f"container {container_id!r} already exists")
        self._terminated.pop(container_id, None)
        info = LaunchInfo()
        prepared: list[Isolator] = []
        child: Child | None = None
        step, who = "prepare", "launcher"
        try:
            for isolator in self.isolators:
                prepared.append(isolator)
                who = isolator.name
                contribution = isolator.prepare(container_id, config)
                if contribution is not None:
                    info.wrapper += contribution.wrapper
                    info.env.update(contribution.env)
            step, who = "launch", "launcher"
            child = self.launcher.spawn(config, info, self._barrier)
            step = "isolate"
            for isolator in self.isolators:
                who = isolator.name
                isolator.isolate(container_id, child.pid)
            child.release()
        except Exception as e:
            if child is not None:
                child.abort()
            for isolator in reversed(prepared):
                with contextlib.suppress(Exception):
                    isolator.cleanup(container_id)
            raise LaunchError(f"failed to {step} container {container_id} ({who}): {e}") from e
        self._start(container_id, child, config)
        return child.pid

    async def wait(self, container_id: str) -> Termination:
        """Block until the container has terminated and been cleaned up."""
        if container_id in self._terminated:
            return self._terminated[container_id]
        return await asyncio.shield(self._get(container_id).termination)

    async def destroy(self, container_id: str, grace: float = 0.0) -> Termination:
        """Kill every process of the container; SIGTERM first if ``grace`` > 0 seconds."""
        if container_id in self._terminated:
            return self._terminated[container_id]
        c = self._get(container_id)
        c.destroyed = True
        if grace > 0:
            kill_session(c.child.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(c.termination), grace)
        if not c.termination.done():
            self._kill(c)
        return await asyncio.shield(c.termination)

    def kill(self, container_id: str, sig: int) -> None:
        """Send ``sig`` to the container's root process (Mesos's ``Containerizer::kill``: the
        container ends when its root does); NotFoundError if it is not running."""
        self._get(container_id).child.signal(sig)

    async def update(
        self,
        container_id: str,
        cpus: float | None = None,
        mem_mb: float | None = None,
        pids_max: int | None = None,
        volumes: Sequence[VolumeMount] | None = None,
        ports: tuple[tuple[int, int], ...] | None = None,
    ) -> None:
        """New limits (None: unchanged) and, if given, the persistent volumes it uses now and
        its allocated `ports` ranges."""
        self._get(container_id)
        for isolator in self.isolators:
            isolator.update(container_id, cpus=cpus, mem_mb=mem_mb, pids_max=pids_max)
            if volumes is not None:
                isolator.update_volumes(container_id, volumes)
            if ports is not None:
                isolator.update_ports(container_id, ports)

    async def usage(self, container_id: str) -> ResourceStatistics:
        """Usage merged across isolators (later isolators win on shared fields)."""
        self._get(container_id)
        stats = ResourceStatistics()
        for isolator in self.isolators:
            stats.merge(isolator.usage(container_id))
        return stats

    def limitation(self, container_id: str) -> Limitation | None:
        """A limit breach the kernel already recorded for a live container (e.g. an OOM kill
        of one of its processes), before the supervisor has acted on it; None if none."""
        if container_id not in self._containers:
            return None
        c = self._containers[container_id]
        return c.limitation or self._poll_limitations(container_id)

    def on_limitation(self, container_id: str, listener: Callable[[Limitation], None]) -> None:
        """Report the limitation of this running container (an isolator's watch() fired) to
        `listener` instead of killing the container: its owner destroys it (Mesos's agent
        destroys a limited executor container). Its termination still carries the limitation.
        NotFoundError if the container is not running."""
        self._get(container_id)
        self._limitation_listeners[container_id] = listener

    async def recover(self, states: Iterable[ContainerState | tuple[str, int]]) -> None:
        """Re-attach to containers launched by a previous agent (see the module docstring)."""
        normalized = [s if isinstance(s, ContainerState) else ContainerState(*s) for s in states]
        for isolator in self.isolators:
            isolator.recover(normalized)
        for state in normalized:
            try:
                child = Child.adopt(state.pid)
            except LaunchError as e:
                log.info("container %s not recovered: %s", state.container_id, e)
                for isolator in reversed(self.isolators):
                    with contextlib.suppress(Exception):
                        isolator.cleanup(state.container_id)
                self._remember(state.container_id, Termination(None, None, str(e)))
                continue
            self._start(state.container_id, child, state.config)

    def cleanup_orphan(self, container_id: str) -> None:
        """Release what isolators hold for a container of a previous agent that was killed
        without being recovered (cgroups, a persistent volume's mounts); best effort."""
        for isolator in reversed(self.isolators):
            try:
                isolator.cleanup(container_id)
            except Exception as e:  # the others must still run
                log.info("cleanup of orphan %s by %s: %s", container_id, isolator.name, e)

    # --- internals -------------------------------------------------------------------------

    def _get(self, container_id: str) -> _Container:
        c = self._containers.get(container_id)
        if c is None:
            raise NotFoundError(f"unknown container {container_id!r}")
        return c

    def _start(self, container_id: str, child: Child, config: ContainerConfig | None) -> None:
        loop = asyncio.get_running_loop()
        c = _Container(container_id, child, config, loop.create_future())
        self._containers[container_id] = c
        c.supervisor = loop.create_task(self._supervise(c), name=f"container-{container_id}")
        c.supervisor.add_done_callback(lambda t, c=c: self._supervisor_done(c, t))

    def _supervisor_done(self, c: _Container, task: asyncio.Task[None]) -> None:
        """Never leave wait() hanging: a crashed supervisor still ends the container."""
        if c.termination.done():
            return
        error = "cancelled" if task.cancelled() else repr(task.exception())
        log.error("supervisor of container %s failed: %s", c.container_id, error)
        self._containers.pop(c.container_id, None)
        self._limitation_listeners.pop(c.container_id, None)
        termination = Termination(None, c.limitation, f"Container supervision failed: {error}")
        self._remember(c.container_id, termination)
        c.termination.set_result(termination)

    async def _kill_stragglers(self, sid: int) -> None:
        """SIGKILL what is left of an ended container's session. Containers that end together
        (their supervisors resume in the same loop iteration) share one /proc scan."""
        self._straggler_sessions.add(sid)
        if self._straggler_scan is None:
            loop = asyncio.get_running_loop()
            self._straggler_scan = loop.create_future()
            loop.call_soon(self._scan_for_stragglers)
        await asyncio.shield(self._straggler_scan)

    def _scan_for_stragglers(self) -> None:
        sids, self._straggler_sessions = self._straggler_sessions, set()
        done, self._straggler_scan = self._straggler_scan, None
        try:
            kill_sessions(sids, signal.SIGKILL)
        finally:
            if done is not None and not done.done():
                done.set_result(None)

    def _kill(self, c: _Container) -> None:
        c.child.signal(signal.SIGKILL)
        kill_session(c.child.pid, signal.SIGKILL)

    async def _supervise(self, c: _Container) -> None:
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()
        loop.add_reader(c.child.pidfd, lambda: exited.done() or exited.set_result(None))
        watches = [w for i in self.isolators if (w := i.watch(c.container_id)) is not None]
        try:
            await asyncio.wait([exited, *watches], return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                c.limitation = _first_limitation(watches)
                log.info("container %s limited: %s", c.container_id, c.limitation)
                listener = self._limitation_listeners.get(c.container_id)
                if listener is None or c.limitation is None:
                    self._kill(c)
                else:
                    try:
                        listener(c.limitation)  # the owner destroys it
                    except Exception:
                        log.exception("limitation listener of %s failed", c.container_id)
                        self._kill(c)
                await exited
        finally:
            loop.remove_reader(c.child.pidfd)
        status = c.child.reap()
        c.child.close()
        await asyncio.sleep(0)  # let an OOM eventfd that fired with the exit be handled
        if c.limitation is None:
            c.limitation = _first_limitation(watches) or self._poll_limitations(c.container_id)
        await self._kill_stragglers(c.child.pid)
        errors = []
        for isolator in reversed(self.isolators):
            try:
                isolator.cleanup(c.container_id)
            except Exception as e:  # cleanup must go on for the other isolators
                log.warning("cleanup of %s by %s failed: %s", c.container_id, isolator.name, e)
                errors.append(f"{isolator.name} cleanup failed: {e}")
        termination = Termination(status, c.limitation, self._message(c, status, errors))
        self._containers.pop(c.container_id, None)
        self._limitation_listeners.pop(c.container_id, None)
        self._remember(c.container_id, termination)
        c.termination.set_result(termination)

    def _poll_limitations(self, container_id: str) -> Limitation | None:
        for isolator in self.isolators:
            with contextlib.suppress(Exception):
                if (limitation := isolator.limitation(container_id)) is not None:
                    return limitation
        return None

    @staticmethod
    def _message(c: _Container, status: int | None, errors: list[str]) -> str:
        if c.limitation is not None:
            text = c.limitation.message
        elif c.destroyed:
            text = "Container destroyed"
        else:
            text = "Container " + Termination(status).describe()
        return "; ".join([text, *errors])

    def _remember(self, container_id: str, termination: Termination) -> None:
        self._terminated[container_id] = termination
        while len(self._terminated) > _TERMINATIONS_KEPT:
            self._terminated.popitem(last=False)


def with_filesystem(isolators: list[Isolator]) -> list[Isolator]:
    """As Mesos: `filesystem/posix` comes first unless a `filesystem/*` isolator is named."""
    if any(i.name.startswith("filesystem/") for i in isolators):
        fs = [i for i in isolators if i.name.startswith("filesystem/")]
        return fs + [i for i in isolators if not i.name.startswith("filesystem/")]
    return [PosixFilesystemIsolator(), *isolators]


def _first_limitation(watches: list[asyncio.Future[Limitation]]) -> Limitation | None:
    for w in watches:
        if w.done() and not w.cancelled() and w.exception() is None:
            return w.result()
    return None
