"""The posix isolators: ``posix/cpu``, ``posix/mem`` (accounting) and ``posix/rlimits``.

posix/cpu and posix/mem work on any POSIX machine and, exactly like Mesos's, **report usage
only; they enforce nothing**. Usage is sampled from /proc with psutil over the container's
process tree (the root process and its descendants; CPU time of reaped children is included
through ``children_user``/``children_system``). We deliberately do not kill on RSS polling: a
poll samples, so a fast allocation overshoots before it is seen, and the kill would land at an
arbitrary time on a healthy process that merely peaked. Enforced memory limits (and the
REASON_CONTAINER_LIMITATION_MEMORY limitation) come from ``cgroups/mem``.

posix/rlimits applies ``ContainerConfig.rlimits`` with prlimit(2) to the launched process while
the launcher holds it at its barrier, so the limits are inherited by the executor's exec.
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Sequence
from dataclasses import replace

import psutil

from mezzo.agent.containerizer.isolator import Isolator
from mezzo.agent.containerizer.records import (
    ContainerConfig,
    ContainerState,
    LaunchError,
    LaunchInfo,
    ResourceStatistics,
)


class _ProcessTreeIsolator(Isolator):
    """Remembers each container's root pid; samples its process tree."""

    def __init__(self) -> None:
        self._pids: dict[str, int] = {}
        self._configs: dict[str, ContainerConfig] = {}

    def recover(self, states: Sequence[ContainerState]) -> None:
        for s in states:
            self._pids[s.container_id] = s.pid
            if s.config is not None:
                self._configs[s.container_id] = s.config

    def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        self._configs[container_id] = config
        return None

    def isolate(self, container_id: str, pid: int) -> None:
        self._pids[container_id] = pid

    def cleanup(self, container_id: str) -> None:
        self._pids.pop(container_id, None)
        self._configs.pop(container_id, None)

    def _tree(self, container_id: str) -> list[psutil.Process]:
        pid = self._pids.get(container_id)
        if pid is None:
            return []
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []


class PosixCpuIsolator(_ProcessTreeIsolator):
    name = "posix/cpu"

    def usage(self, container_id: str) -> ResourceStatistics:
        user = system = 0.0
        processes = threads = 0
        for p in self._tree(container_id):
            with contextlib.suppress(psutil.Error):
                with p.oneshot():
                    t = p.cpu_times()
                    user += t.user + t.children_user
                    system += t.system + t.children_system
                    threads += p.num_threads()
                processes += 1
        config = self._configs.get(container_id)
        return ResourceStatistics(
            timestamp=time.time(),
            processes=processes,
            threads=threads,
            cpus_user_time_secs=user,
            cpus_system_time_secs=system,
            cpus_limit=config.cpus if config else None,
        )


class PosixMemIsolator(_ProcessTreeIsolator):
    name = "posix/mem"

    def usage(self, container_id: str) -> ResourceStatistics:
        rss = 0
        for p in self._tree(container_id):
            with contextlib.suppress(psutil.Error):
                rss += p.memory_info().rss
        config = self._configs.get(container_id)
        limit = int(config.mem_mb * 1024 * 1024) if config and config.mem_mb else None
        return ResourceStatistics(timestamp=time.time(), mem_rss_bytes=rss, mem_limit_bytes=limit)

    def update(
        self,
        container_id: str,
        cpus: float | None = None,
        mem_mb: float | None = None,
        pids_max: int | None = None,
    ) -> None:
        config = self._configs.get(container_id)
        if config is not None and mem_mb is not None:
            self._configs[container_id] = replace(config, mem_mb=mem_mb)


# Linux limits Python's resource module does not name (values from <sys/resource.h>).
_LINUX_ONLY = {"LOCKS": 10}


def rlimit_constant(name: str) -> int:
    """``"nofile"`` / ``"NOFILE"`` / Mesos's ``"RLMT_NOFILE"`` -> ``resource.RLIMIT_NOFILE``."""
    key = name.upper().removeprefix("RLMT_").removeprefix("RLIMIT_")
    value = getattr(resource, f"RLIMIT_{key}", _LINUX_ONLY.get(key))
    if value is None:
        raise LaunchError(f"unknown rlimit {name!r}")
    return int(value)


class PosixRlimitsIsolator(Isolator):
    name = "posix/rlimits"
    isolates_before_exec = True

    def __init__(self) -> None:
        self._limits: dict[str, list[tuple[int, int, int]]] = {}

    def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        limits: list[tuple[int, int, int]] = []
        for name, (soft, hard) in config.rlimits.items():
            s = _as_rlim(soft)
            h = _as_rlim(hard)
            if h != resource.RLIM_INFINITY and (s == resource.RLIM_INFINITY or s > h):
                raise LaunchError(f"rlimit {name!r}: soft limit {soft} exceeds hard limit {hard}")
            limits.append((rlimit_constant(name), s, h))
        self._limits[container_id] = limits
        return None

    def isolate(self, container_id: str, pid: int) -> None:
        for constant, soft, hard in self._limits.get(container_id, []):
            try:
                resource.prlimit(pid, constant, (soft, hard))
            except (OSError, ValueError) as e:
                raise LaunchError(f"cannot set rlimit {constant} on pid {pid}: {e}") from e

    def cleanup(self, container_id: str) -> None:
        self._limits.pop(container_id, None)


def _as_rlim(value: int | None) -> int:
    """None (unlimited) and values at or past 2**63 (Mesos's uint64 RLIM_INFINITY) are
    RLIM_INFINITY for prlimit, which takes a signed 64-bit value."""
    if value is None or value >= 2**63 - 1:
        return resource.RLIM_INFINITY
    return value
