"""Command executor benchmark: ACCEPT -> TASK_FINISHED latency of `true`, and tasks/s on one agent.

Everything real, on loopback: a `mezzo master` process (`--registry in_memory`), one `mezzo agent`
process (`--resources cpus:64;mem:65536;disk:1000;ports:[31000-32000]`, given isolation), real
command executors (`mezzo/executor/command.py`) running `/bin/sh -c true` in real containers, and
a minimal v1 scheduler in this process (`mezzo/testing/raw_scheduler.py`: raw aiohttp, not the SDK, so
that only the master -> agent -> executor path is measured; it acknowledges every update
explicitly and at once, as the SDK's implicit acknowledgements do).

Per configuration (isolation), two phases:

- latency: N tasks (`true`, cpus 1, mem 32) launched one after the other; each sample runs from
  just before the ACCEPT is sent to the arrival of TASK_FINISHED at the scheduler. The executor's
  own status timestamps split each sample into: agent launch + executor start + SUBSCRIBE (to
  TASK_STARTING), spawning the command (to TASK_RUNNING), running it (to TASK_FINISHED's
  timestamp), and forwarding (the rest: the agent forwards FINISHED once RUNNING is
  acknowledged, so this includes a scheduler -> master -> agent acknowledgement round trip).
- throughput: up to `--inflight` tasks (cpus 1, mem 32) in flight, offers pooled and accepted as
  soon as a slot frees, for `--seconds` or `--tasks` completions, whichever comes first;
  reported as TASK_FINISHED per second over that window.

One JSON line per configuration goes to stdout. Bounded: every wait has a deadline; the master,
the agent and every executor/task they started are stopped by `LocalCluster.stop` (SIGTERM, then
SIGKILL of descendants and of processes carrying the cluster's marker).

    .venv/bin/python bench/command_launch.py                       # default isolation
    .venv/bin/python bench/command_launch.py --isolation default --isolation cgroups/cpu,cgroups/mem

Recorded in docs/benchmarks.md, "Command executor launch (issue 4)".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mezzo.testing.local_cluster import ClusterSpec, LocalCluster  # noqa: E402
from mezzo.testing.raw_scheduler import RawScheduler  # noqa: E402

AGENT_RESOURCES = "cpus:64;mem:65536;disk:1000;ports:[31000-32000]"
TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED",
            "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNREACHABLE"}


@dataclass
class TaskTimes:
    """When things happened to one task: perf_counter of ACCEPT and of each update's arrival,
    plus the (wall clock) timestamps the executor put in its updates."""

    accept_perf: float
    accept_wall: float
    received: dict[str, float] = field(default_factory=dict)  # state -> perf_counter
    stamped: dict[str, float] = field(default_factory=dict)  # state -> status.timestamp
    done: asyncio.Event = field(default_factory=asyncio.Event)
    final_state: str = ""
    message: str = ""


class Scheduler(RawScheduler):
    """Pools offers, launches `true`, records when each task's updates arrive."""

    def __init__(self, url: str, cpus: float, mem: float) -> None:
        super().__init__(url, "command-launch-bench", capabilities=("TASK_KILLING_STATE",))
        self.cpus = cpus
        self.mem = mem
        self.offers: list[dict] = []
        self.offer_arrived = asyncio.Event()
        self.tasks: dict[str, TaskTimes] = {}
        self.finished = asyncio.Event()  # set on every terminal update (throughput loop wakes)
        self.failures: list[str] = []
        self._ids = itertools.count()

    def on_event(self, event: dict) -> None:
        kind = event["type"]
        if kind == "OFFERS":
            self.offers.extend(event["offers"]["offers"])
            self.offer_arrived.set()
        elif kind == "RESCIND":
            rescinded = event["rescind"]["offer_id"]["value"]
            self.offers = [o for o in self.offers if o["id"]["value"] != rescinded]
        elif kind == "UPDATE":
            now = time.perf_counter()
            status = event["update"]["status"]
            times = self.tasks.get(status["task_id"]["value"])
            if times is None:
                return
            state = status["state"]
            times.received.setdefault(state, now)
            if "timestamp" in status:
                times.stamped.setdefault(state, float(status["timestamp"]))
            if state in TERMINAL:
                times.final_state = state
                times.message = status.get("message", "")
                if state != "TASK_FINISHED":
                    self.failures.append(f"{status['task_id']['value']}: {state} {times.message}")
                times.done.set()
                self.finished.set()

    def slots_in_pool(self) -> int:
        """How many tasks the pooled offers can hold."""
        cpus = mem = 0.0
        for offer in self.offers:
            for r in offer["resources"]:
                if r["name"] == "cpus":
                    cpus += r["scalar"]["value"]
                elif r["name"] == "mem":
                    mem += r["scalar"]["value"]
        return int(min(cpus // self.cpus, mem // self.mem))

    async def wait_for_offers(self, slots: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.slots_in_pool() < slots:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no offer with room for {slots} task(s) within {timeout:.0f}s")
            self.offer_arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.offer_arrived.wait(), remaining)

    async def launch(self, count: int) -> list[TaskTimes]:
        """ACCEPT every pooled offer (one agent) with `count` `true` tasks; the rest of the
        offers goes back to the allocator without a refusal filter."""
        offers, self.offers = self.offers, []
        agent_id = offers[0]["agent_id"]
        infos: list[dict] = []
        started: list[TaskTimes] = []
        for _ in range(count):
            task_id = f"t-{next(self._ids)}"
            infos.append({
                "name": task_id, "task_id": {"value": task_id}, "agent_id": agent_id,
                "command": {"value": "true"},
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": self.cpus}},
                              {"name": "mem", "type": "SCALAR", "scalar": {"value": self.mem}}],
            })
        for info in infos:  # the clocks start as the call goes out
            times = self.tasks[info["task_id"]["value"]] = TaskTimes(time.perf_counter(), time.time())
            started.append(times)
        await self.call({"type": "ACCEPT", "accept": {
            "offer_ids": [o["id"] for o in offers],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}],
            "filters": {"refuse_seconds": 0}}})
        return started


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


