"""Sandbox garbage collection: the pure schedule on a FakeClock, then real agents (a finished
executor's sandbox goes after --gc_delay, a running one's stays; after a restart the
sandboxes of executors that finished before it are collected)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mezzo.agent.gc import GcSchedule, max_allowed_age
from mezzo.agent.sandbox_gc import finished_runs
from mezzo.core.clock import FakeClock
from mezzo.testing.agent_harness import (
    MiniScheduler,
    Proc,
    command_task,
    free_port,
    kill_leftovers,
    start_agent,
    start_master,
)
from mezzo.testing.processes import eventually

WEEK = 7 * 24 * 3600.0


def test_paths_are_due_after_their_delay() -> None:
    clock = FakeClock()
    gc = GcSchedule()
    gc.schedule("/a", 100.0, clock.now())
    gc.schedule("/b", 50.0, clock.now())
    gc.schedule("/old", -5.0, clock.now())  # already older than gc_delay: at once
    assert gc.due(clock.now()) == ["/old"]
    assert gc.next_deadline() == clock.now() + 50
    clock.advance(49.9)
    assert gc.due(clock.now()) == []
    clock.advance(0.1)
    assert gc.due(clock.now()) == ["/b"]
    clock.advance(50)
    assert gc.due(clock.now()) == ["/a"]
    assert gc.next_deadline() is None and gc.scheduled() == {}


def test_unschedule_and_reschedule() -> None:
    clock = FakeClock()
    gc = GcSchedule()
    gc.schedule("/a", 10.0, clock.now())
    gc.schedule("/b", 10.0, clock.now())
    assert gc.unschedule("/a") and not gc.unschedule("/a")
    gc.schedule("/b", 30.0, clock.now())  # the new time replaces the old one
    clock.advance(10)
    assert gc.due(clock.now()) == []
    assert gc.next_deadline() == clock.now() + 20
    clock.advance(20)
    assert gc.due(clock.now()) == ["/b"]


def test_the_disk_filling_up_prunes_sooner_as_mesos() -> None:
    # Mesos: max allowed age = gc_delay * max(0, 1 - headroom - usage).
    assert max_allowed_age(WEEK, 0.1, 0.5) == pytest.approx(0.4 * WEEK)
    assert max_allowed_age(WEEK, 0.1, 0.95) == 0.0
    clock = FakeClock()
    gc = GcSchedule()
    start = clock.now()
    gc.schedule("/oldest", WEEK, start)
    clock.advance(0.5 * WEEK)
    gc.schedule("/newer", WEEK, clock.now())
    clock.advance(0.1 * WEEK)  # /oldest is 0.6 weeks old, /newer 0.1 weeks
    assert gc.prune_for_usage(WEEK, 0.1, 0.2, clock.now()) == []  # may be 0.7 weeks old
    assert gc.prune_for_usage(WEEK, 0.1, 0.5, clock.now()) == ["/oldest"]  # 0.4 weeks
    assert gc.scheduled() == {"/newer": start + 1.5 * WEEK}
    assert gc.prune_for_usage(WEEK, 0.1, 0.9, clock.now()) == ["/newer"]  # full: everything


def test_finished_runs_skip_live_containers_and_latest_links(tmp_path: Path) -> None:
    runs = tmp_path / "slaves/a1/frameworks/f1/executors/e1/runs"
    meta = tmp_path / "meta/slaves/a1/frameworks/f1/executors/e1/runs"
    for d in (runs / "c-old", runs / "c-live", meta / "c-old"):
        d.mkdir(parents=True)
    (runs / "latest").symlink_to("c-live")
    (tmp_path / "meta/slaves/latest").symlink_to("a1")
    found = finished_runs(str(tmp_path), {"c-live"})
    assert sorted(found) == sorted([str(runs / "c-old"), str(meta / "c-old")])


# --------------------------------------------------------------------------- real agents


@pytest.fixture
def master(tmp_path: Path) -> Iterator[Proc]:
    proc = start_master(tmp_path)
    try:
        yield proc
    finally:
        kill_leftovers(tmp_path / "agent")
        proc.kill()


def sandbox_of(work_dir: Path, executor_id: str) -> Path:
    [run] = [
        p for p in work_dir.glob(f"slaves/*/frameworks/*/executors/{executor_id}/runs/*")
        if p.name != "latest"
    ]
    return run


async def until_gone(path: Path, timeout: float = 30.0) -> None:
    await eventually(lambda: not path.exists(), timeout, f"{path} collected")


GC_FAST = ["--gc_delay", "2secs", "--disk_watch_interval", "1secs", "--gc_disk_headroom", "0"]


@pytest.mark.slow
async def test_finished_sandbox_is_collected_running_one_is_not(
    master: Proc, tmp_path: Path
) -> None:
    agent = start_agent(tmp_path, master.address, "--resources", "cpus:4;mem:4096", *GC_FAST)
    try:
        async with MiniScheduler(master.url) as s:
            await s.launch([command_task("done", "echo bye"), command_task("long", "sleep 60")])
            await s.wait_state("done", "TASK_FINISHED")
            await s.wait_state("long", "TASK_RUNNING")
            work_dir = tmp_path / "agent"
            finished, running = sandbox_of(work_dir, "done"), sandbox_of(work_dir, "long")
            assert (finished / "stdout").read_text() == "bye\n"
            await until_gone(finished)
            # A measurement window, on purpose: longer than gc_delay, the running one must stay.
            await asyncio.sleep(2.5)
            assert (running / "stdout").exists()
    finally:
        agent.kill()


@pytest.mark.slow
async def test_sandboxes_finished_before_a_restart_are_collected(
    master: Proc, tmp_path: Path
) -> None:
    port = free_port()
    agent = start_agent(tmp_path, master.address, "--resources", "cpus:4;mem:4096", port=port)
    try:
        async with MiniScheduler(master.url, checkpoint=True) as s:
            await s.launch([command_task("done", "echo bye")])
            await s.wait_state("done", "TASK_FINISHED")
            finished = sandbox_of(tmp_path / "agent", "done")
            # The acknowledgement reached the agent: the executor is completed (its meta gone).
            await eventually(lambda: not any((tmp_path / "agent").glob(
                "meta/slaves/*/frameworks/*/executors/done")), 10, "the executor completed")
            agent.kill()  # default gc_delay (a week): nothing was collected
            assert finished.exists()
            os.utime(finished, (time.time() - 60, time.time() - 60))  # finished a minute ago
            agent = start_agent(
                tmp_path, master.address, "--resources", "cpus:4;mem:4096",
                "--gc_delay", "1mins", "--gc_disk_headroom", "0", port=port,
            )
            await until_gone(finished)
    finally:
        agent.kill()
