"""The Isolator contract (Mesos ``include/mesos/slave/isolator.hpp``): every hook a no-op.

An isolator owns one aspect of a container (a cgroup controller, a namespace, rlimits). The
containerizer calls the hooks of its ordered isolators in this lifecycle:

    recover(states)                    once, after an agent restart, with the live containers
    prepare(container_id, config)      before the process exists; may return a LaunchInfo
    isolate(container_id, pid)         after fork, BEFORE the executor's code runs (the launcher
                                       holds the process at a barrier until every isolate ran)
    watch(container_id)                a future resolved with a Limitation if a limit is broken
    limitation(container_id)           the pollable half of watch: asked once the process has
                                       exited, so a breach that killed it is never missed
    update(container_id, ...)          new resource limits while running
    update_ports(container_id, ports)  new allocated `ports` ranges (network/ports)
    update_volumes(container_id, vols) the persistent volumes it uses now (filesystem isolators)
    usage(container_id)                ResourceStatistics (merged across isolators)
    cleanup(container_id)              after every process of the container is gone, in reverse
                                       order; must tolerate a container it never prepared

Hooks are synchronous: each does a few small file writes (cgroupfs, /proc), cheaper than a
thread hop, and launch latency matters. ``watch`` is the only asynchronous contract.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar

from mezzo.agent.containerizer.records import (
    ContainerConfig,
    ContainerState,
    LaunchInfo,
    Limitation,
    ResourceStatistics,
    VolumeMount,
)

__all__ = ["Isolator", "Limitation"]


class Isolator:
    """Base class; subclasses override only the hooks they need."""

    #: The name used in ``--isolation`` (e.g. ``"cgroups/mem"``).
    name: ClassVar[str] = ""
    #: True when ``isolate`` must run before the executor's first instruction (cgroups,
    #: rlimits); the launcher then holds the new process at a barrier. Isolators that only
    #: observe (posix/cpu, posix/mem) leave it False so the launch skips the barrier.
    isolates_before_exec: ClassVar[bool] = False

    def recover(self, states: Sequence[ContainerState]) -> None:
        """Re-adopt the containers that survived an agent restart."""

    def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        """Set up before launch (create cgroups, decide wrappers)."""
        return None

    def isolate(self, container_id: str, pid: int) -> None:
        """Put ``pid`` (not yet running the executor) under this isolator's control."""

    def watch(self, container_id: str) -> asyncio.Future[Limitation] | None:
        """A future resolved when the container breaks a limit; None if it never will."""
        return None

    def limitation(self, container_id: str) -> Limitation | None:
        """A limit breach already recorded by the kernel (asked after the process exited)."""
        return None

    def update(
        self,
        container_id: str,
        cpus: float | None = None,
        mem_mb: float | None = None,
        pids_max: int | None = None,
    ) -> None:
        """Apply new limits; ``None`` leaves a limit unchanged."""

    def update_volumes(self, container_id: str, volumes: Sequence[VolumeMount]) -> None:
        """The persistent volumes the container uses now (tasks joined or left it)."""

    def update_ports(self, container_id: str, ports: tuple[tuple[int, int], ...]) -> None:
        """The container's allocated ``ports`` ranges changed (inclusive ranges)."""

    def usage(self, container_id: str) -> ResourceStatistics:
        """What this isolator measures of the container."""
        return ResourceStatistics()

    def cleanup(self, container_id: str) -> None:
        """Release everything held for the container (its processes are already gone)."""
