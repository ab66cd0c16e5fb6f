"""In-process benchmark of the emulated agent's per-task path (no sockets, no master).

What one task costs an emulated agent of `bench/launch.py rate`: the master's RUN_TASK record
decoded and handled by the agent core with the fake executors (a command executor, its
container, SUBSCRIBED, LAUNCH, TASK_RUNNING), the STATUS_UPDATE calls of a batch merged and
encoded, then the master's ACKNOWLEDGE record decoded and handled. Records arrive in batches
of `--batch` tasks (one ACCEPT of `bench/launch.py` is 10 tasks for one agent), as they do off
one read of the agent's stream. CPU time (`time.process_time`) per task, best of `--rounds`,
with the collector tuned as the daemons tune it.

    .venv/bin/python bench/agent_core.py [--tasks 3000] [--batch 10] [--rounds 6] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import pstats
import sys
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mezzo.agent.core import AgentCore, AgentOptions  # noqa: E402
from mezzo.agent.events import AgentInput  # noqa: E402
from mezzo.api.codec import decode, encode  # noqa: E402
from mezzo.api.common import (  # noqa: E402
    AgentID,
    AgentInfo,
    CommandInfo,
    FrameworkID,
    FrameworkInfo,
    MasterInfo,
    TaskID,
    TaskInfo,
)
from mezzo.api.internal import (  # noqa: E402
    AgentAcknowledge,
    AgentCall,
    AgentEvent,
    AgentEventType,
    AgentRunTask,
    AgentSubscribed,
    merge_status_updates,
)
from mezzo.core.clock import RealClock  # noqa: E402
from mezzo.core.gc_tuning import tune_for_daemon  # noqa: E402
from mezzo.resources import Resources  # noqa: E402
from mezzo.testing.fake_executors import FakeExecutors  # noqa: E402


class Host:
    """The emulated agent without its transport: calls to the master are encoded and kept."""

    finish = False

    def __init__(self) -> None:
        self._uuids = ((i << 64 | 7).to_bytes(16, "big") for i in itertools.count(1))
        self.inputs: deque[AgentInput] = deque()
        self.outgoing: list[AgentCall] = []
        self.sent: list[bytes] = []
        self.executors = FakeExecutors(self)
        self.core = AgentCore(
            AgentInfo(hostname="bench", port=5051,
                      resources=Resources.parse("cpus:100000;mem:100000000").to_wire()),
            self.executors, clock=RealClock(), uuid_bytes=self.new_uuid,
            options=AgentOptions(work_dir="/emulated", status_update_retry_interval=10.0,
                                 status_update_retry_max=10.0),
        )

    def new_uuid(self) -> bytes:
        return next(self._uuids)

    def later(self, event: AgentInput) -> None:
        self.inputs.append(event)

    def post(self, call: AgentCall) -> None:
        self.outgoing.append(call)

    def shutdown_requested(self) -> None:
        pass

    def handle(self, event: AgentInput) -> None:
        self.core.handle(event)
        while self.inputs:
            self.core.handle(self.inputs.popleft())

    def flush(self) -> None:
        calls, self.outgoing = self.outgoing, []
        for call in merge_status_updates(calls):
            self.sent.append(encode(call))


def run_task_record(framework: FrameworkInfo, agent_id: AgentID, task_id: str) -> bytes:
    """A RUN_TASK as the master sends it for `bench/launch.py`'s tasks."""
    task = TaskInfo(
        name=task_id, task_id=TaskID(value=task_id), agent_id=agent_id,
        command=CommandInfo(value="true"),
        resources=Resources.parse("cpus:0.01;mem:1").allocate("*").to_wire(),
    )
    return encode(AgentEvent(type=AgentEventType.RUN_TASK,
                             run_task=AgentRunTask(framework_info=framework, task=task)))


def one_round(tasks: int, batch: int) -> float:
    host = Host()
    agent_id = AgentID(value="bench-agent-S0")
    host.handle(AgentEvent(type=AgentEventType.SUBSCRIBED, subscribed=AgentSubscribed(
        agent_id=agent_id, master_info=MasterInfo(id="m", ip=0, port=5050))))
    framework = FrameworkInfo(user="bench", name="bench", id=FrameworkID(value="fw-1"),
                              roles=["*"], failover_timeout=0.0)
    records = [run_task_record(framework, agent_id, f"r-{i}") for i in range(tasks)]
    host.flush()
    host.sent.clear()
    excluded = 0.0
    start = time.process_time()
    for first in range(0, tasks, batch):
        for record in records[first:first + batch]:
            host.handle(decode(record, AgentEvent))
        host.flush()
        master_start = time.process_time()  # what the master does is not counted
        # The master relays the scheduler's acknowledgement of each TASK_RUNNING.
        acks = []
        for body in host.sent:
            call = decode(body, AgentCall)
            updates = [call.status_update] if call.status_update else call.status_updates
            for u in updates:
                assert u.status.uuid is not None
                acks.append(encode(AgentEvent(type=AgentEventType.ACKNOWLEDGE, acknowledge=AgentAcknowledge(
                    framework_id=u.framework_id, task_id=u.status.task_id, uuid=u.status.uuid))))
        host.sent.clear()
        excluded += time.process_time() - master_start
        for ack in acks:
            host.handle(decode(ack, AgentEvent))
        host.flush()
    elapsed = time.process_time() - start - excluded
    assert len(host.core.task_index) == tasks, len(host.core.task_index)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one round")
    args = parser.parse_args()
    tune_for_daemon()
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        one_round(args.tasks, args.batch)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(35)
        return
    best = min(one_round(args.tasks, args.batch) for _ in range(args.rounds))
    print(json.dumps({"tasks": args.tasks, "batch": args.batch,
                      "agent_cpu_us_per_task": round(best / args.tasks * 1e6, 1)}))


if __name__ == "__main__":
    main()