async def latency_phase(sched: Scheduler, n: int, task_timeout: float) -> dict:
    samples: list[float] = []
    parts: dict[str, list[float]] = {"to_starting": [], "to_running": [], "command": [], "forwarding": []}
    for _ in range(n):
        await sched.wait_for_offers(1, task_timeout)
        [times] = await sched.launch(1)
        await asyncio.wait_for(times.done.wait(), task_timeout)
        if times.final_state != "TASK_FINISHED":
            continue
        samples.append(times.received["TASK_FINISHED"] - times.accept_perf)
        st = times.stamped
        if {"TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"} <= st.keys():
            total = samples[-1]
            parts["to_starting"].append(st["TASK_STARTING"] - times.accept_wall)
            parts["to_running"].append(st["TASK_RUNNING"] - st["TASK_STARTING"])
            parts["command"].append(st["TASK_FINISHED"] - st["TASK_RUNNING"])
            parts["forwarding"].append(total - (st["TASK_FINISHED"] - times.accept_wall))
    if not samples:
        raise RuntimeError(f"no task finished: {sched.failures[:3]}")
    return {
        "tasks": len(samples),
        "p50_ms": ms(statistics.median(samples)), "p90_ms": ms(pct(samples, 90)),
        "p99_ms": ms(pct(samples, 99)), "max_ms": ms(max(samples)),
        "breakdown_p50_ms": {k: ms(statistics.median(v)) for k, v in parts.items() if v},
    }


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(cluster: LocalCluster) -> dict[str, float]:
    """CPU seconds so far of the master, the agent, the executors and their tasks (the agent's
    reaped descendants, and the command executors' fork server with its reaped children) and
    this process (the scheduler)."""
    def stat(pid: int) -> list[int]:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return [int(x) for x in fields[11:15]]  # utime stime cutime cstime
    def children(pid: int) -> list[int]:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    assert cluster.master is not None
    master = stat(cluster.master.proc.pid)
    agent_pid = cluster.agents[0].proc.pid
    agent = stat(agent_pid)
    executors = agent[2] + agent[3]  # reaped executors and their tasks
    for child in children(agent_pid):  # the executors' fork server and its reaped children
        with contextlib.suppress(OSError), open(f"/proc/{child}/cmdline", "rb") as f:
            if b"--fork-server" in f.read():
                executors += sum(stat(child))
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {"master": (master[0] + master[1]) / _TICK, "agent": (agent[0] + agent[1]) / _TICK,
            "executors": executors / _TICK, "scheduler": own.ru_utime + own.ru_stime}


