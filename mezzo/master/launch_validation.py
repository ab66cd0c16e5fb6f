"""The master's checks of a launch's TaskInfos and ExecutorInfos (pure; Mesos's rules and words).

From Mesos's `src/master/validation.cpp`: what an executor of each type must look like
(`validateType`), what a task launched by LAUNCH may use (a CUSTOM executor only), and the task
group rules of LAUNCH_GROUP (`task::group::validate`): every task valid as a nested container
("Task 'X' is invalid: ..."), then the group's executor — its type set and known, no Docker,
the same ExecutorInfo on every task, at least 0.01 cpus and 32 MB of memory and some disk (the
default executor's container holds the whole group, so it must be sized).

Each function returns the first problem as Mesos words it, or None. What depends on the
master's state (duplicate ids, the running executor, the offered resources) stays in
`mezzo.master.offers`; container rules live in `mezzo.master.container_validation`.
"""

from __future__ import annotations

from mezzo.api.common import (
    CheckType,
    ContainerType,
    ExecutorInfo,
    ExecutorType,
    TaskInfo,
)
from mezzo.master.container_validation import executor_container_problem
from mezzo.resources import Resources

MIN_CPUS = 0.01  # Mesos's master/constants.hpp
MIN_MEM_MB = 32.0


def _number(value: float | None) -> str:
    """A double as Mesos's `stringify` prints it (0.01, 1, None)."""
    if value is None:
        return "None"
    return f"{value:g}"


def executor_type_problem(executor: ExecutorInfo) -> str | None:
    """Mesos's `validateType`: DEFAULT has no command and a plain MESOS container; CUSTOM has
    a command."""
    if executor.type == ExecutorType.DEFAULT:
        if executor.command is not None:
            return "'ExecutorInfo.command' must not be set for 'DEFAULT' executor"
        container = executor.container
        if container is not None:
            if container.type != ContainerType.MESOS:
                return "'ExecutorInfo.container.type' must be 'MESOS' for 'DEFAULT' executor"
            if container.mesos is not None and container.mesos.image:
                return "'ExecutorInfo.container.mesos.image' must not be set for 'DEFAULT' executor"
    elif executor.type == ExecutorType.CUSTOM and executor.command is None:
        return "'ExecutorInfo.command' must be set for 'CUSTOM' executor"
    return None


def executor_problem(executor: ExecutorInfo) -> str | None:
    """Mesos's `executor::validate` (the state-free part): type, grace period, container."""
    problem = executor_type_problem(executor)
    if problem:
        return problem
    grace = executor.shutdown_grace_period
    if grace is not None and grace.nanoseconds < 0:
        return "ExecutorInfo's 'shutdown_grace_period' must be non-negative"
    return executor_container_problem(executor)


def launch_executor_problem(executor: ExecutorInfo) -> str | None:
    """LAUNCH's extra rules for `TaskInfo.executor` (the default executor needs LAUNCH_GROUP)."""
    problem = executor_problem(executor)
    if problem:
        return problem
    if executor.type is not None and executor.type != ExecutorType.CUSTOM:
        return "'ExecutorInfo.type' must be 'CUSTOM'"
    if executor.command is None:
        return "'ExecutorInfo.command' must be set"
    return None


def task_problem(task: TaskInfo) -> str | None:
    """Mesos's state-free checks of any task: kill policy and max completion time."""
    policy = task.kill_policy
    if policy is not None and policy.grace_period is not None and policy.grace_period.nanoseconds < 0:
        return "Task's 'kill_policy.grace_period' must be non-negative"
    limit = task.max_completion_time
    if limit is not None and limit.nanoseconds < 0:
        return "Task's `max_completion_time` must be non-negative"
    return None


def group_task_problem(task: TaskInfo) -> str | None:
    """`task::group::internal::validateTask`'s own rules: what a nested container may ask."""
    problem = task_problem(task)
    if problem:
        return problem
    container = task.container
    if container is not None:
        health = task.health_check
        if container.network_infos and health is not None and health.type in (
            CheckType.HTTP, CheckType.TCP
        ):
            return (
                "HTTP and TCP health checks are not supported for nested containers not "
                "joining parent's network"
            )
        if container.type == ContainerType.DOCKER:
            return "Docker ContainerInfo is not supported on the task"
    if task.limits:
        linux = (container.linux_info if container is not None else None) or {}
        if linux.get("share_cgroups", True) is not False:
            return (
                "Resource limits may only be set for tasks within a task group when the "
                "'share_cgroups' field is set to 'false'."
            )
    return None


def group_executor_problem(executor: ExecutorInfo, tasks: list[TaskInfo]) -> str | None:
    """`task::group::internal::validateExecutor`'s own rules (after `executor_problem`)."""
    if executor.type is None:
        return "'ExecutorInfo.type' must be set"
    if executor.type == ExecutorType.UNKNOWN:
        return "Unknown executor type"
    if executor.container is not None and executor.container.type == ContainerType.DOCKER:
        return "Docker ContainerInfo is not supported on the executor"
    name = executor.executor_id.value
    for task in tasks:
        if task.executor is not None and task.executor != executor:
            return (
                f"The `ExecutorInfo` of task '{task.task_id.value}' is different from "
                f"executor '{name}'"
            )
    resources = Resources.from_wire(executor.resources) if executor.resources else Resources()
    cpus = resources.cpus() if "cpus" in resources.names() else None
    if cpus is None or cpus < MIN_CPUS:
        return (
            f"Executor '{name}' uses less CPUs ({_number(cpus)}) than the minimum required "
            f"({_number(MIN_CPUS)})"
        )
    mem = resources.mem() if "mem" in resources.names() else None
    if mem is None or mem < MIN_MEM_MB:
        shown = "None" if mem is None else f"{_number(mem)}MB"
        return (
            f"Executor '{name}' uses less memory ({shown}) than the minimum required "
            f"({_number(MIN_MEM_MB)}MB)"
        )
    if "disk" not in resources.names():
        return f"Executor '{name}' uses no disk"
    return None
