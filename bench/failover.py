"""Master failover benchmark: kill -9 the leading master, time how long until everything is back.

On loopback: a real ZooKeeper server, three `mezzo master --zk` processes, N emulated agents
(`mezzo.testing.ha_cluster.FollowingEmulatedAgent`: the real master <-> agent protocol, no
executors; they follow the leader through one shared ZooKeeper detector per agent process) and
a mezzo SDK scheduler in this process with a `zk://` master URL, which runs one task on every
agent before the failover. Then the leader is SIGKILLed and, from that instant, we measure:

  (a) elected    a standby reports master/elected = 1 (its ZooKeeper session noticed the old
                 leader's session expire, so this includes --zk_session_timeout);
  (b) agents     the new leader has all N agents re-registered (master/slaves_active = N);
  (c) framework  the scheduler got SUBSCRIBED from the new leader, and its first OFFERS.

Afterwards the new leader must list the N tasks running (none lost or killed).

    .venv/bin/python bench/failover.py --agents 100 1000
    .venv/bin/python bench/failover.py --agents 1000 --session-timeout 10secs   # Mesos default

Results go to stdout (recorded in docs/benchmarks.md, "Failover").
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import getpass
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mezzo.api.common import FrameworkID, FrameworkInfo, Offer, TaskStatus  # noqa: E402
from mezzo.core.gc_tuning import tune_for_daemon  # noqa: E402
from mezzo.scheduler import (  # noqa: E402
    Scheduler,
    SchedulerClient,
    SchedulerOptions,
    shell_task,
)
from mezzo.testing.ha_cluster import HaCluster, HaMaster, http_get, until  # noqa: E402
from mezzo.testing.zookeeper import start_server  # noqa: E402


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _agents_main(zk: str, first: int, count: int, ready: Any, stop: Any, report: Any = None) -> None:
    """One agent process: `count` emulated agents sharing one detector and one HTTP pool.
    With `report` (a dict proxy), the process's own event-loop lag goes there: `lag_max_ms`,
    the longest lag of a 100 ms sleep over the last 30 s, so that a run can tell a master that
    misses pings from an agent process too busy to answer them; `subscribed` (how many of its
    agents are subscribed now), `subscribed_at` (the first and last of their latest
    SUBSCRIBEDs, time.monotonic()) and `leader_changed_at` (when its ZooKeeper detector last
    saw the leader change) time a failover on the agents' side."""
    _raise_fd_limit()
    tune_for_daemon()  # the daemons' collector thresholds: a load generator holds as much state

    async def watch_lag() -> None:
        # Lag of a 100 ms sleep; every second the longest of the last 30 s goes to `report`.
        lags: collections.deque[tuple[float, float]] = collections.deque()
        last = None
        while True:
            for _ in range(10):
                start = time.monotonic()
                await asyncio.sleep(0.1)
                now = time.monotonic()
                lags.append((now, now - start - 0.1))
            while lags and lags[0][0] < now - 30.0:
                lags.popleft()
            lag_max_ms = round(max(lag for _, lag in lags) * 1000, 1)
            if lag_max_ms != last:  # a proxy call is a blocking round trip
                report["lag_max_ms"] = last = lag_max_ms

    async def run() -> None:
        from mezzo.testing.ha_cluster import FollowingEmulatedAgent, LeaderSource

        source = LeaderSource(zk)
        source.start()

        # The raw client's sockets (`mezzo.testing.raw_http`), not aiohttp's: per launch the
        # two cost these processes about the same (606-758 µs against 674 at 3,000 agents),
        # but a re-registration (a new connection, the handshake, the SUBSCRIBE) costs
        # 390-620 µs against 730-970 (`bench/agent_reconnect.py`), and after a failover every
        # agent of the process re-registers at once (docs/benchmarks.md).
        agents = [
            FollowingEmulatedAgent(
                source.url, source=source, hostname=f"bench{first + i}",
                resources="cpus:8;mem:16384;disk:100000;ports:[31000-32000]",
            )
            for i in range(count)
        ]
        await asyncio.gather(*(a.start() for a in agents))
        # The agents' state (cores, executors, sockets) out of every later collection: with
        # the default thresholds the collector walked it over and over, a fifth of these
        # processes' samples under bench/scale.py's load (py-spy, docs/benchmarks.md). A
        # load generator may keep the little cyclic garbage that freezing leaks.
        gc.freeze()
        lag = asyncio.create_task(watch_lag()) if report is not None else None
        ready.set()
        reported: dict[str, Any] = {}
        while not stop.is_set():
            await asyncio.sleep(0.2)
            if report is not None:
                # When the process's agents were last (re)subscribed, and when its detector
                # last saw the leader change: the clients' own clocks, so a failover's
                # figures do not depend on how often the benchmark polls the master.
                times = [a.subscribed_at for a in agents
                         if a.subscribed.is_set() and a.subscribed_at is not None]
                now = {"subscribed": len(times),
                       "subscribed_at": (min(times), max(times)) if times else None,
                       "leader_changed_at": source.changed_at}
                # Only what changed, in one call: each call is a blocking round trip to the
                # manager process, which on a busy machine held this loop for milliseconds
                # five times a second.
                changed = {k: v for k, v in now.items() if reported.get(k, ()) != v}
                if changed:
                    report.update(changed)
                    reported.update(changed)
        for agent in agents:
            agent._stopping = True
        if lag is not None:
            lag.cancel()
        source.close()

    asyncio.run(run())


