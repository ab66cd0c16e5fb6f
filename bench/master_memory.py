"""Master memory per task and per agent, in process: reproducible on a loaded machine.

The master core (`mezzo.testing.master_cluster.MasterCluster`: the real `Master`, allocator and
registry on a FakeClock, no sockets) gets `--agents` agents of `cpus:8;mem:16384;disk:100000;
ports:[31000-32000]` (as bench/scale.py's emulated agents) and `--frameworks` frameworks, then
`--tasks` tasks of `cpus:1;mem:2048` running `sleep 30` (bench/scale.py's load), launched in
ACCEPT calls and reported by the agents, and acknowledged by the frameworks. Every call goes
through the JSON codec as it does over HTTP (`json` bytes → `decode_call` / `decode`), so each
task's strings and records are its own, as in a real master. `--statuses` sets the updates each
task reports before the measurement: `RUNNING` (bench/scale.py's emulated agents) or
`STARTING,RUNNING` (the command executor). `--completed N` first fills the cluster and kills
every task, as many times as it takes for each framework to keep N completed tasks (the real
documents list up to `--max_completed_tasks_per_framework`, 1,000, per framework), then
launches the `--tasks` running ones; `rss_kb_per_task` counts the completed tasks against the
running ones, as bench/scale.py does, `rss_kb_per_kept_task` against both.

Measured, after `gc.collect()`:
- `tracemalloc` bytes per agent (agents registered, no task) and per task (the rest), and the
  top allocation sites per task (`--top`);
- the RSS growth of the process per task (psutil), which includes allocator slack;
- the operator GET_STATE and `/master/state` documents and the event stream's SUBSCRIBED:
  total time to make all their pieces and the longest single piece (what one slice of the
  event loop must hold), at that size; then GET_STATE and `/master/state` once more
  (`*_again_*`: the steady cost, with what the views keep between documents already made);
- the CPU time of one `/metrics/snapshot` (`mezzo.master.metrics.snapshot`, which runs in one
  piece on the loop; median of `--snapshots`), and of its parts: the core's gauges
  (`views.metrics`, with the allocator's), the allocator's `statistics()` alone and the
  per-framework keys (`framework_metrics`); `--metrics-only` measures just these (no
  tracemalloc, no state documents), with `--offers` first making an allocation run so that
  the free resources sit in outstanding offers, as in a busy master;
- the time of a full garbage collection of the process (a pause of the master's loop when it
  happens) and the number of objects the collector tracks; then the same once the test
  clients (the scripted agents and schedulers, ~12 tracked objects per agent that a real
  master does not have; it has its connections instead) are dropped (`gc_master_*`), and
  `--gc-types N` lists the N most numerous tracked types at that point.

The process uses the master's garbage-collector settings (`mezzo.core.gc_tuning`).

    .venv/bin/python bench/master_memory.py --agents 1000 --tasks 20000
    .venv/bin/python bench/master_memory.py --agents 1000 --tasks 20000 --statuses STARTING,RUNNING
    .venv/bin/python bench/master_memory.py --agents 1600 --tasks 100000 --rss \
        --agent-resources "cpus:64;mem:131072;disk:100000;ports:[31000-32000]"   # 100,000 tasks
    .venv/bin/python bench/master_memory.py --agents 9000 --tasks 23000 --metrics-only --offers
    .venv/bin/python bench/master_memory.py --agents 9000 --tasks 72000 --completed 1000 --rss \
        --agent-resources "cpus:16;mem:32768;disk:100000;ports:[31000-32000]"   # bench/scale.py's shape

Recorded in docs/benchmarks.md, "Scale (issue 12)".
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import itertools
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from mezzo.api import operator as op  # noqa: E402
from mezzo.api.codec import decode, encode  # noqa: E402
from mezzo.api.internal import AgentCall  # noqa: E402
from mezzo.api.scheduler import decode_call  # noqa: E402
from mezzo.core.gc_tuning import tune_for_daemon  # noqa: E402
from mezzo.core.metrics import DaemonMetrics  # noqa: E402
from mezzo.master import metrics as master_metrics  # noqa: E402
from mezzo.master import views  # noqa: E402
from mezzo.testing.master_cluster import MasterCluster, framework_info  # noqa: E402

AGENT_RESOURCES = "cpus:8;mem:16384;disk:100000;ports:[31000-32000]"
TASK_CPUS, TASK_MEM = 1, 2048


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


def measured() -> tuple[int, int]:
    gc.collect()
    return tracemalloc.get_traced_memory()[0], rss()


def scalar(offer: Any, name: str) -> float:
    return sum(r.scalar.value for r in offer.resources if r.name == name and r.scalar is not None)


_TASK_SEQ = itertools.count(1)  # task ids stay unique over several launches


def launch(cluster: MasterCluster, tasks: int, statuses: list[str]) -> int:
    """Launch up to `tasks` tasks through ACCEPT calls (JSON in, as over HTTP); the agent
    reports `statuses` for each, the framework acknowledges them, one offer at a time (as the
    events would flow over real connections: nothing piles up in the clients). Returns the
    count."""
    master = cluster.master
    agents = {a.agent_id: a for a in cluster.agents}  # type: ignore[attr-defined]
    launched = 0
    while launched < tasks:
        before = launched
        cluster.allocate()
        for sched in cluster.schedulers:  # type: ignore[attr-defined]
            offers = [o for event in sched.all_of("OFFERS") for o in event.offers.offers]
            sched.stream.events.clear()
            sched._cursor = 0
            for offer in offers:
                count = int(min(scalar(offer, "cpus") // TASK_CPUS, scalar(offer, "mem") // TASK_MEM))
                count = min(count, tasks - launched)
                infos = []
                for _ in range(count):
                    seq = next(_TASK_SEQ)
                    task_id = f"{sched.info.name}-{seq}"
                    infos.append({
                        "name": task_id, "task_id": {"value": task_id},
                        "agent_id": {"value": offer.agent_id.value},
                        "resources": [
                            {"name": "cpus", "type": "SCALAR", "scalar": {"value": TASK_CPUS}},
                            {"name": "mem", "type": "SCALAR", "scalar": {"value": TASK_MEM}},
                        ],
                        "command": {"shell": True, "value": "sleep 30"},
                    })
                body = {"type": "ACCEPT", "framework_id": {"value": sched.framework_id},
                        "accept": {"offer_ids": [{"value": offer.id.value}],
                                   "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}],
                                   "filters": {"refuse_seconds": 3600}}}
                master.scheduler_call(decode_call(json.dumps(body).encode()), sched.stream_id)
                launched += count
                agent = agents[offer.agent_id.value]
                runs = agent.all_of("RUN_TASK")
                agent.stream.events.clear()
                agent._cursor = 0
                for run in runs:
                    for state in statuses:
                        agent.update(run.run_task.task.task_id.value, state,
                                     framework_id=run.run_task.framework_info.id.value)
                acknowledge_updates(master, sched)
                for client in (sched, agent):
                    client.stream.events.clear()
                    client._cursor = 0
        cluster.outbox.operations.clear()
        if launched == before:
            break  # the cluster is full
    return launched


def acknowledge_updates(master: Any, sched: Any) -> None:
    """The scheduler acknowledges every UPDATE its stream holds, through the JSON codec."""
    for event in sched.all_of("UPDATE"):
        s = event.update.status
        ack = {"type": "ACKNOWLEDGE", "framework_id": {"value": sched.framework_id},
               "acknowledge": {"agent_id": {"value": s.agent_id.value},
                               "task_id": {"value": s.task_id.value},
                               "uuid": encode(s.uuid).decode().strip('"')}}
        master.scheduler_call(decode_call(json.dumps(ack).encode()), sched.stream_id)


def end_all(cluster: MasterCluster) -> int:
    """Kill every running task (the agent reports TASK_KILLED, as bench/scale.py's emulated
    agents do; the updates are acknowledged); returns how many ended."""
    master = cluster.master
    agents = {a.agent_id: a for a in cluster.agents}  # type: ignore[attr-defined]
    ended = 0
    for sched in cluster.schedulers:  # type: ignore[attr-defined]
        fw = master.frameworks[sched.framework_id]
        for task in list(fw.tasks.values()):
            agents[task.agent_id].update(task.task_id, "TASK_KILLED", framework_id=fw.id)
            ended += 1
        acknowledge_updates(master, sched)
        clear_streams(cluster)
    return ended


def make_completed(cluster: MasterCluster, per_framework: int, statuses: list[str]) -> int:
    """Fill the cluster with tasks and kill them all, until every framework keeps
    `per_framework` completed tasks (Mesos keeps up to `--max_completed_tasks_per_framework`,
    1,000 by default, in its documents; the master is told to keep `per_framework` meanwhile).
    Returns the tasks ended."""
    master = cluster.master
    options = master.options
    master.options = dataclasses.replace(options, max_completed_tasks_per_framework=per_framework)
    ended = 0
    try:
        while any(len(fw.completed_tasks) < per_framework for fw in master.frameworks.values()):
            launched = launch(cluster, 10**9, statuses)
            ended += end_all(cluster)
            if not launched:
                break
    finally:
        master.options = options
    return ended


class CodecAgentCalls:
    """Make a ScriptedAgent's calls travel through the JSON codec, as they do over HTTP."""

    def __init__(self, cluster: MasterCluster) -> None:
        self.cluster = cluster

    def install(self, agent: Any) -> None:
        agent.call = _CodecCall(agent, self.cluster.master)


