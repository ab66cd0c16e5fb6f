"""The default executor's decisions, event in -> actions out, on a FakeClock (no processes).

`DefaultExecutorCore` is fed typed events with an explicit `now`; each test asserts the
actions. The loop (sockets, posix_spawn, pidfds) is exercised end to end with a real master and
agent in tests/test_task_groups_e2e.py.
"""

from __future__ import annotations

import signal
from typing import Any

from mezzo.core.clock import FakeClock
from mezzo.executor.command_events import (
    Acknowledged,
    Connected,
    Debug,
    Disconnected,
    Exit,
    Kill,
    LaunchGroup,
    Log,
    PostUpdate,
    Shutdown,
    Signal,
    Subscribe,
    Tick,
    UpdateAccepted,
)
from mezzo.executor.default_core import DefaultExecutorCore
from mezzo.executor.default_events import (
    GroupSubscribed,
    LaunchTask,
    SpawnTasks,
    TaskExited,
    TaskSpec,
    TasksSpawned,
    decode_event,
)
from mezzo.executor.link_core import Config
from mezzo.executor.testing import command_task

AGENT_ID = {"value": "agent-1"}
EXECUTOR_CONTAINER = {"value": "executor-container"}
SANDBOX = "/sandbox"
KILLING = {"capabilities": [{"type": "TASK_KILLING_STATE"}]}


def exited(code: int) -> int:
    return code << 8


def grace(seconds: float) -> dict[str, Any]:
    return {"grace_period": {"nanoseconds": int(seconds * 1e9)}}


class Harness:
    """One core on a FakeClock with counted uuids; every update is taken by the agent at once
    (answered UpdateAccepted) and collected in `updates`."""

    def __init__(self, **config: Any) -> None:
        self.clock = FakeClock(start=0.0)
        self.minted = 0
        self.core = DefaultExecutorCore(
            Config("fw-1", "ex-1", sandbox=SANDBOX, agent_host="10.0.0.1", **config),
            self.clock.monotonic(),
            new_uuid=self._uuid,
            wall_clock=lambda: 1_700_000_000.0,
        )
        self.updates: list[dict[str, Any]] = []
        self.next_pid = 100

    def _uuid(self) -> bytes:
        self.minted += 1
        return self.minted.to_bytes(16, "big")

    def handle(self, event: object) -> list[Any]:
        """The core's actions, updates answered and collected; logs and PostUpdates left out."""
        rest = []
        for action in self.core.handle(event, self.clock.monotonic()):
            if isinstance(action, PostUpdate):
                self.updates.append(action.call["update"]["status"])
                rest += self.handle(UpdateAccepted(action.uuid))
            elif not isinstance(action, Log | Debug):
                rest.append(action)
        return rest

    def subscribe(self, framework: dict[str, Any] | None = None) -> None:
        [subscribe] = self.handle(Tick())
        assert isinstance(subscribe, Subscribe)
        assert self.handle(Connected()) == []
        assert self.handle(GroupSubscribed(AGENT_ID, framework or {}, EXECUTOR_CONTAINER)) == []

    def launch(self, *tasks: dict[str, Any]) -> SpawnTasks:
        [spawn] = self.handle(LaunchGroup(list(tasks)))
        assert isinstance(spawn, SpawnTasks)
        return spawn

    def spawn_all(self, spawn: SpawnTasks) -> dict[str, int]:
        """Every task started; their pids."""
        pids = {}
        for spec in spawn.specs:
            pids[spec.task_id] = self.next_pid
            self.next_pid += 1
        assert self.handle(TasksSpawned([(t, p, None) for t, p in pids.items()])) == []
        return pids

    def states(self, task_id: str) -> list[str]:
        return [u["state"] for u in self.updates if u["task_id"]["value"] == task_id]

    def last(self, task_id: str) -> dict[str, Any]:
        return [u for u in self.updates if u["task_id"]["value"] == task_id][-1]

    def ack_all(self) -> list[Any]:
        actions = []
        for uuid, status in list(self.core.unacked.items()):
            actions += self.handle(Acknowledged(status["task_id"]["value"], uuid))
        return actions

    def advance_to_deadline(self) -> list[Any]:
        deadline = self.core.next_deadline()
        assert deadline is not None
        self.clock.set(deadline)
        return self.handle(Tick())


