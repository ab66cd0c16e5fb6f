"""The agent's sandbox garbage collector: carries out the `GcSchedule` (`mezzo.agent.gc`).

The core says when an executor is completed (the ``schedule_gc`` effect, with its sandbox);
after recovery, every run sandbox under ``<work_dir>/slaves`` (all agent ids, as Mesos) and
every run checkpoint under ``<work_dir>/meta/slaves`` that does not belong to a live container
is scheduled too, so the sandboxes of executors that finished before a restart are still
collected. A path is due ``--gc_delay`` after its last modification; every
``--disk_watch_interval`` the disk usage of the work_dir is read and the schedule pruned.
mtimes, disk usage and removal (``shutil.rmtree``) run in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from mezzo.agent.containerizer import paths as layout
from mezzo.agent.containerizer.isolators.filesystem import mount_points_under
from mezzo.agent.gc import GcSchedule
from mezzo.core.clock import Clock

log = logging.getLogger(__name__)


class SandboxCollector:
    def __init__(
        self,
        work_dir: str,
        clock: Clock,
        gc_delay: float,
        disk_watch_interval: float,
        gc_disk_headroom: float,
    ) -> None:
        self.work_dir = work_dir
        self.clock = clock
        self.gc_delay = gc_delay
        self.disk_watch_interval = disk_watch_interval
        self.headroom = gc_disk_headroom
        self.schedule_ = GcSchedule()
        self.removed = 0  # paths removed so far (for tests and metrics)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[None]] = set()

    # ---------------------------------------------------------------- inputs

    def start(self, live_containers: Iterable[str]) -> None:
        """Begin collecting: scan for finished runs (not in ``live_containers``) and loop."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run(set(live_containers)))

    def schedule(self, paths: list[str]) -> None:
        """Schedule paths (each ``gc_delay`` after its last modification)."""
        task = asyncio.ensure_future(self._schedule(paths))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # ---------------------------------------------------------------- the loop

    async def _schedule(self, paths: Iterable[str]) -> None:
        mtimes = await asyncio.to_thread(_mtimes, list(paths))
        now = self.clock.now()
        for path, mtime in mtimes:
            delay = self.gc_delay - max(0.0, now - mtime)
            self.schedule_.schedule(path, delay, now)
            log.debug("gc: %s scheduled in %.0f s", path, max(0.0, delay))
        self._wakeup.set()

    async def _run(self, live: set[str]) -> None:
        await self._schedule(await asyncio.to_thread(finished_runs, self.work_dir, live))
        next_disk_check = self.clock.monotonic()
        while True:
            if self.clock.monotonic() >= next_disk_check:
                next_disk_check = self.clock.monotonic() + self.disk_watch_interval
                await self._check_disk()
            await self._remove(self.schedule_.due(self.clock.now()))
            wait = next_disk_check - self.clock.monotonic()
            deadline = self.schedule_.next_deadline()
            if deadline is not None:
                wait = min(wait, deadline - self.clock.now())
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(0.0, wait))

    async def _check_disk(self) -> None:
        try:
            usage = await asyncio.to_thread(_disk_usage, self.work_dir)
        except OSError as e:
            log.error("gc: cannot read the disk usage of %s: %s", self.work_dir, e)
            return
        pruned = self.schedule_.prune_for_usage(
            self.gc_delay, self.headroom, usage, self.clock.now()
        )
        if pruned:
            log.info("gc: disk %.1f%% used: pruning %d directories", 100 * usage, len(pruned))
        await self._remove(pruned)

    async def _remove(self, paths: list[str]) -> None:
        if paths:
            await asyncio.to_thread(_remove_all, paths)
            self.removed += len(paths)


def _mtimes(paths: list[str]) -> list[tuple[str, float]]:
    out = []
    for path in paths:
        try:
            out.append((path, os.stat(path).st_mtime))
        except OSError:  # already gone (or never created: a launch that failed early)
            continue
    return out


def _disk_usage(path: str) -> float:
    usage = shutil.disk_usage(path)
    return usage.used / usage.total if usage.total else 0.0


def _remove_all(paths: list[str]) -> None:
    for path in paths:
        # Never delete through a mount: a persistent volume bind-mounted in a sandbox whose
        # container was not cleaned up (the agent was killed meanwhile) keeps its data.
        mounted = mount_points_under(Path(path))
        if mounted:
            log.warning("gc: not removing %s: %s is mounted there", path, mounted[-1])
            continue
        log.info("gc: removing %s", path)
        shutil.rmtree(path, ignore_errors=True)


def finished_runs(work_dir: str, live: set[str]) -> list[str]:
    """Run directories (sandboxes and checkpoints) of containers not in ``live``."""
    roots = [Path(work_dir) / "slaves", layout.meta_dir(work_dir) / "slaves"]
    out = []
    for root in roots:
        for runs in root.glob("*/frameworks/*/executors/*/runs"):
            if runs.relative_to(root).parts[0] == "latest":  # the symlink to the agent id
                continue
            for run in runs.iterdir():
                if run.name != "latest" and not run.is_symlink() and run.name not in live:
                    out.append(str(run))
    return out
