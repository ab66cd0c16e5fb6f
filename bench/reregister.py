"""Agent re-registration after a failover, in process: the master core's CPU per agent.

A master core (`mezzo.testing.master_cluster.MasterCluster`, the real `Master` and allocator on
a FakeClock, no sockets) gets `--agents` agents of `cpus:8;mem:16384;disk:100000;
ports:[31000-32000]` (bench/scale.py's emulated agents), 200 frameworks and `--tasks` running
tasks of `cpus:1;mem:2048` (bench/master_memory.py's launch, through the JSON codec). Then a
second master recovers the same registry, as a newly elected leader does, and every agent
re-registers with it: its SUBSCRIBE (agent info, frameworks, tasks with their latest status,
as JSON bytes) decoded and handed to `agent_subscribe`, as the master's socket handler does.
Printed: the CPU time per re-registration (decode + core), with `--profile` a cProfile of it.
What it leaves out is the HTTP shell: the WebSocket handshake and the socket's reads.

    .venv/bin/python bench/reregister.py --agents 9000 --tasks 27000
    .venv/bin/python bench/reregister.py --agents 9000 --tasks 27000 --profile
    .venv/bin/python bench/reregister.py --agents 3000 --tasks 24000 --executors --mixed  # scale.py's shape

Recorded in docs/benchmarks.md, "Failover timed on the clients' clocks, and a warm standby".
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.master_memory import CodecAgentCalls, clear_streams, launch, piece_times  # noqa: E402
from mezzo.agent.launch import command_executor_info  # noqa: E402
from mezzo.api.codec import decode, encode  # noqa: E402
from mezzo.api.common import (  # noqa: E402
    AgentID,
    CommandInfo,
    FrameworkID,
    FrameworkInfo,
    TaskID,
    TaskInfo,
    TaskState,
)
from mezzo.api.internal import (  # noqa: E402
    AgentCall,
    AgentCallType,
    AgentExecutor,
    AgentSubscribe,
    AgentTask,
)
from mezzo.core.gc_tuning import tune_for_daemon  # noqa: E402
from mezzo.testing.master_cluster import FakeStream, MasterCluster, framework_info  # noqa: E402


def subscribe_bodies(cluster: MasterCluster, executors: bool = False, mixed: bool = False) -> list[bytes]:
    """Each agent's re-registering SUBSCRIBE, as JSON, from what the first master knows; with
    `executors`, each task's command executor too, as an agent running command tasks (and
    bench/scale.py's emulated agents) reports them; with `mixed`, the tasks dealt to the
    frameworks in turn, so that an agent's tasks belong to as many frameworks as it has tasks
    (under bench/scale.py's churn an agent held tasks of ~6.6 frameworks; filled in one go,
    of one)."""
    master = cluster.master
    infos = [fw.info for fw in master.frameworks.values()]
    dealt = 0
    on_agent: dict[str, list[tuple[FrameworkInfo, AgentTask]]] = {}
    for fw in master.frameworks.values():
        for task in fw.tasks.values():
            status = task.latest_status()
            on_agent.setdefault(task.agent_id, []).append((fw.info, AgentTask(
                task_id=TaskID(value=task.task_id), framework_id=FrameworkID(value=fw.id),
                name=task.name, state=TaskState.TASK_RUNNING, resources=task.resources.to_wire(),
                statuses=[status] if status else [],
            )))
    bodies = []
    for agent in cluster.agents:  # type: ignore[attr-defined]
        agent.info.id = AgentID(value=agent.agent_id)
        reported = on_agent.get(agent.agent_id, [])
        if mixed:
            for i, (_, task) in enumerate(reported):
                info = infos[dealt % len(infos)]
                dealt += 1
                assert info.id is not None
                task.framework_id = info.id
                reported[i] = (info, task)
        frameworks = {info.id.value: info for info, _ in reported if info.id is not None}
        sub = AgentSubscribe(agent_info=agent.info, frameworks=list(frameworks.values()),
                             tasks=[t for _, t in reported], version="1.11.0",
                             pid="slave(1)@127.0.0.1:5051")
        if executors:
            sub.executors = [AgentExecutor(framework_id=t.framework_id, executor_info=command_executor_info(
                TaskInfo(name=t.name, task_id=t.task_id, agent_id=AgentID(value=agent.agent_id),
                         command=CommandInfo(shell=True, value="sleep 30")), t.framework_id))
                for _, t in reported]
        bodies.append(encode(AgentCall(type=AgentCallType.SUBSCRIBE, subscribe=sub)))
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=9000)
    parser.add_argument("--tasks", type=int, default=27000)
    parser.add_argument("--profile", action="store_true", help="cProfile the re-registrations")
    parser.add_argument("--executors", action="store_true",
                        help="each task's command executor in the SUBSCRIBE too (bench/scale.py's shape)")
    parser.add_argument("--documents", action="store_true",
                        help="then make the new leader's GET_STATE and /master/state (its executors "
                             "known from the SUBSCRIBEs): CPU and longest piece of each")
    parser.add_argument("--mixed", action="store_true",
                        help="an agent's tasks of as many frameworks as it has tasks (bench/scale.py's shape)")
    args = parser.parse_args()
    tune_for_daemon()  # the garbage-collector settings of `mezzo master`
    first = MasterCluster()
    first.agents = []  # type: ignore[attr-defined]
    first.schedulers = []  # type: ignore[attr-defined]
    codec = CodecAgentCalls(first)
    for i in range(args.agents):
        agent = first.add_agent("cpus:8;mem:16384;disk:100000;ports:[31000-32000]", hostname=f"agent{i}")
        codec.install(agent)
        first.agents.append(agent)  # type: ignore[attr-defined]
    for i in range(200):
        first.schedulers.append(first.add_scheduler(framework_info(f"fw{i}")))  # type: ignore[attr-defined]
    clear_streams(first)
    tasks = launch(first, args.tasks, ["TASK_RUNNING"])
    bodies = subscribe_bodies(first, args.executors, args.mixed)
    second = MasterCluster(store=first.store)  # a new leader: recovers the same registry

    def reregister() -> None:
        for body in bodies:
            call = decode(body, AgentCall)
            assert call.subscribe is not None
            second.master.agent_subscribe(call.subscribe, FakeStream())

    profile = cProfile.Profile() if args.profile else None
    started = time.process_time()
    if profile is not None:
        profile.runcall(reregister)
    else:
        reregister()
    cpu = time.process_time() - started
    assert len(second.master.agents) == args.agents
    print(f"{args.agents} agents, {tasks} tasks (SUBSCRIBE {sum(map(len, bodies)) / len(bodies):.0f} "
          f"bytes on average): re-registered in {cpu:.2f} s of CPU, {cpu / args.agents * 1e6:.0f} µs "
          f"each{' (profiled)' if profile else ''}")
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
    if args.documents:
        from mezzo.api import operator as op
        from mezzo.master import views

        master = second.master
        for name, pieces in (("GET_STATE", lambda: views.operator_pieces(master, op.CallType.GET_STATE)),
                             ("/master/state", lambda: views.state_pieces(master, {}))):
            for attempt in ("first", "again"):
                _, longest, size, cpu_s = piece_times(pieces())
                print(f"{name} ({attempt}): {size / 1e6:.1f} MB in {cpu_s * 1000:.0f} ms of CPU, "
                      f"longest piece {longest * 1000:.1f} ms")


if __name__ == "__main__":
    main()
