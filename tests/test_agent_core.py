"""The agent's decision core on a FakeClock, in process: typed events in, the exact effects
out (`RecordingOutbox`). Launches, registration timeout, kill and shutdown grace, status update
retries and acknowledgements, executor loss, executor call refusals, and recovery from a real
checkpoint tree written by the effects themselves."""

from __future__ import annotations

import base64
import itertools
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mezzo.agent import checkpoint
from mezzo.agent.containerizer.records import Limitation, Termination
from mezzo.agent.core import AgentCore, AgentOptions, CallRefused
from mezzo.agent.events import (
    ContainerExited,
    ContainerLaunched,
    ContainerLaunchFailed,
    ContainerLimited,
    ExecutorDisconnected,
    ExecutorSubscribed,
    ExecutorUpdate,
    MasterDisconnected,
    RecoverCheckpoint,
    TasksFetched,
)
from mezzo.agent.outbox import (
    AgentRecord,
    ContainerLaunch,
    ContainerPidRecord,
    ExecutorRecord,
    RecordingOutbox,
    RemoveContainerRecord,
    RemoveExecutorRecord,
    RemoveFrameworkRecord,
)
from mezzo.agent.state import ExecutorPhase
from mezzo.api import executor as exe
from mezzo.api.codec import convert, to_builtins
from mezzo.api.common import (
    URI,
    AgentID,
    AgentInfo,
    CommandInfo,
    ContainerInfo,
    ContainerStatus,
    DurationInfo,
    ExecutorID,
    ExecutorInfo,
    ExecutorType,
    FrameworkID,
    MasterInfo,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mezzo.api.internal import (
    AgentCallType,
    AgentEvent,
    AgentEventType,
    AgentRunTask,
    AgentRunTaskGroup,
)
from mezzo.core.clock import FakeClock
from mezzo.resources import Resources

FW = FrameworkID(value="fw-1")
EX = ExecutorID(value="ex-1")


class Agent:
    """One core on a FakeClock with a recording outbox, and shorthands for its inputs."""

    def __init__(self, *, work_dir: str = "/work", recovering: bool = False,
                 registered: bool = True, **options: Any) -> None:
        self.clock = FakeClock()
        self.outbox = RecordingOutbox()
        uuids = (i.to_bytes(16, "big") for i in itertools.count(1))
        self.core = AgentCore(
            AgentInfo(hostname="h1", resources=Resources.parse("cpus:4;mem:1024").to_wire(),
                      id=AgentID(value="A1")),
            self.outbox, clock=self.clock, uuid_bytes=lambda: next(uuids),
            options=AgentOptions(work_dir=work_dir, **options), recovering=recovering,
        )
        if registered:
            self.master("SUBSCRIBED", subscribed={"agent_id": {"value": "A1"},
                                                  "master_info": master_json()})
            self.outbox.take()

    def master(self, type_: str, **payload: Any) -> None:
        self.core.handle(convert({"type": type_, **payload}, AgentEvent))

    def run(self, task: TaskInfo, executor: ExecutorInfo | None = None,
            checkpoint: bool = False) -> None:
        body: dict[str, Any] = {
            "framework_info": {"user": "u", "name": "f", "id": {"value": FW.value},
                               "checkpoint": checkpoint},
            "task": task,
        }
        if executor is not None:
            body["executor_info"] = executor
        self.core.handle(AgentEvent(type=AgentEventType.RUN_TASK,
                                    run_task=convert(to_builtins(body), AgentRunTask)))

    def container_id(self, executor_id: str = "ex-1") -> str:
        return self.core.frameworks[FW.value].executors[executor_id].container_id

    def executor(self, executor_id: str = "ex-1") -> Any:
        return self.core.frameworks[FW.value].executors[executor_id]

    def subscribe(self, stream: object, executor_id: str = "ex-1", **sub: Any) -> None:
        self.core.handle(ExecutorSubscribed(FW, ExecutorID(value=executor_id),
                                            exe.Subscribe(**sub), stream))

    def update(self, task_id: str, state: str, uuid: bytes, executor_id: str = "ex-1",
               limitation: Limitation | None = None) -> None:
        status = TaskStatus(task_id=TaskID(value=task_id), state=TaskState(state), uuid=uuid)
        self.core.handle(ExecutorUpdate(FW, ExecutorID(value=executor_id), status, limitation))

    def advance(self, seconds: float) -> None:
        """Move the clock, running every timer due on the way."""
        target = self.clock.monotonic() + seconds
        for _ in range(10_000):
            deadline = self.core.next_deadline()
            if deadline is None or deadline > target:
                break
            self.clock.advance(max(0.0, deadline - self.clock.monotonic()))
            self.core.tick()
        else:
            raise AssertionError("a timer stays due after tick()")
        self.clock.advance(target - self.clock.monotonic())
        self.core.tick()


def master_json() -> dict[str, Any]:
    return to_builtins(MasterInfo(id="M", hostname="m", port=5050, version="1.11.0"))


def command_task(task_id: str = "ex-1", resources: str = "cpus:1;mem:128") -> TaskInfo:
    # A command task's executor id is its task id.
    return TaskInfo(name=task_id, task_id=TaskID(value=task_id), agent_id=AgentID(value="A1"),
                    resources=Resources.parse(resources).to_wire(),
                    command=CommandInfo(value="sleep 100"))


def custom(task_id: str = "t1", grace: float | None = None) -> tuple[TaskInfo, ExecutorInfo]:
    task = TaskInfo(name=task_id, task_id=TaskID(value=task_id), agent_id=AgentID(value="A1"),
                    resources=Resources.parse("cpus:1;mem:128").to_wire())
    executor = ExecutorInfo(
        executor_id=EX, command=CommandInfo(value="my-executor"),
        resources=Resources.parse("cpus:0.5;mem:32").to_wire(),
        shutdown_grace_period=DurationInfo(nanoseconds=int(grace * 1e9)) if grace else None,
    )
    return task, executor


def names(effects: list[tuple[Any, ...]]) -> list[str]:
    """Effects as short strings: the effect name plus the event or record type."""
    out = []
    for effect in effects:
        match effect:
            case ("send_executor", _stream, event):
                out.append(f"send_executor:{event.type}")
            case ("send_master", call):
                if call.type == AgentCallType.STATUS_UPDATE:
                    s = call.status_update.status
                    out.append(f"send_master:STATUS_UPDATE:{s.task_id.value}:{s.state}")
                else:
                    out.append(f"send_master:{call.type}")
            case ("checkpoint", record):
                out.append(f"checkpoint:{type(record).__name__}")
            case (name, *_):
                out.append(name)
    return out


def updates_sent(effects: list[tuple[Any, ...]]) -> list[TaskStatus]:
    return [e[1].status_update.status for e in effects
            if e[0] == "send_master" and e[1].type == AgentCallType.STATUS_UPDATE]


# ---------------------------------------------------------------------------- launches


def test_run_task_of_a_checkpointing_framework_has_exactly_these_effects() -> None:
    a = Agent()
    task, executor = custom()
    a.run(task, executor, checkpoint=True)
    effects = a.outbox.take()
    assert names(effects) == ["checkpoint:FrameworkRecord", "checkpoint:TaskRecord",
                              "launch_container"]
    launch = effects[-1][1]
    assert isinstance(launch, ContainerLaunch) and launch.container_id == a.container_id()
    assert launch.sandbox == (
        f"/work/slaves/A1/frameworks/fw-1/executors/ex-1/runs/{launch.container_id}")
    assert launch.resources == Resources.parse("cpus:1.5;mem:160")
    assert not launch.command and launch.first_task.task_id.value == "t1"
    assert a.executor().phase == ExecutorPhase.REGISTERING

    a.core.handle(ContainerLaunched(a.container_id(), 4242))
    effects = a.outbox.take()
    assert effects[0] == ("checkpoint", ContainerPidRecord(a.container_id(), 4242))
    record = effects[1][1]
    assert isinstance(record, ExecutorRecord)
    assert (record.framework_id, record.info.executor_id, record.container_id, record.pid,
            record.command) == ("fw-1", EX, a.container_id(), 4242, False)
    assert len(effects) == 2

    a.subscribe("stream-1")
    effects = a.outbox.take()
    assert names(effects) == ["send_executor:SUBSCRIBED", "send_executor:LAUNCH"]
    subscribed = effects[0][2].subscribed
    assert subscribed.agent_info.id.value == "A1"
    assert subscribed.container_id.value == a.container_id()
    assert all(e[1] == "stream-1" for e in effects)
    assert a.executor().launched[TaskID(value="t1")].state == TaskState.TASK_STAGING

    a.update("t1", "TASK_RUNNING", b"u" * 16)
    effects = a.outbox.take()
    assert names(effects) == ["checkpoint:UpdateRecord", "send_master:STATUS_UPDATE:t1:TASK_RUNNING",
                              "send_executor:ACKNOWLEDGED"]
    status = effects[1][1].status_update.status
    assert status.agent_id.value == "A1" and status.executor_id == EX
    assert status.container_status.executor_pid == 4242
    assert a.core.metrics["valid_status_updates"] == 1


def test_command_task_gets_the_command_executor_and_no_checkpoints() -> None:
    a = Agent()
    a.run(command_task("t9"))
    [(name, launch)] = a.outbox.take()
    assert name == "launch_container" and launch.command
    assert launch.executor.executor_id.value == "t9"
    # The command executor's allowance is the shell's business: the core accounts the task.
    assert a.core.used == Resources.parse("cpus:1;mem:128")


def test_refused_launches_end_with_an_agent_update() -> None:
    a = Agent()
    a.run(command_task("big", "cpus:16;mem:64"))
    [status] = updates_sent(a.outbox.take())
    assert (status.state, status.reason) == ("TASK_LOST", "REASON_RESOURCES_UNKNOWN")
    assert status.source == "SOURCE_AGENT" and status.uuid
    assert not a.core.frameworks["fw-1"].executors
    a.run(command_task("t1"))
    a.outbox.take()
    a.run(command_task("t1"))
    [status] = updates_sent(a.outbox.take())
    assert (status.state, status.reason) == ("TASK_ERROR", "REASON_TASK_INVALID")
    assert "already exists" in status.message
    bare = TaskInfo(name="x", task_id=TaskID(value="x"), agent_id=AgentID(value="A1"))
    a.run(bare)
    [status] = updates_sent(a.outbox.take())
    assert status.state == "TASK_ERROR" and "neither" in status.message


def test_a_second_task_joins_a_running_executor_and_grows_its_container() -> None:
    a = Agent()
    task, executor = custom("t1")
    a.run(task, executor)
    a.core.handle(ContainerLaunched(a.container_id(), 10))
    a.subscribe("s")
    a.outbox.take()
    second, _ = custom("t2")
    a.run(second, executor)
    effects = a.outbox.take()
    # The container grows before the task reaches the executor (as Mesos's agent does).
    assert names(effects) == ["update_container", "send_executor:LAUNCH"]
    assert effects[0][2] == Resources.parse("cpus:2.5;mem:288")


def test_launch_failure_fails_the_tasks() -> None:
    a = Agent()
    a.run(command_task("t1"))
    cid = a.core.frameworks["fw-1"].executors["t1"].container_id
    a.outbox.take()
    a.core.handle(ContainerLaunchFailed(cid, "no such isolator"))
    effects = a.outbox.take()
    [status] = updates_sent(effects)
    assert (status.state, status.reason) == ("TASK_FAILED", "REASON_CONTAINER_LAUNCH_FAILED")
    assert "send_master:EXECUTOR_EXITED" not in names(effects)  # it never ran
    assert a.core.metrics["container_launch_errors"] == 1
    assert a.core.used == Resources()


def test_a_container_the_agent_cannot_provide_fails_before_any_launch() -> None:
    a = Agent()
    docker = convert({"type": "DOCKER", "docker": {"image": "busybox"}}, ContainerInfo)
    task = msgspec.structs.replace(command_task("t1"), container=docker)
    a.run(task)
    effects = a.outbox.take()
    assert names(effects) == ["send_master:STATUS_UPDATE:t1:TASK_FAILED"]  # no launch_container
    [status] = updates_sent(effects)
    assert status.reason == "REASON_CONTAINER_LAUNCH_FAILED" and status.source == "SOURCE_AGENT"
    assert status.message.startswith("Failed to launch container: Container type DOCKER")
    assert a.core.used == Resources() and not a.core.frameworks["fw-1"].executors
    assert a.core.metrics["container_launch_errors"] == 1


def test_the_launch_names_the_uris_to_fetch_first() -> None:
    a = Agent()
    uris = [URI(value="http://h/app.tar.gz", cache=True), URI(value="/opt/x", executable=True)]
    command = msgspec.structs.replace(command_task("t1").command, uris=uris)
    a.run(msgspec.structs.replace(command_task("t1"), command=command))
    [(_, launch)] = a.outbox.take()
    assert launch.uris == tuple(uris)
    task, executor = custom("t2")
    executor.command.uris = [URI(value="/opt/my-executor", executable=True)]
    task.command = CommandInfo(value="ignored", uris=[URI(value="/not/fetched")])
    a.run(task, executor)
    [(_, launch)] = a.outbox.take()
    assert [u.value for u in launch.uris] == ["/opt/my-executor"]  # the executor's, as Mesos


# ---------------------------------------------------------------------------- timers


def test_executor_registration_timeout() -> None:
    a = Agent(executor_registration_timeout=60.0)
    task, executor = custom()
    a.run(task, executor)
    a.core.handle(ContainerLaunched(a.container_id(), 10))
    a.outbox.take()
    assert a.core.next_deadline() == pytest.approx(60.0)
    a.advance(59.9)
    assert a.outbox.take() == []
    a.advance(0.1)
    # Never subscribed, so no stream to send SHUTDOWN on: destroyed at once.
    assert a.outbox.take() == [("destroy_container", a.container_id())]
    assert a.executor().phase == ExecutorPhase.TERMINATING
    a.core.handle(ContainerExited(a.container_id(), Termination(9, None, "killed")))
    effects = a.outbox.take()
    [status] = updates_sent(effects)
    assert (status.state, status.reason) == ("TASK_FAILED", "REASON_EXECUTOR_REGISTRATION_TIMEOUT")
    assert status.message == "Executor did not register within 1mins"
    assert names(effects)[-2:] == ["send_master:EXECUTOR_EXITED", "checkpoint:RemoveContainerRecord"]


def test_subscribing_in_time_cancels_the_registration_timeout() -> None:
    a = Agent(executor_registration_timeout=5.0)
    task, executor = custom()
    a.run(task, executor)
    a.core.handle(ContainerLaunched(a.container_id(), 10))
    a.subscribe("s")
    a.outbox.take()
    a.advance(100)
    assert a.outbox.take() == []
    assert a.core.next_deadline() is None


def test_kill_goes_to_the_executor_and_shutdown_escalates_after_the_grace_period() -> None:
    a = Agent(executor_shutdown_grace_period=5.0)
    task, executor = custom(grace=3.0)
    a.run(task, executor)
    a.core.handle(ContainerLaunched(a.container_id(), 10))
    a.subscribe("s")
    a.outbox.take()
    a.master("KILL_TASK", kill_task={"framework_id": {"value": "fw-1"},
                                     "task_id": {"value": "t1"}})
    [(name, stream, event)] = a.outbox.take()
    assert (name, stream, event.type, event.kill.task_id.value) == ("send_executor", "s", "KILL", "t1")
    # The executor does not comply; the master shuts it down.
    a.master("SHUTDOWN_EXECUTOR", shutdown_executor={"framework_id": {"value": "fw-1"},
                                                     "executor_id": {"value": "ex-1"}})
    assert names(a.outbox.take()) == ["send_executor:SHUTDOWN"]
    a.advance(2.9)  # ExecutorInfo.shutdown_grace_period beats the flag
    assert a.outbox.take() == []
    a.advance(0.1)
    assert a.outbox.take() == [("destroy_container", a.container_id())]
    a.core.handle(ContainerExited(a.container_id(), Termination(9, None, "killed")))
    effects = a.outbox.take()
    assert names(effects)[0] == "close_executor"
    [status] = updates_sent(effects)
    assert (status.state, status.reason) == ("TASK_KILLED", "REASON_EXECUTOR_TERMINATED")


def test_kill_of_a_queued_task_and_of_an_unknown_one() -> None:
    a = Agent()
    task, executor = custom()
    a.run(task, executor)
    a.core.handle(ContainerLaunched(a.container_id(), 10))
    a.outbox.take()
    a.master("KILL_TASK", kill_task={"framework_id": {"value": "fw-1"},
                                     "task_id": {"value": "t1"}})
    effects = a.outbox.take()
    [status] = updates_sent(effects)
    assert (status.state, status.reason) == ("TASK_KILLED", "REASON_TASK_KILLED_DURING_LAUNCH")
    assert names(effects)[-1] == "destroy_container"  # nothing left to run
    a.master("KILL_TASK", kill_task={"framework_id": {"value": "fw-1"},
                                     "task_id": {"value": "nope"}})
    [status] = updates_sent(a.outbox.take())
    assert (status.state, status.reason) == ("TASK_LOST", "REASON_TASK_UNKNOWN")


def test_kill_of_a_task_whose_executor_lost_its_stream() -> None:
    a = Agent()
    task, executor = custom()
    a.run(task, executor)
    a.core.handle(ContainerLaunched(a.container_id(), 10))
    a.subscribe("s")
    a.core.handle(ExecutorDisconnected(FW, EX, "s"))
    a.outbox.take()
    a.master("KILL_TASK", kill_task={"framework_id": {"value": "fw-1"},
                                     "task_id": {"value": "t1"}})
    assert a.outbox.take() == [("destroy_container", a.container_id())]
    a.core.handle(ContainerExited(a.container_id(), Termination(9, None, "killed")))
    [status] = updates_sent(a.outbox.take())
    assert (status.state, status.reason) == ("TASK_KILLED", "REASON_EXECUTOR_UNREGISTERED")


# ---------------------------------------------------------------------------- updates


def running(a: Agent) -> None:
    task, executor = custom()
    a.run(task, executor)
    a.core.handle(ContainerLaunched(a.container_id(), 10))
    a.subscribe("s")
    a.outbox.take()


def test_updates_are_retried_with_backoff_until_acknowledged() -> None:
    a = Agent(status_update_retry_interval=10.0, status_update_retry_max=25.0)
    running(a)
    a.update("t1", "TASK_RUNNING", b"r" * 16)
    a.update("t1", "TASK_FINISHED", b"f" * 16)
    # Only the head is in flight.
    assert [s.state for s in updates_sent(a.outbox.take())] == ["TASK_RUNNING"]
    a.advance(9.9)
    assert updates_sent(a.outbox.take()) == []
    a.advance(0.1)
    assert [s.state for s in updates_sent(a.outbox.take())] == ["TASK_RUNNING"]
    a.advance(20)  # doubled
    assert [s.state for s in updates_sent(a.outbox.take())] == ["TASK_RUNNING"]
    a.advance(25)  # capped at the maximum
    assert [s.state for s in updates_sent(a.outbox.take())] == ["TASK_RUNNING"]
    ack = {"framework_id": {"value": "fw-1"}, "task_id": {"value": "t1"}}
    a.master("ACKNOWLEDGE", acknowledge={**ack, "uuid": base64.b64encode(b"x" * 16).decode()})
    assert a.outbox.take() == []  # stale: not the head
    a.master("ACKNOWLEDGE", acknowledge={**ack, "uuid": base64.b64encode(b"r" * 16).decode()})
    [status] = updates_sent(a.outbox.take())
    assert status.state == "TASK_FINISHED"
    a.master("ACKNOWLEDGE", acknowledge={**ack, "uuid": base64.b64encode(b"f" * 16).decode()})
    assert a.outbox.take() == []
    assert a.core.next_deadline() is None
    # The executor exits after its task: nothing left, so it and its framework complete.
    a.core.handle(ContainerExited(a.container_id(), Termination(0, None, "exited")))
    assert "fw-1" not in a.core.frameworks
    assert a.core.completed_frameworks[-1].id == FW


def test_updates_wait_for_a_master_and_are_all_resent_on_subscription() -> None:
    a = Agent()
    running(a)
    a.core.handle(MasterDisconnected())
    a.update("t1", "TASK_RUNNING", b"r" * 16)
    effects = a.outbox.take()
    assert names(effects) == ["send_executor:ACKNOWLEDGED"]  # recorded, not forwarded
    a.advance(60)
    assert a.outbox.take() == []
    a.master("SUBSCRIBED", subscribed={"agent_id": {"value": "A1"}, "master_info": master_json()})
    effects = a.outbox.take()
    assert names(effects) == ["checkpoint:AgentRecord", "send_master:STATUS_UPDATE:t1:TASK_RUNNING"]
    assert a.core.registered


def test_duplicate_and_post_terminal_updates() -> None:
    a = Agent()
    running(a)
    a.update("t1", "TASK_FAILED", b"f" * 16)
    a.outbox.take()
    a.update("t1", "TASK_FAILED", b"f" * 16)  # a duplicate is acknowledged again, not forwarded
    assert names(a.outbox.take()) == ["send_executor:ACKNOWLEDGED"]
    with pytest.raises(CallRefused) as refused:
        a.update("t1", "TASK_RUNNING", b"x" * 16)
    assert refused.value.status == 400 and "terminal" in refused.value.message
    assert a.core.metrics["invalid_status_updates"] == 1


def test_oom_limitation_explains_a_command_task_failure() -> None:
    a = Agent()
    a.run(command_task("t1"))
    cid = a.core.frameworks["fw-1"].executors["t1"].container_id
    a.core.handle(ContainerLaunched(cid, 10))
    a.subscribe("s", executor_id="t1")
    a.outbox.take()
    oom = Limitation("REASON_CONTAINER_LIMITATION_MEMORY", "Memory limit exceeded")
    a.update("t1", "TASK_FAILED", b"f" * 16, executor_id="t1", limitation=oom)
    [status] = updates_sent(a.outbox.take())
    assert status.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert status.message == "Memory limit exceeded (task failed)"


# ---------------------------------------------------------------------------- executors


def test_executor_calls_refused_before_anything_changes() -> None:
    a = Agent()
    status = TaskStatus(task_id=TaskID(value="t1"), state=TaskState.TASK_RUNNING, uuid=b"u" * 16)
    with pytest.raises(CallRefused) as r:
        a.core.handle(ExecutorUpdate(FW, EX, status))
    assert (r.value.status, r.value.message) == (400, "Framework cannot be found")
    task, executor = custom()
    a.run(task, executor)
    a.outbox.take()
    with pytest.raises(CallRefused) as r:
        a.core.handle(ExecutorUpdate(FW, ExecutorID(value="nope"), status))
    assert (r.value.status, r.value.message) == (400, "Executor cannot be found")
    with pytest.raises(CallRefused) as r:
        a.core.handle(ExecutorUpdate(FW, EX, status))
    assert r.value.status == 403
    staging = TaskStatus(task_id=TaskID(value="t1"), state=TaskState.TASK_STAGING, uuid=b"u" * 16)
    a.subscribe("s")
    a.outbox.take()
    with pytest.raises(CallRefused) as r:
        a.core.handle(ExecutorUpdate(FW, EX, staging))
    assert r.value.status == 400
    assert a.outbox.take() == []
    recovering = Agent(recovering=True)
    with pytest.raises(CallRefused) as r:
        recovering.core.handle(ExecutorUpdate(FW, EX, status))
    assert r.value.status == 503


def test_resubscription_replaces_the_stream_and_an_ending_executor_gets_shutdown() -> None:
    a = Agent()
    running(a)
    a.subscribe("s2")
    effects = a.outbox.take()
    assert effects[0] == ("close_executor", "s", "replaced by a new subscription")
    assert names(effects)[1:] == ["send_executor:SUBSCRIBED"]
    a.core.handle(ExecutorDisconnected(FW, EX, "s"))  # the old stream's end changes nothing
    assert a.executor().stream == "s2"
    a.master("SHUTDOWN_FRAMEWORK", shutdown_framework={"framework_id": {"value": "fw-1"}})
    assert names(a.outbox.take()) == ["send_executor:SHUTDOWN"]
    a.subscribe("s3")
    effects = a.outbox.take()
    assert names(effects) == ["send_executor:SHUTDOWN", "close_executor"]


def test_executor_loss_fails_its_tasks_and_completes_after_acknowledgement() -> None:
    a = Agent()
    running(a)
    a.update("t1", "TASK_RUNNING", b"r" * 16)
    a.master("ACKNOWLEDGE", acknowledge={"framework_id": {"value": "fw-1"},
                                         "task_id": {"value": "t1"},
                                         "uuid": base64.b64encode(b"r" * 16).decode()})
    a.outbox.take()
    a.core.handle(ContainerExited(a.container_id(), Termination(256, None, "exited with status 1")))
    effects = a.outbox.take()
    [status] = updates_sent(effects)
    assert (status.state, status.reason) == ("TASK_FAILED", "REASON_EXECUTOR_TERMINATED")
    assert status.message == "Executor terminated: exited with status 1"
    exited = next(e[1] for e in effects if e[0] == "send_master" and e[1].type == "EXECUTOR_EXITED")
    assert exited.executor_exited.status == 256
    assert a.executor().phase == ExecutorPhase.TERMINATED and a.core.used == Resources()
    sandbox = a.executor().directory
    a.master("ACKNOWLEDGE", acknowledge={"framework_id": {"value": "fw-1"},
                                         "task_id": {"value": "t1"},
                                         "uuid": base64.b64encode(status.uuid).decode()})
    assert "fw-1" not in a.core.frameworks
    # Not checkpointing: no checkpoint to remove; the sandbox goes to the garbage collector.
    assert a.outbox.take() == [("schedule_gc", [sandbox])]


def test_ping_reconcile_and_master_shutdown() -> None:
    a = Agent()
    running(a)
    a.master("PING", ping={"ping_id": 7})
    [(_, call)] = a.outbox.take()
    assert call.type == "PONG" and call.pong.ping_id == 7
    a.master("RECONCILE_TASKS", reconcile_tasks={"framework_id": {"value": "fw-1"},
                                                 "task_ids": [{"value": "t1"}, {"value": "gone"}]})
    [status] = updates_sent(a.outbox.take())
    assert (status.task_id.value, status.state, status.reason) == ("gone", "TASK_LOST", "REASON_RECONCILIATION")
    # A PARTITION_AWARE framework hears TASK_DROPPED instead (the master sends its info).
    a.master("RECONCILE_TASKS", reconcile_tasks={
        "framework_id": {"value": "fw-2"}, "task_ids": [{"value": "other"}],
        "framework": {"user": "u", "name": "pa", "id": {"value": "fw-2"},
                      "capabilities": [{"type": "PARTITION_AWARE"}]}})
    [status] = updates_sent(a.outbox.take())
    assert (status.task_id.value, status.state, status.source) == ("other", "TASK_DROPPED", "SOURCE_AGENT")
    a.master("SHUTDOWN", shutdown={"message": "bye"})
    assert names(a.outbox.take()) == ["send_executor:SHUTDOWN", "stop_agent"]
    a.run(command_task("late"))
    [status] = updates_sent(a.outbox.take())
    assert status.state == "TASK_LOST"


# ---------------------------------------------------------------------------- recovery


def write(records: list[tuple[Any, ...]], into: checkpoint.Checkpointer) -> None:
    """Carry the checkpoint effects out on disk, as the shell does."""
    for effect in records:
        if effect[0] == "checkpoint":
            into.write(effect[1])


def test_recovery_from_the_checkpoint_tree_the_effects_wrote(tmp_path: Path) -> None:
    a = Agent(work_dir=str(tmp_path))
    cp = checkpoint.Checkpointer(tmp_path)
    cp.write(AgentRecord(a.core.info))
    task, executor = custom()
    a.run(task, executor, checkpoint=True)
    second, _ = custom("t2")
    a.run(second, executor, checkpoint=True)
    a.core.handle(ContainerLaunched(a.container_id(), 4242))
    a.subscribe("s")
    a.update("t1", "TASK_RUNNING", b"r" * 16)
    write(a.outbox.take(), cp)
    cid = a.container_id()

    state = checkpoint.recover(tmp_path)
    assert state is not None and not state.rebooted
    b = Agent(work_dir=str(tmp_path), recovering=True, registered=False)
    b.core.handle(RecoverCheckpoint(state))
    effects = b.outbox.take()
    assert effects == [("adopt_containers", [(cid, 4242)]),
                       ("checkpoint", ContainerPidRecord(cid, 4242))]
    assert b.core.recovering
    ex = b.executor()
    assert ex.recovered and ex.pid == 4242 and ex.phase == ExecutorPhase.REGISTERING
    assert ex.launched[TaskID(value="t1")].state == "TASK_RUNNING"
    assert ex.launched[TaskID(value="t2")].state == "TASK_STAGING"
    assert b.core.used == Resources.parse("cpus:2.5;mem:288")
    # Re-registration with the master reports the task and its unacknowledged update.
    sub = b.core.subscribe_call().subscribe
    reported = {t.task_id.value: t for t in sub.tasks}
    assert reported["t1"].status_update_state == "TASK_RUNNING"
    assert reported["t1"].status_update_uuid == b"r" * 16
    # The executor re-subscribes knowing t1 only: t2 was launched while the agent was away.
    b.subscribe("s", unacknowledged_tasks=[task])
    effects = b.outbox.take()
    # t2 is lost; the executor runs on with t1, its container shrinks to what it holds.
    assert names(effects) == ["send_executor:SUBSCRIBED", "checkpoint:UpdateRecord",
                              "update_container", "recovery_complete"]
    assert effects[2][2] == b.executor().resources
    assert not b.core.recovering
    assert ex.terminated[TaskID(value="t2")].state == "TASK_LOST"
    b.master("SUBSCRIBED", subscribed={"agent_id": {"value": "A1"}, "master_info": master_json()})
    resent = updates_sent(b.outbox.take())
    assert [(s.task_id.value, s.state) for s in resent] == [("t1", "TASK_RUNNING"),
                                                             ("t2", "TASK_LOST")]


def test_recovered_executor_that_does_not_resubscribe_is_shut_down(tmp_path: Path) -> None:
    a = Agent(work_dir=str(tmp_path))
    cp = checkpoint.Checkpointer(tmp_path)
    cp.write(AgentRecord(a.core.info))
    task, executor = custom()
    a.run(task, executor, checkpoint=True)
    a.core.handle(ContainerLaunched(a.container_id(), 4242))
    write(a.outbox.take(), cp)
    b = Agent(work_dir=str(tmp_path), recovering=True, executor_reregistration_timeout=2.0)
    b.core.handle(RecoverCheckpoint(checkpoint.recover(tmp_path)))
    b.outbox.take()
    b.advance(2.0)
    assert b.outbox.take() == [("destroy_container", a.container_id()), ("recovery_complete",)]
    b.core.handle(ContainerExited(a.container_id(), Termination(None, None, "gone")))
    [status] = updates_sent(b.outbox.take())
    assert (status.state, status.reason) == ("TASK_LOST", "REASON_EXECUTOR_REREGISTRATION_TIMEOUT")


def test_nothing_to_recover_completes_at_once() -> None:
    a = Agent(recovering=True, registered=False)
    a.core.handle(RecoverCheckpoint(None))
    assert a.outbox.take() == [("recovery_complete",)] and not a.core.recovering


def test_completed_executor_of_a_checkpointing_framework_removes_its_checkpoints() -> None:
    a = Agent()
    task, executor = custom()
    a.run(task, executor, checkpoint=True)
    a.core.handle(ContainerLaunched(a.container_id(), 1))
    a.subscribe("s")
    a.update("t1", "TASK_FINISHED", b"f" * 16)
    a.master("ACKNOWLEDGE", acknowledge={"framework_id": {"value": "fw-1"},
                                         "task_id": {"value": "t1"},
                                         "uuid": base64.b64encode(b"f" * 16).decode()})
    a.outbox.take()
    cid = a.container_id()
    a.core.handle(ContainerExited(cid, Termination(0, None, "exited")))
    records = [e[1] for e in a.outbox.take() if e[0] == "checkpoint"]
    assert records == [RemoveContainerRecord(cid),
                       RemoveExecutorRecord("fw-1", "ex-1"), RemoveFrameworkRecord("fw-1")]


def test_task_group_is_delivered_and_killed_together() -> None:
    a = Agent()
    first, executor = custom("g1")
    second, _ = custom("g2")
    group = {
        "framework_info": {"user": "u", "name": "f", "id": {"value": FW.value}},
        "executor_info": executor,
        "task_group": {"tasks": [first, second]},
    }
    a.core.handle(AgentEvent(type=AgentEventType.RUN_TASK_GROUP,
                             run_task_group=convert(to_builtins(group), AgentRunTaskGroup)))
    [(name, launch)] = a.outbox.take()
    assert name == "launch_container" and launch.resources == Resources.parse("cpus:2.5;mem:288")
    a.core.handle(ContainerLaunched(a.container_id(), 10))
    a.outbox.take()
    # Killing one task of an undelivered group kills the whole group.
    a.master("KILL_TASK", kill_task={"framework_id": {"value": "fw-1"},
                                     "task_id": {"value": "g2"}})
    effects = a.outbox.take()
    killed = updates_sent(effects)
    assert [(s.task_id.value, s.state, s.reason) for s in killed] == [
        ("g1", "TASK_KILLED", "REASON_TASK_KILLED_DURING_LAUNCH"),
        ("g2", "TASK_KILLED", "REASON_TASK_KILLED_DURING_LAUNCH"),
    ]
    assert {t.value for t in a.executor().terminated} == {"g1", "g2"}
    assert names(effects)[-1] == "destroy_container"


def default_group(*task_ids: str) -> AgentEvent:
    """RUN_TASK_GROUP of command tasks under a DEFAULT executor (the built-in default one)."""
    executor = ExecutorInfo(type=ExecutorType.DEFAULT, executor_id=EX, framework_id=FW,
                            resources=Resources.parse("cpus:0.1;mem:32").to_wire())
    tasks = [command_task(t, "cpus:0.5;mem:64") for t in task_ids]
    group = {
        "framework_info": {"user": "u", "name": "f", "id": {"value": FW.value}},
        "executor_info": executor, "task_group": {"tasks": tasks},
    }
    return AgentEvent(type=AgentEventType.RUN_TASK_GROUP,
                      run_task_group=convert(to_builtins(group), AgentRunTaskGroup))


def test_default_executor_runs_groups_and_takes_more_into_its_container() -> None:
    a = Agent()
    a.core.handle(default_group("g1", "g2"))
    [(name, launch)] = a.outbox.take()
    assert name == "launch_container" and not launch.command
    assert launch.executor.type == ExecutorType.DEFAULT
    # The executor's container holds the executor and the whole group.
    assert launch.resources == Resources.parse("cpus:1.1;mem:160")
    assert a.core.used == launch.resources
    a.core.handle(ContainerLaunched(a.container_id(), 10))
    a.outbox.take()
    a.subscribe("s")
    assert names(a.outbox.take()) == ["send_executor:SUBSCRIBED", "send_executor:LAUNCH_GROUP"]
    # A second group joins the running executor at once; its container grows.
    a.core.handle(default_group("g3"))
    effects = a.outbox.take()
    assert names(effects) == ["update_container", "send_executor:LAUNCH_GROUP"]
    assert effects[0][2] == Resources.parse("cpus:1.6;mem:224")
    # KILL of a delivered task goes to the executor (it kills the rest of the group).
    a.master("KILL_TASK", kill_task={"framework_id": {"value": "fw-1"},
                                     "task_id": {"value": "g1"}})
    [kill] = a.outbox.take()
    assert kill[0] == "send_executor" and kill[2].type == "KILL"
    assert kill[2].kill.task_id.value == "g1"
    # A task's end shrinks the container while others run on.
    a.update("g1", "TASK_KILLED", b"g1".ljust(16, b"-"))
    shrink = [e for e in a.outbox.take() if e[0] == "update_container"]
    assert [e[2] for e in shrink] == [Resources.parse("cpus:1.1;mem:160")]
    # The executor ends with its last task: the resources come back.
    for task_id in ("g2", "g3"):
        a.update(task_id, "TASK_KILLED", task_id.encode().ljust(16, b"-"))
    a.core.handle(ContainerExited(a.container_id(), Termination(0, None, "exited")))
    assert a.core.used == Resources()


def test_default_executor_task_killed_by_the_oom_killer_is_a_memory_limitation() -> None:
    a = Agent()
    a.core.handle(default_group("g1"))
    a.core.handle(ContainerLaunched(a.container_id(), 10))
    a.subscribe("s")
    a.outbox.take()
    limit = Limitation("REASON_CONTAINER_LIMITATION_MEMORY", "Memory limit exceeded")
    a.update("g1", "TASK_FAILED", b"u" * 16, limitation=limit)
    [status] = updates_sent(a.outbox.take())
    assert status.reason == "REASON_CONTAINER_LIMITATION_MEMORY"


def test_a_group_with_uris_is_delivered_once_they_are_fetched_into_its_tasks_sandboxes() -> None:
    a = Agent()
    event = default_group("g1", "g2")
    tasks = event.run_task_group.task_group.tasks
    tasks[0].command.uris = [URI(value="file:///srv/app.tgz")]
    a.core.handle(event)
    assert names(a.outbox.take()) == ["launch_container"]
    a.core.handle(ContainerLaunched(a.container_id(), 10))
    [fetch] = [e[1] for e in a.outbox.take() if e[0] == "fetch_task_uris"]
    sandbox = a.executor().directory
    assert fetch.fetches == (
        (f"{sandbox}/tasks/g1", (URI(value="file:///srv/app.tgz"),)),
        (f"{sandbox}/tasks/g2", ()),
    )
    a.subscribe("s")
    assert names(a.outbox.take()) == ["send_executor:SUBSCRIBED"]  # not before the fetch
    a.core.handle(TasksFetched(a.container_id(), fetch.key))
    assert names(a.outbox.take()) == ["send_executor:LAUNCH_GROUP"]


def test_a_failed_fetch_fails_the_group() -> None:
    a = Agent()
    event = default_group("g1", "g2")
    event.run_task_group.task_group.tasks[1].command.uris = [URI(value="http://nowhere/x")]
    a.core.handle(event)
    a.core.handle(ContainerLaunched(a.container_id(), 10))
    [fetch] = [e[1] for e in a.outbox.take() if e[0] == "fetch_task_uris"]
    a.subscribe("s")
    a.outbox.take()
    a.core.handle(TasksFetched(a.container_id(), fetch.key, "Failed to fetch all URIs: 404"))
    effects = a.outbox.take()
    failed = updates_sent(effects)
    assert [(s.task_id.value, s.state, s.reason) for s in failed] == [
        ("g1", "TASK_FAILED", "REASON_CONTAINER_LAUNCH_FAILED"),
        ("g2", "TASK_FAILED", "REASON_CONTAINER_LAUNCH_FAILED"),
    ]
    assert failed[0].message == "Failed to launch container: Failed to fetch all URIs: 404"
    assert "send_executor:SHUTDOWN" in names(effects)  # nothing left for the executor


def test_group_delivered_to_a_subscribed_executor() -> None:
    a = Agent()
    first, executor = custom("g1")
    second, _ = custom("g2")
    group = {
        "framework_info": {"user": "u", "name": "f", "id": {"value": FW.value}},
        "executor_info": executor,
        "task_group": {"tasks": [first, second]},
    }
    a.core.handle(AgentEvent(type=AgentEventType.RUN_TASK_GROUP,
                             run_task_group=convert(to_builtins(group), AgentRunTaskGroup)))
    a.core.handle(ContainerLaunched(a.container_id(), 10))
    a.outbox.take()
    a.subscribe("s")
    effects = a.outbox.take()
    assert names(effects) == ["send_executor:SUBSCRIBED", "send_executor:LAUNCH_GROUP"]
    tasks = effects[1][2].launch_group.task_group.tasks
    assert [t.task_id.value for t in tasks] == ["g1", "g2"]


# ---------------------------------------------------------------------------- queries


def test_queries_the_shell_reads_instead_of_walking_the_state() -> None:
    """What the operator API (nested containers), the shell's stop and GET_OPERATIONS ask."""
    a = Agent()
    a.core.handle(default_group("g1"))
    cid = a.container_id()
    sandbox = str(a.executor().sandbox)
    assert a.core.live_container(cid) == (sandbox, None)  # launching: no pid yet
    a.core.handle(ContainerLaunched(cid, 10))
    a.subscribe("s")
    status = TaskStatus(task_id=TaskID(value="g1"), state=TaskState.TASK_RUNNING, uuid=b"r" * 16,
                        container_status=convert({"container_id": {
                            "value": "c-g1", "parent": {"value": cid}}}, ContainerStatus))
    a.core.handle(ExecutorUpdate(FW, EX, status))
    assert a.core.live_container(cid) == (sandbox, 10)
    assert a.core.live_container(f"{cid}.c-g1") == (f"{sandbox}/tasks/g1", 10)
    assert a.core.live_container(f"{cid}.other") is None
    assert a.core.live_container(f"{cid}.c-g1.deeper") is None  # nested: not the core's
    assert a.core.live_executor_containers() == [(cid, 5.0, False)]
    a.core.handle(ContainerExited(cid, Termination(0, None, "exited")))
    assert a.core.live_container(cid) is None
    assert a.core.live_executor_containers() == []
    assert a.core.pending_operations() == []


def test_a_limited_container_is_destroyed_and_its_tasks_fail_with_the_limitation() -> None:
    a = Agent()
    running(a)
    a.update("t1", "TASK_RUNNING", b"r" * 16)
    a.outbox.take()
    cid = a.container_id()
    disk = Limitation("REASON_CONTAINER_LIMITATION_DISK", "Disk usage (2MB) exceeds quota (1MB)")
    a.core.handle(ContainerLimited(cid, disk))
    assert a.outbox.take() == [("destroy_container", cid)]
    assert a.executor().phase == ExecutorPhase.RUNNING  # until the container has ended
    # The containerizer's termination carries the limitation; the updates are the same
    # whether it does or not (the core remembers what it was told).
    for termination in (Termination(9, disk, disk.message), Termination(9, None, "killed")):
        b = Agent()
        running(b)
        b.update("t1", "TASK_RUNNING", b"r" * 16)
        b.master("ACKNOWLEDGE", acknowledge={"framework_id": {"value": "fw-1"},
                                             "task_id": {"value": "t1"},
                                             "uuid": base64.b64encode(b"r" * 16).decode()})
        b.core.handle(ContainerLimited(b.container_id(), disk))
        b.outbox.take()
        b.core.handle(ContainerExited(b.container_id(), termination))
        [status] = updates_sent(b.outbox.take())
        assert (status.state, status.reason, status.message) == (
            "TASK_FAILED", "REASON_CONTAINER_LIMITATION_DISK", disk.message)
    # A container the core does not know (or no longer) is destroyed all the same.
    a.core.handle(ContainerLimited("stranger", disk))
    assert a.outbox.take() == [("destroy_container", "stranger")]