async def throughput_phase(sched: Scheduler, inflight: int, seconds: float, limit: int,
                           task_timeout: float, cluster: LocalCluster) -> dict:
    cpu_before = cpu_seconds(cluster)
    launched: list[TaskTimes] = []
    running: set[int] = set()  # indexes into launched of tasks not yet terminal
    start = time.perf_counter()
    end = start + seconds
    completed = 0
    last_progress = start
    while completed < limit and time.perf_counter() < end:
        for i in [i for i in running if launched[i].done.is_set()]:
            running.discard(i)
            completed += 1
            last_progress = time.perf_counter()
        room = min(inflight - len(running), limit - len(launched))
        fit = sched.slots_in_pool()
        if room > 0 and fit > 0:
            for times in await sched.launch(min(room, fit)):
                running.add(len(launched))
                launched.append(times)
            continue
        if time.perf_counter() - last_progress > task_timeout:
            raise TimeoutError(f"no task finished for {task_timeout:.0f}s ({len(running)} in flight)")
        sched.finished.clear()
        sched.offer_arrived.clear()
        waits = [asyncio.ensure_future(sched.finished.wait()), asyncio.ensure_future(sched.offer_arrived.wait())]
        await asyncio.wait(waits, timeout=max(0.0, min(end - time.perf_counter(), 1.0)),
                           return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
    elapsed = time.perf_counter() - start
    finished = sum(1 for t in launched if t.final_state == "TASK_FINISHED"
                   and t.received["TASK_FINISHED"] <= start + elapsed)
    cpu_after = cpu_seconds(cluster)
    # Let the tasks still in flight end (and be acknowledged) before the cluster stops.
    deadline = time.monotonic() + task_timeout
    for i in running:
        await asyncio.wait_for(launched[i].done.wait(), max(0.1, deadline - time.monotonic()))
    lat = [t.received["TASK_FINISHED"] - t.accept_perf for t in launched if t.final_state == "TASK_FINISHED"]
    return {
        "inflight": inflight, "seconds": round(elapsed, 2), "launched": len(launched),
        "finished": finished, "tasks_per_second": round(finished / elapsed, 1),
        "task_p50_ms": ms(statistics.median(lat)) if lat else None,
        # CPU per finished task by process, over the window: what bounds tasks/s on 2 CPUs.
        "cpu_ms_per_task": {k: round((cpu_after[k] - cpu_before[k]) * 1000 / max(1, completed), 2)
                            for k in cpu_after},
    }


async def run_configuration(args: argparse.Namespace, isolation: str) -> dict:
    agent_args = [] if isolation == "default" else ["--isolation", isolation]
    spec = ClusterSpec(agents=1, agent_resources=AGENT_RESOURCES, agent_args=agent_args,
                       master_args=["--registry", "in_memory"], start_timeout=30.0, stop_grace=5.0)
    cluster = LocalCluster(spec)
    await asyncio.to_thread(cluster.start)
    try:
        sched = Scheduler(cluster.master_url, args.cpus, args.mem)
        try:
            await sched.subscribe()
            for _ in range(args.warmup):  # first launches pay for cold caches (bytecode, page cache)
                await sched.wait_for_offers(1, args.task_timeout)
                [times] = await sched.launch(1)
                await asyncio.wait_for(times.done.wait(), args.task_timeout)
                if times.final_state != "TASK_FINISHED":
                    raise RuntimeError(f"warm-up task failed: {sched.failures[-1]}")
            latency = await latency_phase(sched, args.launches, args.task_timeout)
            throughput = await throughput_phase(sched, args.inflight, args.seconds, args.tasks,
                                                args.task_timeout, cluster)
            failures = list(sched.failures)
        finally:
            await sched.close()
    finally:
        await asyncio.to_thread(cluster.stop)
    return {
        "bench": "command_launch", "isolation": isolation, "agent_resources": AGENT_RESOURCES,
        "task": {"command": "true", "cpus": args.cpus, "mem": args.mem},
        "latency": latency, "throughput": throughput,
        "failed_tasks": len(failures), "failures": failures[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--isolation", action="append",
                        help="agent --isolation value, or 'default' (repeatable; default: default)")
    parser.add_argument("--launches", type=int, default=100, help="sequential latency samples")
    parser.add_argument("--warmup", type=int, default=5, help="launches before measuring")
    parser.add_argument("--inflight", type=int, default=60, help="throughput: tasks in flight")
    parser.add_argument("--seconds", type=float, default=20.0, help="throughput: at most this long")
    parser.add_argument("--tasks", type=int, default=1000, help="throughput: at most this many tasks")
    parser.add_argument("--cpus", type=float, default=1.0)
    parser.add_argument("--mem", type=float, default=32.0)
    parser.add_argument("--task-timeout", type=float, default=30.0, help="give up on a task after this")
    args = parser.parse_args()
    for isolation in args.isolation or ["default"]:
        print(json.dumps(asyncio.run(run_configuration(args, isolation))), flush=True)


if __name__ == "__main__":
    main()