def running(h: Harness, *tasks: dict[str, Any]) -> dict[str, int]:
    return h.spawn_all(h.launch(*tasks))


# ----------------------------------------------------------------------------- launching


def test_a_group_starts_all_its_tasks_in_their_own_sandboxes() -> None:
    h = Harness()
    h.subscribe()
    a = command_task("a", "echo a")
    a["command"]["environment"] = {"variables": [{"name": "X", "value": "1"}]}
    a["resources"] = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                       "allocation_info": {"role": "web"}}]
    spawn = h.launch(a, command_task("b", "echo b"))
    assert h.states("a") == h.states("b") == ["TASK_STARTING"]
    assert spawn.specs == [
        TaskSpec("a", "/bin/sh", ["/bin/sh", "-c", "echo a"],
                 {"MESOS_SANDBOX": "/sandbox/tasks/a", "MESOS_CONTAINER_IP": "10.0.0.1",
                  "MESOS_ALLOCATION_ROLE": "web", "X": "1"}, "/sandbox/tasks/a"),
        TaskSpec("b", "/bin/sh", ["/bin/sh", "-c", "echo b"],
                 {"MESOS_SANDBOX": "/sandbox/tasks/b", "MESOS_CONTAINER_IP": "10.0.0.1"},
                 "/sandbox/tasks/b"),
    ]
    h.spawn_all(spawn)
    assert h.states("a") == h.states("b") == ["TASK_STARTING", "TASK_RUNNING"]
    # Every update names the task's nested container, a child of the executor's.
    containers = {u["task_id"]["value"]: u["container_status"]["container_id"] for u in h.updates}
    assert containers["a"]["parent"] == containers["b"]["parent"] == EXECUTOR_CONTAINER
    assert containers["a"]["value"] != containers["b"]["value"]
    assert all(u["executor_id"] == {"value": "ex-1"} and u["agent_id"] == AGENT_ID
               for u in h.updates)


def test_both_tasks_finish_then_the_executor_exits_once_acknowledged() -> None:
    h = Harness()
    h.subscribe()
    pids = running(h, command_task("a", "true"), command_task("b", "true"))
    assert h.handle(TaskExited("a", exited(0))) == [Signal(pids["a"], signal.SIGKILL)]
    assert h.states("a")[-1] == "TASK_FINISHED"
    assert h.last("a")["message"] == "Command exited with status 0"
    assert h.handle(TaskExited("b", exited(0))) == [Signal(pids["b"], signal.SIGKILL)]
    assert h.states("b") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert h.ack_all()[-1] == Exit(0)


def test_a_failed_task_kills_the_rest_of_its_group_with_their_kill_policy() -> None:
    h = Harness()
    h.subscribe(KILLING)
    b = command_task("b", "sleep 60", grace_seconds=7)
    pids = running(h, command_task("a", "exit 3"), b, command_task("c", "sleep 60"))
    actions = h.handle(TaskExited("a", exited(3)))
    assert actions == [
        Signal(pids["a"], signal.SIGKILL),  # stragglers of a's process group
        Signal(pids["b"], signal.SIGTERM),
        Signal(pids["c"], signal.SIGTERM),
    ]
    assert h.states("a")[-1] == "TASK_FAILED"
    assert h.last("a")["message"] == "Command exited with status 3"
    assert h.states("b")[-1] == h.states("c")[-1] == "TASK_KILLING"
    # c has the default 3 s grace, b its own 7 s.
    assert h.advance_to_deadline() == [Signal(pids["c"], signal.SIGKILL)]
    assert h.clock.monotonic() == 3.0
    assert h.advance_to_deadline() == [Signal(pids["b"], signal.SIGKILL)]
    assert h.clock.monotonic() == 7.0
    h.handle(TaskExited("c", signal.SIGKILL))
    h.handle(TaskExited("b", signal.SIGKILL))
    assert h.states("b")[-1] == h.states("c")[-1] == "TASK_KILLED"
    assert h.last("b")["message"] == "Command terminated with signal SIGKILL"
    assert h.ack_all()[-1] == Exit(0)


