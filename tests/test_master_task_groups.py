"""LAUNCH_GROUP in the master core on a FakeClock: Mesos's task group validation (every task
refused with one TASK_ERROR message, or the whole group sent to the agent as RUN_TASK_GROUP),
and LAUNCH refusing the DEFAULT executor."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mezzo.api.common import (
    CommandInfo,
    ContainerInfo,
    ContainerType,
    ExecutorID,
    ExecutorInfo,
    ExecutorType,
    FrameworkID,
    TaskID,
    TaskInfo,
)
from mezzo.resources import Resources
from mezzo.testing.master_cluster import MasterCluster, ScriptedScheduler, task_info


def default_executor(resources: str = "cpus:0.1;mem:32;disk:10") -> ExecutorInfo:
    return ExecutorInfo(
        type=ExecutorType.DEFAULT, executor_id=ExecutorID(value="e"),
        resources=Resources.parse(resources).to_wire(),
    )


def offered(agent_resources: str = "cpus:1;mem:512;disk:100") -> tuple[MasterCluster, ScriptedScheduler, object]:
    c = MasterCluster()
    agent = c.add_agent(agent_resources)
    s = c.add_scheduler()
    c.allocate()
    return c, s, agent


def test_a_valid_group_goes_to_the_agent_whole() -> None:
    c, s, agent = offered()
    offer = s.next_event("OFFERS").offers.offers[0]
    tasks = [task_info("a", offer), task_info("b", offer)]
    assert s.launch_group(offer, default_executor(), tasks) == 202
    run = agent.next_event("RUN_TASK_GROUP").run_task_group
    assert [t.task_id.value for t in run.task_group.tasks] == ["a", "b"]
    assert run.executor_info.type == ExecutorType.DEFAULT
    assert run.executor_info.framework_id == FrameworkID(value=s.framework_id)
    # Every task names the group's executor (as Mesos fills it in).
    assert all(t.executor == run.executor_info for t in run.task_group.tasks)
    fw = c.master.frameworks[s.framework_id]
    assert set(fw.tasks) == {"a", "b"} and fw.tasks["a"].executor_id == "e"
    assert not s.all_of("UPDATE")


def test_a_second_group_joins_the_running_executor_without_charging_it_again() -> None:
    c, s, agent = offered("cpus:1;mem:512;disk:100")
    offer = s.next_event("OFFERS").offers.offers[0]
    s.launch_group(offer, default_executor(), [task_info("a", offer)])
    agent.next_event("RUN_TASK_GROUP")
    c.clock.advance(10)
    c.allocate()
    offer = s.next_event("OFFERS").offers.offers[0]
    # The executor's 0.1 cpus are held: 1 - 0.1 (executor) - 0.1 (a).
    assert Resources.from_wire(offer.resources).cpus() == pytest.approx(0.8)
    assert [e.value for e in offer.executor_ids] == ["e"]
    s.launch_group(offer, default_executor(), [task_info("b", offer, resources="cpus:0.8;mem:32")])
    run = agent.next_event("RUN_TASK_GROUP").run_task_group
    assert [t.task_id.value for t in run.task_group.tasks] == ["b"]
    assert not s.all_of("UPDATE")


def _docker(task: TaskInfo) -> None:
    task.container = ContainerInfo(type=ContainerType.DOCKER, docker={"image": "x"})  # type: ignore[arg-type]


def _other_executor(task: TaskInfo) -> None:
    task.executor = default_executor("cpus:0.2;mem:32;disk:10")


def _wrong_agent(task: TaskInfo) -> None:
    task.agent_id.value = "nope"


def _no_resources(task: TaskInfo) -> None:
    task.resources = []


def _duplicate(task: TaskInfo) -> None:
    task.task_id = TaskID(value="a")


def _limits(task: TaskInfo) -> None:
    task.limits = {"cpus": {"value": 2.0}}  # type: ignore[dict-item]


def _negative_grace(task: TaskInfo) -> None:
    task.kill_policy = {"grace_period": {"nanoseconds": -1}}  # type: ignore[assignment]


TASK_CASES: list[tuple[Callable[[TaskInfo], None], str]] = [
    (_docker, "Task 'b' is invalid: Docker ContainerInfo is not supported on the task"),
    (_other_executor, "The `ExecutorInfo` of task 'b' is different from executor 'e'"),
    (_no_resources, "Task 'b' is invalid: Task uses no resources"),
    (_duplicate, "Task 'a' is invalid: Task has duplicate ID: a"),
    (_limits, "Task 'b' is invalid: Resource limits may only be set for tasks within a task "
              "group when the 'share_cgroups' field is set to 'false'."),
    (_negative_grace, "Task 'b' is invalid: Task's 'kill_policy.grace_period' must be non-negative"),
]


def _no_type(e: ExecutorInfo) -> None:
    e.type = None


def _unknown_type(e: ExecutorInfo) -> None:
    e.type = ExecutorType.UNKNOWN


def _default_with_command(e: ExecutorInfo) -> None:
    e.command = CommandInfo(value="my-executor")


def _custom_without_command(e: ExecutorInfo) -> None:
    e.type = ExecutorType.CUSTOM


def _docker_executor(e: ExecutorInfo) -> None:
    e.container = ContainerInfo(type=ContainerType.DOCKER, docker={"image": "x"})  # type: ignore[arg-type]


def _tiny_cpus(e: ExecutorInfo) -> None:
    e.resources = Resources.parse("cpus:0.001;mem:32;disk:10").to_wire()


def _no_mem(e: ExecutorInfo) -> None:
    e.resources = Resources.parse("cpus:0.1;disk:10").to_wire()


def _no_disk(e: ExecutorInfo) -> None:
    e.resources = Resources.parse("cpus:0.1;mem:32").to_wire()


def _foreign_framework(e: ExecutorInfo) -> None:
    e.framework_id = FrameworkID(value="other")


def _too_big(e: ExecutorInfo) -> None:
    e.resources = Resources.parse("cpus:1;mem:32;disk:10").to_wire()


EXECUTOR_CASES: list[tuple[Callable[[ExecutorInfo], None], str]] = [
    (_no_type, "'ExecutorInfo.type' must be set"),
    (_unknown_type, "Unknown executor type"),
    (_default_with_command, "'ExecutorInfo.command' must not be set for 'DEFAULT' executor"),
    (_custom_without_command, "'ExecutorInfo.command' must be set for 'CUSTOM' executor"),
    (_docker_executor, "'ExecutorInfo.container.type' must be 'MESOS' for 'DEFAULT' executor"),
    (_tiny_cpus, "Executor 'e' uses less CPUs (0.001) than the minimum required (0.01)"),
    (_no_mem, "Executor 'e' uses less memory (None) than the minimum required (32MB)"),
    (_no_disk, "Executor 'e' uses no disk"),
    (_foreign_framework, "ExecutorInfo has an invalid FrameworkID (Actual: other vs Expected: "),
    (_too_big, "Total resources "),
]


def _refused(s: ScriptedScheduler, agent: object, message: str) -> None:
    updates = [u.update.status for u in s.all_of("UPDATE")]
    assert {u.task_id.value for u in updates} == {"a", "b"}
    for u in updates:
        assert (u.state, u.reason, u.source) == ("TASK_ERROR", "REASON_TASK_GROUP_INVALID", "SOURCE_MASTER")
        assert u.message is not None and u.message.startswith(message), u.message
    assert not agent.all_of("RUN_TASK_GROUP")  # type: ignore[attr-defined]


@pytest.mark.parametrize(("mutate", "message"), TASK_CASES, ids=[f.__name__ for f, _ in TASK_CASES])
def test_an_invalid_task_refuses_the_whole_group(
    mutate: Callable[[TaskInfo], None], message: str
) -> None:
    c, s, agent = offered()
    offer = s.next_event("OFFERS").offers.offers[0]
    b = task_info("b", offer)
    mutate(b)
    assert s.launch_group(offer, default_executor(), [task_info("a", offer), b]) == 202
    if mutate is _duplicate:  # both tasks are "a"
        updates = [u.update.status for u in s.all_of("UPDATE")]
        assert [u.task_id.value for u in updates] == ["a", "a"]
        assert all(u.message == message and u.state == "TASK_ERROR" for u in updates)
        assert not agent.all_of("RUN_TASK_GROUP")
        return
    _refused(s, agent, message)
    assert c.master.frameworks[s.framework_id].tasks == {}


@pytest.mark.parametrize(("mutate", "message"), EXECUTOR_CASES, ids=[f.__name__ for f, _ in EXECUTOR_CASES])
def test_an_invalid_executor_refuses_the_whole_group(
    mutate: Callable[[ExecutorInfo], None], message: str
) -> None:
    c, s, agent = offered()
    offer = s.next_event("OFFERS").offers.offers[0]
    executor = default_executor()
    mutate(executor)
    tasks = [task_info("a", offer), task_info("b", offer)]
    assert s.launch_group(offer, executor, tasks) == 202
    _refused(s, agent, message)
    assert c.master.frameworks[s.framework_id].tasks == {}
    # The resources go back: the next offer has them all.
    c.clock.advance(10)
    c.allocate()
    again = s.next_event("OFFERS").offers.offers[0]
    assert Resources.from_wire(again.resources).cpus() == pytest.approx(1.0)


def test_launch_refuses_the_default_executor() -> None:
    _c, s, agent = offered()
    offer = s.next_event("OFFERS").offers.offers[0]
    task = task_info("a", offer)
    task.command = None
    task.executor = default_executor()
    s.launch(offer, [task])
    [update] = [u.update.status for u in s.all_of("UPDATE")]
    assert (update.state, update.reason) == ("TASK_ERROR", "REASON_TASK_INVALID")
    assert update.message == "'ExecutorInfo.type' must be 'CUSTOM'"
    assert not agent.all_of("RUN_TASK")