class OneTaskPerAgent(Scheduler):
    """Runs one small task on each agent, then declines; timestamps subscriptions and offers."""

    def __init__(self, agents: int) -> None:
        self.agents = agents
        self.placed: set[str] = set()
        self.running: set[str] = set()
        self.subscribed_at: list[float] = []
        self.offers_at: list[float] = []

    def registered(self, driver: Any, framework_id: FrameworkID, master_info: Any) -> None:
        self.subscribed_at.append(time.monotonic())

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self.subscribed_at.append(time.monotonic())

    async def resource_offers(self, driver: SchedulerClient, offers: list[Offer]) -> None:
        self.offers_at.append(time.monotonic())
        launch, decline = [], []
        for offer in offers:
            if offer.agent_id.value in self.placed:
                decline.append(offer)
                continue
            self.placed.add(offer.agent_id.value)
            launch.append((offer, shell_task(offer, "cpus:0.1;mem:32", "sleep 3600", name="b")))
        for offer, task in launch:
            await driver.launch(offer, [task])
        if decline:
            await driver.decline([o.id for o in decline], refuse_seconds=5)

    def status_update(self, driver: Any, status: TaskStatus) -> None:
        if status.state.value == "TASK_RUNNING":
            self.running.add(status.task_id.value)


def _metric(master: HaMaster, name: str) -> float | None:
    status, _, body = http_get(master.url + "/metrics/snapshot", timeout=1.0)
    return json.loads(body).get(name) if status == 200 else None


def _watch(standbys: list[HaMaster], agents: int, marks: dict[str, float], done: threading.Event) -> None:
    """Poll the standbys from a thread (the scheduler's loop must not be blocked)."""
    leader: HaMaster | None = None
    while not done.is_set():
        if leader is None:
            for m in standbys:
                if _metric(m, "master/elected") == 1.0:
                    leader = m
                    marks["elected"] = time.monotonic()
                    marks["leader"] = float(standbys.index(m))
                    break
        elif "agents" not in marks and _metric(leader, "master/slaves_active") == agents:
            marks["agents"] = time.monotonic()
            return
        time.sleep(0.01)


