"""The cgroups isolators: ``cgroups/cpu``, ``cgroups/mem``, ``cgroups/pids`` (v1 and v2).

Each container gets ``<mount>/<cgroups_root>/<container_id>`` in the hierarchy of each
controller it uses (see :mod:`cgroupfs`). The launcher holds the new process at a barrier while
``isolate`` writes its pid to ``cgroup.procs``, so the executor's first instruction already runs
inside its limits. ``cleanup`` SIGKILLs every member (the kill loop also catches processes that
left the executor's session) and removes the cgroup.

Limits (as in Mesos, with one documented difference):

- cgroups/cpu: ``cpu.shares = max(2, 1024 × cpus)`` (v2: the matching ``cpu.weight``), and a
  CFS bandwidth quota ``cpus × 100 ms`` per 100 ms period (at least 1 ms). Mesos enables the
  quota only with ``--cgroups_enable_cfs`` (default false); mezzo defaults it to **true**, so a
  task gets the cpus it was offered and no more: predictable, and what users of the paper's
  "fine-grained sharing" expect when they pack tasks. Pass ``enable_cfs=False`` for the
  Mesos behaviour (shares only, work-conserving).
- cgroups/mem: ``memory.limit_in_bytes`` (v2 ``memory.max``) = mem, at least 32 MB (Mesos's
  minimum); the soft limit is set equal on v1. Swap is not limited (Mesos's default,
  ``--cgroups_limit_swap=false``). An OOM kill inside the cgroup becomes a Limitation with
  reason REASON_CONTAINER_LIMITATION_MEMORY: detected at once on v1 through an eventfd on
  ``memory.oom_control``, by polling ``memory.events`` every 100 ms on v2, and in both cases
  by checking the ``oom_kill`` counter when the container's process exits (so the race between
  the event and the exit never loses the reason).
- cgroups/pids: ``pids.max`` = pids_max when given; usage reports ``pids.current``.

A nested container (``ContainerConfig.parent`` names a container these isolators know) joins
its parent's cgroups instead of getting its own: it shares the parent's limits, an OOM kill in
that cgroup is the parent's limitation, and the parent's cleanup kills it with the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

from mezzo.agent.containerizer.isolator import Isolator
from mezzo.agent.containerizer.isolators.cgroupfs import (
    Cgroup,
    Hierarchy,
    find_hierarchy,
    list_container_cgroups,
    prepare_root,
)
from mezzo.agent.containerizer.records import (
    REASON_CONTAINER_LIMITATION_MEMORY,
    ContainerConfig,
    ContainerState,
    LaunchInfo,
    Limitation,
    ResourceStatistics,
)

MB = 1024 * 1024
CPU_SHARES_PER_CPU = 1024
MIN_CPU_SHARES = 2
CFS_PERIOD_US = 100_000
MIN_CFS_QUOTA_US = 1_000
MIN_MEMORY_BYTES = 32 * MB
V2_OOM_POLL_SECONDS = 0.1
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class _Container:
    cgroups: dict[str, Cgroup]
    config: ContainerConfig | None = None
    future: asyncio.Future[Limitation] | None = None
    fds: list[int] = field(default_factory=list)
    poller: asyncio.TimerHandle | None = None
    # A nested container: it lives in its parent's cgroups, which are not its own to clean up.
    nested: bool = False

    def unique(self) -> list[Cgroup]:
        """One handle per directory (on v2 several controllers share one)."""
        seen: dict[object, Cgroup] = {}
        for cg in self.cgroups.values():
            seen.setdefault(cg.path, cg)
        return list(seen.values())


class CgroupsIsolator(Isolator):
    """Shared machinery: one cgroup per container per controller, kill-and-remove cleanup."""

    isolates_before_exec = True
    #: Controllers this isolator needs; ``optional`` ones are used when present (cpuacct).
    controllers: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()

    def __init__(self, root: str = "mezzo", cleanup_orphans: bool = False) -> None:
        """Find and prepare the hierarchies; raises CgroupUnavailable with the reason."""
        self.root = root
        self.cleanup_orphans = cleanup_orphans
        self.hierarchies: dict[str, Hierarchy] = {}
        for controller in self.controllers:
            h = find_hierarchy(controller)
            prepare_root(h, root, controller)
            self.hierarchies[controller] = h
        for controller in self.optional:
            with contextlib.suppress(Exception):
                h = find_hierarchy(controller)
                if h.version == 1:  # v2 has no separate accounting controllers
                    prepare_root(h, root, controller)
                    self.hierarchies[controller] = h
        self._containers: dict[str, _Container] = {}

    def _handles(self, container_id: str) -> _Container:
        return _Container(
            {c: Cgroup(h, self.root, container_id) for c, h in self.hierarchies.items()}
        )

    def recover(self, states: Sequence[ContainerState]) -> None:
        known = {s.container_id for s in states}
        for state in states:
            c = self._handles(state.container_id)
            c.config = state.config
            if any(cg.exists() for cg in c.unique()):
                self._containers[state.container_id] = c
        if self.cleanup_orphans:
            for h in {h.mount: h for h in self.hierarchies.values()}.values():
                for orphan in list_container_cgroups(h, self.root):
                    if orphan not in known:
                        cg = Cgroup(h, self.root, orphan)
                        cg.kill_all()
                        with contextlib.suppress(OSError):
                            cg.remove()

    def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        parent = self._containers.get(config.parent) if config.parent is not None else None
        if parent is not None:
            # A nested container shares its parent's cgroups, hence its limits (Mesos's
            # nested containers share the parent's cgroups unless they ask for their own).
            self._containers[container_id] = _Container(dict(parent.cgroups), config, nested=True)
            return None
        c = self._handles(container_id)
        c.config = config
        self._containers[container_id] = c
        for cg in c.unique():
            cg.create()
        self.configure(c, config.cpus, config.mem_mb, config.pids_max)
        return None

    def isolate(self, container_id: str, pid: int) -> None:
        for cg in self._containers[container_id].unique():
            cg.add(pid)

    def update(
        self,
        container_id: str,
        cpus: float | None = None,
        mem_mb: float | None = None,
        pids_max: int | None = None,
    ) -> None:
        c = self._containers.get(container_id)
        if c is not None and not c.nested:
            self.configure(c, cpus, mem_mb, pids_max)

    def configure(
        self, c: _Container, cpus: float | None, mem_mb: float | None, pids_max: int | None
    ) -> None:
        """Write the limits this isolator owns (None: leave unchanged)."""

    def cleanup(self, container_id: str) -> None:
        c = self._containers.pop(container_id, None) or self._handles(container_id)
        if c.nested:
            return  # its processes are gone; the cgroups are the parent's
        self._stop_watching(c)
        for cg in c.unique():
            cg.kill_all()
            cg.remove()

    def _stop_watching(self, c: _Container) -> None:
        if c.poller is not None:
            c.poller.cancel()
        for fd in c.fds:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        c.fds.clear()
        if c.future is not None and not c.future.done():
            c.future.cancel()


class CgroupsCpuIsolator(CgroupsIsolator):
    name = "cgroups/cpu"
    controllers = ("cpu",)
    optional = ("cpuacct",)

    def __init__(
        self, root: str = "mezzo", cleanup_orphans: bool = False, enable_cfs: bool = True
    ) -> None:
        super().__init__(root, cleanup_orphans)
        self.enable_cfs = enable_cfs

    def configure(
        self, c: _Container, cpus: float | None, mem_mb: float | None, pids_max: int | None
    ) -> None:
        if cpus is None:
            return
        cg = c.cgroups["cpu"]
        shares = max(MIN_CPU_SHARES, int(CPU_SHARES_PER_CPU * cpus))
        if cg.v2:
            # The shares -> weight mapping used by runc/systemd ([2, 262144] -> [1, 10000]).
            cg.write("cpu.weight", 1 + ((shares - 2) * 9999) // 262142)
        else:
            cg.write("cpu.shares", shares)
        if self.enable_cfs:
            quota = max(MIN_CFS_QUOTA_US, int(cpus * CFS_PERIOD_US))
            if cg.v2:
                cg.write("cpu.max", f"{quota} {CFS_PERIOD_US}")
            else:
                cg.write("cpu.cfs_period_us", CFS_PERIOD_US)
                cg.write("cpu.cfs_quota_us", quota)
        if c.config is not None:
            c.config = replace(c.config, cpus=cpus)

    def usage(self, container_id: str) -> ResourceStatistics:
        c = self._containers.get(container_id)
        if c is None:
            return ResourceStatistics()
        cpu = c.cgroups["cpu"]
        stat = cpu.read_keyed("cpu.stat")
        stats = ResourceStatistics(
            timestamp=time.time(),
            cpus_limit=c.config.cpus if c.config else None,
            cpus_nr_periods=stat.get("nr_periods"),
            cpus_nr_throttled=stat.get("nr_throttled"),
        )
        if cpu.v2:
            stats.cpus_user_time_secs = stat.get("user_usec", 0) / 1e6
            stats.cpus_system_time_secs = stat.get("system_usec", 0) / 1e6
            if "throttled_usec" in stat:
                stats.cpus_throttled_time_secs = stat["throttled_usec"] / 1e6
        else:
            if "throttled_time" in stat:
                stats.cpus_throttled_time_secs = stat["throttled_time"] / 1e9
            acct = c.cgroups.get("cpuacct")
            if acct is not None:
                ticks = acct.read_keyed("cpuacct.stat")
                stats.cpus_user_time_secs = ticks.get("user", 0) / _CLK_TCK
                stats.cpus_system_time_secs = ticks.get("system", 0) / _CLK_TCK
        return stats


class CgroupsMemIsolator(CgroupsIsolator):
    name = "cgroups/mem"
    controllers = ("memory",)

    def configure(
        self, c: _Container, cpus: float | None, mem_mb: float | None, pids_max: int | None
    ) -> None:
        if mem_mb is None:
            return
        cg = c.cgroups["memory"]
        limit = max(MIN_MEMORY_BYTES, int(mem_mb * MB))
        if cg.v2:
            cg.write("memory.max", limit)
        else:
            cg.write("memory.limit_in_bytes", limit)
            cg.write("memory.soft_limit_in_bytes", limit)
        if c.config is not None:
            c.config = replace(c.config, mem_mb=mem_mb)

    def watch(self, container_id: str) -> asyncio.Future[Limitation] | None:
        c = self._containers.get(container_id)
        if c is None or c.nested:  # the parent's watch reports its cgroup's OOM kills
            return None
        if c.future is not None:
            return c.future
        loop = asyncio.get_running_loop()
        c.future = loop.create_future()
        cg = c.cgroups["memory"]
        if cg.v2:
            self._poll_v2(container_id, c)
            return c.future
        # v1: the kernel signals an eventfd registered through cgroup.event_control on OOM
        # (and also when the cgroup is removed: cleanup unregisters first, and the handler
        # confirms with the oom_kill counter).
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        ofd = os.open(cg.path / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        c.fds += [efd, ofd]
        cg.write("cgroup.event_control", f"{efd} {ofd}")
        loop.add_reader(efd, self._on_oom_event, container_id, efd)
        return c.future

    def _on_oom_event(self, container_id: str, efd: int) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.eventfd_read(efd)
        self._resolve(container_id)

    def _poll_v2(self, container_id: str, c: _Container) -> None:
        if not self._resolve(container_id):
            c.poller = asyncio.get_running_loop().call_later(
                V2_OOM_POLL_SECONDS, self._poll_v2, container_id, c
            )

    def _resolve(self, container_id: str) -> bool:
        c = self._containers.get(container_id)
        limitation = self.limitation(container_id)
        if c is None or limitation is None:
            return False
        if c.future is not None and not c.future.done():
            c.future.set_result(limitation)
        return True

    def limitation(self, container_id: str) -> Limitation | None:
        c = self._containers.get(container_id)
        if c is None or c.nested:
            return None
        cg = c.cgroups["memory"]
        counters = cg.read_keyed("memory.events" if cg.v2 else "memory.oom_control")
        if counters.get("oom_kill", 0) <= 0:
            return None
        limit = cg.read_int("memory.max" if cg.v2 else "memory.limit_in_bytes")
        peak = cg.read_int("memory.peak" if cg.v2 else "memory.max_usage_in_bytes")
        requested = c.config.mem_mb if c.config and c.config.mem_mb else (limit or 0) / MB
        used = f"{(peak or 0) / MB:.0f}MB" if peak is not None else "unknown"
        return Limitation(
            REASON_CONTAINER_LIMITATION_MEMORY,
            f"Memory limit exceeded: Requested: {requested:.0f}MB Maximum Used: {used}",
            {"mem": float(requested)},
        )

    def usage(self, container_id: str) -> ResourceStatistics:
        c = self._containers.get(container_id)
        if c is None:
            return ResourceStatistics()
        cg = c.cgroups["memory"]
        stat = cg.read_keyed("memory.stat")
        if cg.v2:
            return ResourceStatistics(
                timestamp=time.time(),
                mem_total_bytes=cg.read_int("memory.current"),
                mem_rss_bytes=stat.get("anon"),
                mem_cache_bytes=stat.get("file"),
                mem_max_bytes=cg.read_int("memory.peak"),
                mem_limit_bytes=cg.read_int("memory.max"),
            )
        return ResourceStatistics(
            timestamp=time.time(),
            mem_total_bytes=cg.read_int("memory.usage_in_bytes"),
            mem_rss_bytes=stat.get("total_rss"),
            mem_cache_bytes=stat.get("total_cache"),
            mem_max_bytes=cg.read_int("memory.max_usage_in_bytes"),
            mem_limit_bytes=cg.read_int("memory.limit_in_bytes"),
            mem_soft_limit_bytes=cg.read_int("memory.soft_limit_in_bytes"),
        )


class CgroupsPidsIsolator(CgroupsIsolator):
    name = "cgroups/pids"
    controllers = ("pids",)

    def configure(
        self, c: _Container, cpus: float | None, mem_mb: float | None, pids_max: int | None
    ) -> None:
        if pids_max is not None:
            c.cgroups["pids"].write("pids.max", pids_max)

    def usage(self, container_id: str) -> ResourceStatistics:
        c = self._containers.get(container_id)
        if c is None:
            return ResourceStatistics()
        cg = c.cgroups["pids"]
        return ResourceStatistics(
            pids_current=cg.read_int("pids.current"), pids_limit=cg.read_int("pids.max")
        )
