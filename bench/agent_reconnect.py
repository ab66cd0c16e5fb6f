"""The emulated agents' CPU per re-registration, over real sockets: what a failover costs the
load generators of `bench/scale.py` per agent, and the master per agent on its sockets.

A real `mezzo master` process (in-memory registry) and, in this process, `--agents` emulated
agents (`mezzo.testing.ha_cluster.FollowingEmulatedAgent`, as `bench/failover.py`'s agent
processes run them) with `--transport aiohttp` (an aiohttp session, as `bench/scale.py` has
used) or `raw` (`mezzo.testing.raw_http`). One busy framework (`bench/scale.py`'s
`BusyFramework`, its tasks never killed) fills every agent with `cpus:1;mem:2048` tasks, eight
an agent with their eight command executors, as in the scale benchmark. Then every agent's
socket is broken from the agent's side at once, `--rounds` times, and the agents re-register
(each its SUBSCRIBE with its tasks and executors, on a new connection, to the master that
still knows them): this process's CPU time from the break until every agent heard SUBSCRIBED
again, per agent (`agent_cpu_us_per_reregistration`), and the master's
(`master_cpu_us_per_reregistration`: its socket handshake, decode and the core's re-registration
of a known agent, which is cheaper than a new leader's, `bench/reregister.py`). The wall time
is how long the burst took with both sides on this machine.

    .venv/bin/python bench/agent_reconnect.py --agents 1000 --transport aiohttp
    .venv/bin/python bench/agent_reconnect.py --agents 1000 --transport raw

Recorded in docs/benchmarks.md, "Scale (issue 12)".
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from bench.scale import BusyFramework  # noqa: E402
from mezzo.testing.ha_cluster import FollowingEmulatedAgent  # noqa: E402
from mezzo.testing.raw_http import RawSocket  # noqa: E402


async def metrics(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(url + "/metrics/snapshot") as resp:
        return dict(await resp.json())


def break_socket(agent: FollowingEmulatedAgent) -> None:
    socket = agent._socket
    if isinstance(socket, RawSocket):
        socket._connection.abort()
    elif socket is not None:  # aiohttp's: drop its connection under it
        transport = socket._response.connection.transport if socket._response.connection else None
        if transport is not None:
            transport.abort()


async def run(args: argparse.Namespace) -> dict[str, object]:
    work = tempfile.mkdtemp(prefix="mezzo-reconnect-")
    port_file = os.path.join(work, "port")
    launcher = (["-m", "mezzo.testing.profiled", args.master_profile] if args.master_profile
                else ["-c", "from mezzo.cli.main import main; main()"])
    master = subprocess.Popen(
        [sys.executable, *launcher, "master", "--ip", "127.0.0.1",
         "--port", "0", "--port_file", port_file, "--registry", "in_memory", "--work_dir", work,
         "--allocation_interval", "1secs", "--logging_level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and Path(port_file).read_text().strip()):
            if time.monotonic() > deadline or master.poll() is not None:
                raise SystemExit("the master did not start")
            await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{Path(port_file).read_text().strip()}"
        probe = aiohttp.ClientSession()
        session = (aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                   if args.transport == "aiohttp" else None)
        agents = [FollowingEmulatedAgent(lambda: url, hostname=f"r{i}", session=session,
                                         resources="cpus:8;mem:16384;disk:100000;ports:[31000-32000]")
                  for i in range(args.agents)]
        await asyncio.gather(*(a.start() for a in agents))
        counters = {"launched": 0, "lost": 0, "lost_before_start": 0, "disconnects": 0,
                    "running_updates": 0, "kills": 0, "calls": 0}
        # Checkpointing: a broken agent socket must not lose its tasks (Mesos's rule, which the
        # master applies on the disconnection, before the agent re-registers).
        framework = BusyFramework([url], "filler", counters, duration=(1e9, 0.0), checkpoint=True)
        filler = asyncio.create_task(framework.run())
        want = 8 * args.agents
        deadline = time.monotonic() + 120
        while counters["running_updates"] < want:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {counters['running_updates']} of {want} tasks running")
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # acknowledgements settle
        proc = psutil.Process(master.pid)
        rounds = []
        profile = cProfile.Profile() if args.profile else None
        for _ in range(args.rounds):
            calls0 = counters["calls"]
            master0 = sum(proc.cpu_times()[:2])
            wall0, cpu0 = time.monotonic(), time.process_time()
            if profile is not None:
                profile.enable()
            if args.master_profile:
                proc.send_signal(signal.SIGUSR1)
            for agent in agents:
                break_socket(agent)
            while not all(a.subscribed.is_set() and (a.subscribed_at or 0) > wall0 for a in agents):
                await asyncio.sleep(0.01)
            if profile is not None:
                profile.disable()
            if args.master_profile:
                proc.send_signal(signal.SIGUSR2)  # DIR/master.<pid>.prof, the rounds so far
            wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
            master_cpu = sum(proc.cpu_times()[:2]) - master0
            rounds.append({"wall_s": round(wall, 2),
                           "agent_cpu_us_per_reregistration": round(1e6 * cpu / args.agents),
                           "master_cpu_us_per_reregistration": round(1e6 * master_cpu / args.agents),
                           "framework_calls": counters["calls"] - calls0,
                           "lost": counters["lost"]})
            await asyncio.sleep(2.0)
        active = (await metrics(probe, url)).get("master/slaves_active", 0)
        filler.cancel()
        for agent in agents:
            await agent.stop()
        if session is not None:
            await session.close()
        await probe.close()
        if profile is not None:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
        return {"agents": args.agents, "transport": args.transport, "tasks_per_agent": 8,
                "active_after": active, "rounds": rounds,
                "load": [round(x, 2) for x in os.getloadavg()]}
    finally:
        master.send_signal(signal.SIGTERM)
        master.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--transport", choices=["aiohttp", "raw"], default="aiohttp")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile this process over the rounds")
    parser.add_argument("--master-profile", metavar="DIR", default=None,
                        help="cProfile the master over the rounds (mezzo.testing.profiled: "
                             "DIR/master.<pid>.prof)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