async def one_run(
    agents: int, procs: int, session_timeout: str, interval: str, args_log_level: str = "WARNING"
) -> dict[str, Any]:
    zk = start_server()
    print(f"masters log under {Path(tempfile.gettempdir())}/mezzo-failover-*", file=sys.stderr)
    cluster = HaCluster(f"zk://{zk.hosts}/mezzo", 3, session_timeout=session_timeout,
                        work_dir=Path(tempfile.mkdtemp(prefix="mezzo-failover-")),
                        extra=["--allocation_interval", interval, "--logging_level", args_log_level])
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    children: list[Any] = []
    client: SchedulerClient | None = None
    try:
        cluster.start()
        leader = await asyncio.to_thread(cluster.wait_leader)
        per = -(-agents // procs)
        for p in range(procs):
            count = min(per, agents - p * per)
            ready = ctx.Event()
            child = ctx.Process(target=_agents_main, args=(cluster.zk, p * per, count, ready, stop))
            child.start()
            children.append((child, ready))
        for _, ready in children:
            await asyncio.to_thread(ready.wait, 300)
        sched = OneTaskPerAgent(agents)
        info = FrameworkInfo(user=getpass.getuser(), name="failover-bench", failover_timeout=600,
                             checkpoint=True)
        client = SchedulerClient(cluster.zk, info, sched,
                                 SchedulerOptions(backoff_initial=0.1, backoff_max=0.5))
        await client.start()
        await client.wait_subscribed(60)
        deadline = time.monotonic() + 120
        while len(sched.running) < agents:
            assert time.monotonic() < deadline, f"only {len(sched.running)} tasks running"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # let acknowledgements settle

        standbys = cluster.standbys(leader)
        marks: dict[str, float] = {}
        done = threading.Event()
        watcher = threading.Thread(target=_watch, args=(standbys, agents, marks, done), daemon=True)
        subs_before, offers_before = len(sched.subscribed_at), len(sched.offers_at)
        watcher.start()
        killed = time.monotonic()
        leader.kill()
        deadline = killed + 120
        while not ("agents" in marks and len(sched.offers_at) > offers_before
                   and len(sched.subscribed_at) > subs_before):
            assert time.monotonic() < deadline, f"failover incomplete after 120 s: {marks}"
            await asyncio.sleep(0.01)
        done.set()
        new = standbys[int(marks["leader"])]
        tasks = await asyncio.to_thread(
            until, lambda: _metric(new, "master/tasks_running") == agents, 30, "tasks running")
        result = {
            "agents": agents,
            "elected_s": marks["elected"] - killed,
            "agents_s": marks["agents"] - killed,
            "subscribed_s": sched.subscribed_at[subs_before] - killed,
            "offers_s": sched.offers_at[offers_before] - killed,
            "tasks_running_after": agents if tasks else None,
        }
        result["all_back_s"] = max(result["agents_s"], result["offers_s"])
        return result
    finally:
        if client is not None:
            await client.stop()
        stop.set()
        for child, _ in children:
            child.join(10)
            if child.is_alive():
                child.kill()
        cluster.close()
        zk.stop()


async def main_async(args: argparse.Namespace) -> None:
    print(f"session timeout {args.session_timeout}, allocation interval {args.interval}, "
          f"{args.repeat} run(s) per size")
    for agents in args.agents:
        runs = [await one_run(agents, args.agent_procs, args.session_timeout, args.interval,
                              args.log_level)
                for _ in range(args.repeat)]
        for r in runs:
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}))
        if len(runs) > 1:
            keys = ("elected_s", "agents_s", "subscribed_s", "offers_s", "all_back_s")
            print("median", agents, {k: round(statistics.median(r[k] for r in runs), 3) for k in keys})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--agent-procs", type=int, default=2, help="processes hosting the agents")
    parser.add_argument("--session-timeout", default="2secs", help="--zk_session_timeout of the masters")
    parser.add_argument("--interval", default="1secs", help="--allocation_interval of the masters")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--log-level", default="WARNING", help="--logging_level of the masters")
    _raise_fd_limit()
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
