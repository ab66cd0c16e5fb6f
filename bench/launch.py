"""Master launch-path benchmark: ACCEPT -> TASK_RUNNING latency and sustained launch rate.

On loopback: a real `mezzo master` process, emulated agents (the real agent protocol, a no-op
"executor" that reports TASK_RUNNING at once) in a second process, and a minimal v1 scheduler
client in this process (`mezzo/testing/raw_scheduler.py`: raw aiohttp, acknowledging every update as
pymesos does).

    .venv/bin/python bench/launch.py latency --launches 500
    .venv/bin/python bench/launch.py rate --agents 100 --tasks-per-accept 10 --seconds 10

Results go to stdout (and are recorded in docs/benchmarks.md, "Master launch path").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mezzo.core.gc_tuning import tune_for_daemon  # noqa: E402
from mezzo.testing.emulated_agent import EmulatedAgent  # noqa: E402
from mezzo.testing.raw_scheduler import RawScheduler  # noqa: E402
from mezzo.testing.shell_probe import start_master  # noqa: E402


def _agents_main(url: str, count: int, resources: str, ready) -> None:
    # These processes stand in for agent daemons, which tune their collector the same way
    # (the emulated agents hold every task they run in the agent core's state).
    tune_for_daemon()

    async def run() -> None:
        agents = [EmulatedAgent(url, hostname=f"bench{i}", resources=resources) for i in range(count)]
        await asyncio.gather(*(a.start() for a in agents))
        ready.set()
        await asyncio.Event().wait()

    profile = os.environ.get("MEZZO_BENCH_AGENT_PROFILE")  # a cProfile of each agents' process
    if not profile:
        asyncio.run(run())
        return
    import cProfile
    import signal

    prof = cProfile.Profile()
    signal.signal(signal.SIGTERM, lambda *_: (prof.disable(), prof.dump_stats(f"{profile}.{os.getpid()}"), os._exit(0)))
    prof.enable()
    asyncio.run(run())


class Scheduler(RawScheduler):
    def __init__(self, url: str) -> None:
        super().__init__(url, "bench")
        self.offers: asyncio.Queue[dict] = asyncio.Queue()
        self.running: dict[str, float] = {}
        self.running_event = asyncio.Event()

    def on_event(self, event: dict) -> None:
        kind = event["type"]
        if kind == "OFFERS":
            for offer in event["offers"]["offers"]:
                self.offers.put_nowait(offer)
        elif kind == "UPDATE":
            status = event["update"]["status"]
            if status["state"] == "TASK_RUNNING":
                self.running[status["task_id"]["value"]] = time.perf_counter()
                self.running_event.set()

    async def launch(self, offer: dict, task_ids: list[str]) -> None:
        tasks = [{
            "name": t, "task_id": {"value": t}, "agent_id": offer["agent_id"],
            "command": {"value": "true"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.01}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 1}}],
        } for t in task_ids]
        await self.call({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
            "filters": {"refuse_seconds": 0}}})


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def latency(args: argparse.Namespace) -> None:
    proc, url = start_master(["--allocation_interval", "1secs"])
    agent = EmulatedAgent(url, hostname="lat", resources="cpus:100000;mem:10000000")
    try:
        await agent.start()
        sched = Scheduler(url)
        await sched.subscribe()
        samples: list[float] = []
        for i in range(args.launches):
            offer = await sched.offers.get()
            task_id = f"lat-{i}"
            t0 = time.perf_counter()
            await sched.launch(offer, [task_id])
            while task_id not in sched.running:
                sched.running_event.clear()
                await sched.running_event.wait()
            samples.append((sched.running[task_id] - t0) * 1000)
        print(json.dumps({
            "mode": "latency", "launches": len(samples),
            "p50_ms": round(statistics.median(samples), 3), "p99_ms": round(percentile(samples, 99), 3),
            "max_ms": round(max(samples), 3),
        }))
        await sched.close()
    finally:
        await agent.stop()
        proc.terminate()
        proc.wait()


async def rate(args: argparse.Namespace) -> None:
    proc, url = start_master(["--allocation_interval", "1secs"])
    # Agents are spread over several processes so that the clients are not the bottleneck.
    procs = []
    per = -(-args.agents // args.agent_procs)
    for i in range(args.agent_procs):
        n = min(per, args.agents - i * per)
        if n <= 0:
            break
        ready = multiprocessing.Event()
        p = multiprocessing.Process(
            target=_agents_main, args=(url, n, "cpus:100000;mem:100000000", ready), daemon=True)
        p.start()
        procs.append((p, ready))
    try:
        for _, ready in procs:
            await asyncio.to_thread(ready.wait, 60)
        sched = Scheduler(url)
        await sched.subscribe()
        counter = 0
        launched = 0
        # CPU time (user + system) of the master and of the emulated agents' processes over
        # the window: per task, less sensitive to other load on the machine than the rate.
        cpu_of = {"master": [psutil.Process(proc.pid)],
                  "agents": [psutil.Process(p.pid) for p, _ in procs]}
        cpu_start = {k: _cpu(v) for k, v in cpu_of.items()}
        end = time.perf_counter() + args.seconds
        start = time.perf_counter()
        inflight: set[asyncio.Task] = set()
        while time.perf_counter() < end:
            try:
                offer = await asyncio.wait_for(sched.offers.get(), 1.0)
            except TimeoutError:
                continue
            ids = [f"r-{counter + k}" for k in range(args.tasks_per_accept)]
            counter += len(ids)
            launched += len(ids)
            task = asyncio.create_task(sched.launch(offer, ids))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        elapsed = time.perf_counter() - start
        cpu = {k: _cpu(v) - cpu_start[k] for k, v in cpu_of.items()}
        running_in_window = sum(1 for t in sched.running.values() if t <= start + elapsed)
        await asyncio.sleep(1.0)
        per_task = max(running_in_window, 1)
        print(json.dumps({
            "mode": "rate", "agents": args.agents, "tasks_per_accept": args.tasks_per_accept,
            "seconds": round(elapsed, 2), "launched": launched,
            "running_seen": running_in_window,
            "tasks_per_second": round(running_in_window / elapsed, 1),
            "master_cpu_ms_per_task": round(cpu["master"] / per_task * 1000, 3),
            "agents_cpu_ms_per_task": round(cpu["agents"] / per_task * 1000, 3),
        }))
        await sched.close()
    finally:
        for p, _ in procs:
            p.terminate()
        proc.terminate()
        proc.wait()


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--launches", type=int, default=500)
    rt = sub.add_parser("rate")
    rt.add_argument("--agents", type=int, default=100)
    rt.add_argument("--tasks-per-accept", type=int, default=10)
    rt.add_argument("--seconds", type=float, default=10.0)
    rt.add_argument("--agent-procs", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    asyncio.run(latency(args) if args.mode == "latency" else rate(args))


if __name__ == "__main__":
    main()