class _CodecCall:
    """One agent's calls through the codec. A small object rather than a closure: the
    collector tracks a closure as four objects (function, tuple, two cells) per agent, which
    counted in this bench's full-collection time although no master has them."""

    __slots__ = ("agent", "master")

    def __init__(self, agent: Any, master: Any) -> None:
        self.agent = agent
        self.master = master

    def __call__(self, call: AgentCall) -> None:
        from mezzo.api.common import AgentID

        call.agent_id = AgentID(value=self.agent.agent_id or "")
        self.master.agent_call(decode(encode(call), AgentCall))


def clear_streams(cluster: MasterCluster) -> None:
    """Forget what the test clients received (their event lists are not the master's memory)."""
    for client in [*cluster.schedulers, *cluster.agents]:  # type: ignore[attr-defined]
        client.stream.events.clear()
        client._cursor = 0
    cluster.outbox.operations.clear()


def piece_times(pieces: Any) -> tuple[float, float, int, float]:
    """(total seconds, longest piece seconds, bytes, CPU seconds) to make every piece."""
    longest = 0.0
    size = 0
    cpu = time.process_time()
    start = last = time.perf_counter()
    for piece in pieces:
        now = time.perf_counter()
        longest = max(longest, now - last)
        size += len(piece)
        last = time.perf_counter()
    return time.perf_counter() - start, longest, size, time.process_time() - cpu