def test_a_spawn_failure_fails_the_task_and_kills_what_started() -> None:
    h = Harness()
    h.subscribe(KILLING)
    spawn = h.launch(command_task("a", "true"), command_task("b", "true"))
    assert [s.task_id for s in spawn.specs] == ["a", "b"]
    actions = h.handle(TasksSpawned([("a", 100, None), ("b", None, "No such file")]))
    assert actions == [Signal(100, signal.SIGKILL)]  # all or none: at once, no grace
    assert h.states("b") == ["TASK_STARTING", "TASK_FAILED"]
    assert h.last("b")["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert h.last("b")["message"] == "Failed to launch container: No such file"
    assert "TASK_RUNNING" not in h.states("a")
    h.handle(TaskExited("a", signal.SIGKILL))
    assert h.states("a") == ["TASK_STARTING", "TASK_KILLED"]
    assert h.ack_all()[-1] == Exit(0)


def test_a_task_without_a_command_means_nothing_of_its_group_starts() -> None:
    h = Harness()
    h.subscribe()
    bad = command_task("bad", "x")
    del bad["command"]
    assert h.handle(LaunchGroup([command_task("a", "true"), bad])) == []
    assert h.states("bad") == ["TASK_STARTING", "TASK_FAILED"]
    assert h.states("a") == ["TASK_STARTING", "TASK_KILLED"]
    assert "bad failed to start" in h.last("a")["message"]


def test_a_second_group_runs_beside_the_first_and_fails_alone() -> None:
    h = Harness()
    h.subscribe()
    first = running(h, command_task("a1", "sleep 60"), command_task("a2", "sleep 60"))
    second = running(h, command_task("b1", "exit 1"), command_task("b2", "sleep 60"))
    actions = h.handle(TaskExited("b1", exited(1)))
    assert Signal(second["b2"], signal.SIGTERM) in actions
    assert all(a.pid not in first.values() for a in actions if isinstance(a, Signal))
    h.handle(TaskExited("b2", signal.SIGTERM))
    assert h.states("b2")[-1] == "TASK_KILLED"
    assert h.states("a1")[-1] == h.states("a2")[-1] == "TASK_RUNNING"
    assert h.core.exit_code is None
    h.ack_all()
    assert h.core.exit_code is None  # the first group still runs


# ----------------------------------------------------------------------------- kill / shutdown


def test_kill_of_one_task_takes_its_group_down() -> None:
    h = Harness()
    h.subscribe(KILLING)
    pids = running(h, command_task("a", "sleep 60"), command_task("b", "sleep 60"))
    assert h.handle(Kill({"value": "a"}, grace(2))) == [Signal(pids["a"], signal.SIGTERM)]
    assert h.states("a")[-1] == "TASK_KILLING"
    # A second KILL may only shorten the grace period.
    assert h.handle(Kill({"value": "a"}, grace(10))) == []
    assert h.core.next_deadline() == 2.0
    assert h.advance_to_deadline() == [Signal(pids["a"], signal.SIGKILL)]
    actions = h.handle(TaskExited("a", signal.SIGKILL))
    assert Signal(pids["b"], signal.SIGTERM) in actions
    assert h.states("a")[-1] == "TASK_KILLED"
    h.handle(TaskExited("b", signal.SIGTERM))
    assert h.states("b")[-1] == "TASK_KILLED"
    assert h.ack_all()[-1] == Exit(0)


def test_kill_of_an_unknown_task_is_ignored() -> None:
    h = Harness()
    h.subscribe()
    running(h, command_task("a", "sleep 60"))
    assert h.handle(Kill({"value": "nope"}, None)) == []


def test_shutdown_kills_every_task_with_the_grace_capped() -> None:
    h = Harness(shutdown_grace=3.0)
    h.subscribe()
    pids = running(h, command_task("a", "sleep 60", grace_seconds=30),
                   command_task("b", "sleep 60"))
    actions = h.handle(Shutdown())
    assert actions == [Signal(pids["a"], signal.SIGTERM), Signal(pids["b"], signal.SIGTERM)]
    assert h.core.next_deadline() == 2.0  # 3 s less the margin for the agent
    assert h.advance_to_deadline() == [
        Signal(pids["a"], signal.SIGKILL), Signal(pids["b"], signal.SIGKILL)
    ]
    h.handle(TaskExited("a", signal.SIGKILL))
    h.handle(TaskExited("b", signal.SIGKILL))
    assert h.states("a")[-1] == h.states("b")[-1] == "TASK_KILLED"
    assert h.ack_all()[-1] == Exit(0)


def test_max_completion_time_fails_the_task() -> None:
    h = Harness()
    h.subscribe(KILLING)
    pids = running(h, command_task("a", "sleep 60", max_completion_seconds=5))
    assert h.advance_to_deadline() == [Signal(pids["a"], signal.SIGTERM)]
    assert h.clock.monotonic() == 5.0
    assert "TASK_KILLING" not in h.states("a")  # Mesos sends none for this kill
    assert h.handle(Tick()) == [Signal(pids["a"], signal.SIGKILL)]  # zero grace
    h.handle(TaskExited("a", signal.SIGKILL))
    assert h.last("a")["state"] == "TASK_FAILED"
    assert h.last("a")["reason"] == "REASON_MAX_COMPLETION_TIME_REACHED"


def test_launch_is_refused_by_shutting_down() -> None:
    h = Harness()
    h.subscribe()
    assert h.handle(LaunchTask(command_task("a", "true"))) == [Exit(0)]


# ----------------------------------------------------------------------------- the agent link


def test_losing_the_agent_without_checkpointing_kills_the_tasks_and_exits() -> None:
    h = Harness()
    h.subscribe()
    pids = running(h, command_task("a", "sleep 60"))
    assert h.handle(Disconnected("reset")) == [Signal(pids["a"], signal.SIGTERM)]
    assert h.handle(TaskExited("a", signal.SIGTERM)) == [
        Signal(pids["a"], signal.SIGKILL), Exit(0)
    ]


def test_losing_the_agent_with_checkpointing_resubscribes_listing_what_is_unacknowledged() -> None:
    h = Harness(checkpoint=True)
    h.subscribe()
    running(h, command_task("a", "sleep 60"), command_task("b", "sleep 60"))
    # b's updates are acknowledged; a's are not.
    for uuid, status in list(h.core.unacked.items()):
        if status["task_id"]["value"] == "b":
            h.handle(Acknowledged("b", uuid))
    [subscribe] = h.handle(Disconnected("reset"))  # at once, then with backoff
    assert isinstance(subscribe, Subscribe)
    sub = subscribe.call["subscribe"]
    assert [t["task_id"]["value"] for t in sub["unacknowledged_tasks"]] == ["a"]
    assert [u["status"]["state"] for u in sub["unacknowledged_updates"]] == [
        "TASK_STARTING", "TASK_RUNNING"
    ]


def test_decode_event() -> None:
    sub = {"type": "SUBSCRIBED", "subscribed": {
        "agent_info": {"id": AGENT_ID}, "framework_info": KILLING,
        "container_id": EXECUTOR_CONTAINER,
    }}
    assert decode_event(sub) == GroupSubscribed(AGENT_ID, KILLING, EXECUTOR_CONTAINER)
    assert decode_event({"type": "SUBSCRIBED"}) == GroupSubscribed(None, {}, None)
    task = command_task("a", "true")
    assert decode_event({"type": "LAUNCH", "launch": {"task": task}}) == LaunchTask(task)
    group = {"task_group": {"tasks": [task]}}
    assert decode_event({"type": "LAUNCH_GROUP", "launch_group": group}) == LaunchGroup([task])
    assert decode_event({"type": "SHUTDOWN"}) == Shutdown()
    assert decode_event({"type": "HEARTBEAT"}) is None


def test_a_group_reusing_a_running_task_id_cannot_take_that_task_down() -> None:
    h = Harness()
    h.subscribe()
    first = running(h, command_task("a", "sleep 60"))
    spawn = h.launch(command_task("a", "again"), command_task("b", "exit 1"))
    assert [s.task_id for s in spawn.specs] == ["b"]  # the duplicate is ignored
    pids = h.spawn_all(spawn)
    actions = h.handle(TaskExited("b", exited(1)))
    assert actions == [Signal(pids["b"], signal.SIGKILL)]
    assert first["a"] not in [a.pid for a in actions]
    assert h.states("a")[-1] == "TASK_RUNNING"
