"""Offer-storm benchmark (issue 17): frameworks that decline everything, and one that accepts.

On loopback: a real `mezzo master` process (`--registry in_memory`, `--allocation_interval
1secs`; `bench/launch.py`'s helper), emulated agents in a second process (the real agent
protocol; each agent reserves part of itself for role `prod`), N declining frameworks in a third
process and one accepting framework in this one — all raw v1 schedulers
(`mezzo/testing/raw_scheduler.py`). A decliner answers every OFFERS at once with one DECLINE of all its
offers and `filters.refuse_seconds: 0`, the pattern that made the master spin before issue 17.

Two phases of `--seconds` each, one JSON line per phase:

1. `decliners`: the decliners alone. Allocation runs per second (total, batch, event-triggered;
   deltas of `/metrics/snapshot`), declines per second, and the master's CPU: user + system time
   of the master process (psutil) over the window, in % of one core.
2. `with_acceptor`: the same plus one framework in role `prod`. `first_offer_ms`: from sending
   its SUBSCRIBE to its first OFFERS. Then, on the agent of its first offer, it launches one
   small task per offer, one offer at a time (`refuse_seconds: 0` for the rest; offers of
   other agents are kept unused); `offer_latency_ms`: from sending each ACCEPT to the next
   OFFERS for that agent (the remainder coming back). The other figures as in phase 1 (they
   now include the acceptor's launches).

    .venv/bin/python bench/offer_storm.py                       # 100 decliners, 10 agents, 10 s
    .venv/bin/python bench/offer_storm.py --decliners 100 --agents 10 --seconds 10

Recorded in docs/benchmarks.md, "Offer storms (issue 17)".
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
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.launch import _agents_main, percentile  # noqa: E402
from mezzo.testing.raw_scheduler import RawScheduler  # noqa: E402
from mezzo.testing.shell_probe import start_master  # noqa: E402

AGENT_RESOURCES = "cpus:8;mem:16384;cpus(prod):64;mem(prod):65536"
RUN_KEYS = {
    "runs": "allocator/mesos/allocation_runs",
    "batch_runs": "allocator/mesos/allocation_runs_batch",
    "event_runs": "allocator/mesos/allocation_runs_event_triggered",
    "declines": "master/messages_decline_offers",
}


class Decliner(RawScheduler):
    def on_event(self, event: dict) -> None:
        if event["type"] == "OFFERS":
            self.call_soon({"type": "DECLINE", "decline": {
                "offer_ids": [o["id"] for o in event["offers"]["offers"]],
                "filters": {"refuse_seconds": 0}}})


def _decliners_main(url: str, count: int, ready) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        decliners = [Decliner(url, f"decliner-{i}") for i in range(count)]
        await asyncio.gather(*(d.subscribe(timeout=60) for d in decliners))
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(run())


class Acceptor(RawScheduler):
    """Launches on one agent, one offer at a time (offers of other agents are kept, unused),
    and times how soon that agent is offered again after each ACCEPT."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "acceptor", role="prod")
        self.offers: asyncio.Queue[dict] = asyncio.Queue()
        self.first_offer_at: float | None = None
        self.agent: str | None = None  # the agent it launches on
        self.kept: list[dict] = []
        self.accepted_at: float | None = None  # when the last ACCEPT went out
        self.latencies: list[float] = []

    def on_event(self, event: dict) -> None:
        if event["type"] != "OFFERS":
            return
        now = time.perf_counter()
        if self.first_offer_at is None:
            self.first_offer_at = now
        for offer in event["offers"]["offers"]:
            agent = offer["agent_id"]["value"]
            self.agent = self.agent or agent
            if agent != self.agent:
                self.kept.append(offer)
                continue
            if self.accepted_at is not None:
                self.latencies.append((now - self.accepted_at) * 1000)
                self.accepted_at = None
            self.offers.put_nowait(offer)

    async def launch_one(self, offer: dict, task_id: str) -> None:
        """One task of cpus 0.01, mem 1 taken from the offer's own entries (reserved or not)."""
        resources = []
        for name, amount in (("cpus", 0.01), ("mem", 1.0)):
            entry = next((r for r in offer["resources"] if r["name"] == name), None)
            if entry is None:
                raise SystemExit(f"the acceptor's offer has no {name} left: give agents more")
            resources.append({**entry, "scalar": {"value": amount}})
        task = {"name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
                "command": {"value": "true"}, "resources": resources}
        self.accepted_at = time.perf_counter()
        await self.call({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
            "filters": {"refuse_seconds": 0}}})


def metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics/snapshot", timeout=10) as resp:
        return json.loads(resp.read())


class Window:
    """Master metrics and CPU time between `start` and `stop`."""

    def __init__(self, url: str, master: psutil.Process) -> None:
        self.url = url
        self.master = master

    def start(self) -> None:
        self.metrics = metrics(self.url)
        self.cpu = self._cpu()
        self.began = time.perf_counter()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self.began
        cpu = self._cpu() - self.cpu
        after = metrics(self.url)
        out: dict[str, float] = {"seconds": round(elapsed, 2)}
        for label, key in RUN_KEYS.items():
            out[f"{label}_per_second"] = round((after.get(key, 0) - self.metrics.get(key, 0)) / elapsed, 2)
        out["master_cpu_percent"] = round(100 * cpu / elapsed, 1)
        return out

    def _cpu(self) -> float:
        times = self.master.cpu_times()
        return times.user + times.system


async def bench(args: argparse.Namespace) -> None:
    proc, url = start_master(["--allocation_interval", args.interval, *args.master_flag])
    master = psutil.Process(proc.pid)
    helpers = []
    try:
        for target, count in ((_agents_main, args.agents), (_decliners_main, args.decliners)):
            ready = multiprocessing.Event()
            extra = (AGENT_RESOURCES,) if target is _agents_main else ()
            p = multiprocessing.Process(target=target, args=(url, count, *extra, ready), daemon=True)
            p.start()
            helpers.append(p)
            if not await asyncio.to_thread(ready.wait, 120):
                raise SystemExit(f"{target.__name__} did not get ready")
        await asyncio.sleep(args.warmup)
        window = Window(url, master)
        common = {"decliners": args.decliners, "agents": args.agents, "interval": args.interval}

        window.start()
        await asyncio.sleep(args.seconds)
        print(json.dumps({"phase": "decliners", **common, **window.stop()}), flush=True)

        acceptor = Acceptor(url)
        window.start()
        subscribe_sent = time.perf_counter()
        await acceptor.subscribe()
        launched = 0
        end = time.perf_counter() + args.seconds
        while time.perf_counter() < end:
            try:
                offer = await asyncio.wait_for(acceptor.offers.get(), end - time.perf_counter())
            except TimeoutError:
                break
            await acceptor.launch_one(offer, f"accepted-{launched}")
            launched += 1
        figures = window.stop()
        samples = acceptor.latencies
        first = acceptor.first_offer_at
        print(json.dumps({
            "phase": "with_acceptor", **common, **figures, "launched": launched,
            "first_offer_ms": round((first - subscribe_sent) * 1000, 1) if first else None,
            "offer_latency_ms": {
                "samples": len(samples),
                "p50": round(statistics.median(samples), 2) if samples else None,
                "p99": round(percentile(samples, 99), 2) if samples else None,
                "max": round(max(samples), 2) if samples else None,
            },
        }), flush=True)
        await acceptor.close()
    finally:
        for p in helpers:
            p.terminate()
            p.join(5)
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decliners", type=int, default=100)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--interval", default="1secs", help="the master's --allocation_interval")
    parser.add_argument("--master-flag", action="append", default=[],
                        help="extra master flag (repeat), e.g. --master-flag=--allocation_coalesce_window=2ms")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