def snapshot_cpu_ms(cluster: MasterCluster, repeat: int) -> dict[str, float]:
    """Median CPU milliseconds of one `/metrics/snapshot` and of its parts."""
    master = cluster.master
    http = DaemonMetrics()
    parts: dict[str, Any] = {
        "metrics_snapshot_cpu_ms": lambda: master_metrics.snapshot(master, None, http, leading=True),
        "metrics_gauges_cpu_ms": lambda: views.metrics(master, cluster.clock.now()),
        "metrics_allocator_cpu_ms": lambda: master.allocator.statistics(),
        "metrics_frameworks_cpu_ms": lambda: master_metrics.framework_metrics(master),
    }

    async def measure() -> dict[str, float]:  # the snapshot reads its loop's queues
        out = {}
        for key, part in parts.items():
            times = []
            for _ in range(repeat):
                started = time.process_time()
                part()
                times.append(time.process_time() - started)
            out[key] = round(sorted(times)[len(times) // 2] * 1000, 2)
        return out

    return asyncio.run(measure())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--agent-resources", default=AGENT_RESOURCES,
                        help="each agent's resources (bigger agents: more tasks per agent)")
    parser.add_argument("--frameworks", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--statuses", default="RUNNING")
    parser.add_argument("--completed", type=int, default=0,
                        help="completed tasks kept per framework (launched and killed before the "
                             "--tasks running ones; Mesos keeps up to 1,000): in the documents and "
                             "in the memory per task, as bench/scale.py counts it")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--rss", action="store_true",
                        help="measure RSS only, without tracemalloc (whose own records inflate RSS)")
    parser.add_argument("--metrics-only", action="store_true",
                        help="measure only /metrics/snapshot (no tracemalloc, no state documents)")
    parser.add_argument("--offers", action="store_true",
                        help="make an allocation run after the launches: free resources offered")
    parser.add_argument("--snapshots", type=int, default=5, help="snapshots measured (median)")
    parser.add_argument("--gc-types", type=int, default=0,
                        help="list the N most numerous types the collector tracks (master only)")
    args = parser.parse_args()
    if args.metrics_only:
        args.rss = True
    statuses = [f"TASK_{s.strip().upper()}" for s in args.statuses.split(",")]
    load = os.getloadavg()

    tune_for_daemon()  # the garbage-collector settings of `mezzo master`
    if not args.rss:
        tracemalloc.start()
    empty_traced, empty_rss = measured()
    cluster = MasterCluster()
    cluster.agents = []  # type: ignore[attr-defined]
    cluster.schedulers = []  # type: ignore[attr-defined]
    codec = CodecAgentCalls(cluster)
    for i in range(args.agents):
        agent = cluster.add_agent(args.agent_resources, hostname=f"agent{i}")
        codec.install(agent)
        cluster.agents.append(agent)  # type: ignore[attr-defined]
    for i in range(args.frameworks):
        cluster.schedulers.append(cluster.add_scheduler(framework_info(f"fw{i}")))  # type: ignore[attr-defined]
    clear_streams(cluster)
    base_traced, base_rss = measured()
    snapshot_before = tracemalloc.take_snapshot() if not args.rss else None
    started = time.process_time()
    ended = make_completed(cluster, args.completed, statuses) if args.completed else 0
    tasks = launch(cluster, args.tasks, statuses)
    launch_cpu = time.process_time() - started
    tasks += ended
    clear_streams(cluster)
    full_traced, full_rss = measured()
    snapshot_after = tracemalloc.take_snapshot() if not args.rss else None
    running = sum(len(fw.tasks) for fw in cluster.master.frameworks.values())
    completed = sum(len(fw.completed_tasks) for fw in cluster.master.frameworks.values())

    master = cluster.master
    if args.offers:
        cluster.allocate()
        clear_streams(cluster)
    snapshot = snapshot_cpu_ms(cluster, args.snapshots)
    if args.metrics_only:
        print(json.dumps({"agents": args.agents, "frameworks": args.frameworks, "tasks": running,
                          "outstanding_offers": len(master.offers), **snapshot,
                          "load": [round(x, 2) for x in load]}))
        return
    if hasattr(views, "operator_pieces"):
        get_state = piece_times(views.operator_pieces(master, op.CallType.GET_STATE))
    else:  # code from before GET_STATE was streamed (for a "before" figure): one piece
        def whole() -> Any:
            yield encode(op.Response(type=op.CallType.GET_STATE, get_state=views.get_state(master)))

        get_state = piece_times(whole())
    state = piece_times(views.state_pieces(master, {}))
    subscribed = (piece_times(views.subscribed_pieces(master, 15.0))
                  if hasattr(views, "subscribed_pieces") else None)
    # The same documents again: what a master serving them repeatedly pays (the views keep the
    # JSON of each agent's total and of each mix of task shapes from one document to the next).
    get_state_again = piece_times(views.operator_pieces(master, op.CallType.GET_STATE))
    state_again = piece_times(views.state_pieces(master, {}))
    started, cpu = time.perf_counter(), time.process_time()
    gc.collect()
    gc_ms = (time.perf_counter() - started) * 1000
    gc_cpu_ms = (time.process_time() - cpu) * 1000
    gc_objects = len(gc.get_objects())
    # Without the test clients: what the master itself makes the collector walk.
    cluster.agents = []  # type: ignore[attr-defined]
    cluster.schedulers = []  # type: ignore[attr-defined]
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    gc.collect()
    gc_master_ms = (time.perf_counter() - started) * 1000
    gc_master_cpu_ms = (time.process_time() - cpu) * 1000
    tracked = gc.get_objects()
    gc_master_objects = len(tracked)
    types: dict[str, int] = {}
    if args.gc_types:
        for obj in tracked:
            name = f"{type(obj).__module__}.{type(obj).__qualname__}"
            types[name] = types.get(name, 0) + 1
    del tracked

    row = {
        "agents": args.agents, "frameworks": args.frameworks, "tasks": running,
        "completed_tasks": completed, "statuses": args.statuses,
        "outstanding_offers": len(master.offers),
        "traced_kb_per_agent": None if args.rss else round((base_traced - empty_traced) / args.agents / 1024, 2),
        "traced_kb_per_task": None if args.rss else round((full_traced - base_traced) / max(1, running) / 1024, 3),
        "rss_kb_per_agent": round((base_rss - empty_rss) / args.agents / 1024, 2) if args.rss else None,
        # Per running task, the completed ones kept counted against them (as bench/scale.py
        # counts it), and per task kept (running or completed).
        "rss_kb_per_task": round((full_rss - base_rss) / max(1, running) / 1024, 3) if args.rss else None,
        "rss_kb_per_kept_task": (round((full_rss - base_rss) / max(1, running + completed) / 1024, 3)
                                 if args.rss else None),
        "launch_cpu_ms_per_task": round(launch_cpu / max(1, tasks) * 1000, 3),
        "get_state_ms": round(get_state[0] * 1000, 1),
        "get_state_cpu_ms": round(get_state[3] * 1000, 1),
        "get_state_longest_piece_ms": round(get_state[1] * 1000, 2),
        "get_state_mb": round(get_state[2] / 1e6, 2),
        "state_ms": round(state[0] * 1000, 1),
        "state_cpu_ms": round(state[3] * 1000, 1),
        "state_longest_piece_ms": round(state[1] * 1000, 2),
        "state_mb": round(state[2] / 1e6, 2),
        "get_state_again_cpu_ms": round(get_state_again[3] * 1000, 1),
        "get_state_again_longest_piece_ms": round(get_state_again[1] * 1000, 2),
        "state_again_cpu_ms": round(state_again[3] * 1000, 1),
        "state_again_longest_piece_ms": round(state_again[1] * 1000, 2),
        # The operator event stream's SUBSCRIBED (made in slices by the shell since issue 12;
        # before, in one piece: GET_STATE's total).
        "subscribed_cpu_ms": round(subscribed[3] * 1000, 1) if subscribed else None,
        "subscribed_longest_piece_ms": round(subscribed[1] * 1000, 2) if subscribed else None,
        **snapshot,
        "gc_full_ms": round(gc_ms, 1),
        "gc_full_cpu_ms": round(gc_cpu_ms, 1),
        "gc_tracked_objects": gc_objects,
        "gc_master_ms": round(gc_master_ms, 1),
        "gc_master_cpu_ms": round(gc_master_cpu_ms, 1),
        "gc_master_objects": gc_master_objects,
        "load": [round(x, 2) for x in load],
    }
    print(json.dumps(row))
    for name, count in sorted(types.items(), key=lambda item: -item[1])[: args.gc_types]:
        print(f"  {count:8d}  {name}")
    if snapshot_before is None or snapshot_after is None:
        return
    print(f"\ntop allocation sites, bytes per task (of {running} tasks; tracemalloc):")
    for stat in snapshot_after.compare_to(snapshot_before, "lineno")[: args.top]:
        frame = stat.traceback[0]
        where = f"{os.path.relpath(frame.filename, ROOT)}:{frame.lineno}"
        print(f"  {stat.size_diff / max(1, running):8.1f}  {where}")


if __name__ == "__main__":
    main()
