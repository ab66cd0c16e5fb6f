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
    CheckInfo,
    CheckType,
    CommandInfo,
    ContainerType,
    ExecutorInfo,
    ExecutorType,
    HealthCheck,
    TaskInfo,
    VariableType,
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
    """Mesos's state-free checks of any task: kill policy, max completion time, check and
    health check (in Mesos's order)."""
    policy = task.kill_policy
    if policy is not None and policy.grace_period is not None and policy.grace_period.nanoseconds < 0:
        return "Task's 'kill_policy.grace_period' must be non-negative"
    limit = task.max_completion_time
    if limit is not None and limit.nanoseconds < 0:
        return "Task's `max_completion_time` must be non-negative"
    if task.check is not None:
        problem = check_problem(task.check)
        if problem:
            return f"Task uses invalid check: {problem}"
    if task.health_check is not None:
        problem = health_check_problem(task.health_check)
        if problem:
            return f"Task uses invalid health check: {problem}"
    return None


def environment_problem(command: CommandInfo) -> str | None:
    """Mesos's `validateEnvironment` of a CommandInfo's variables."""
    for variable in command.environment.variables if command.environment else []:
        name = variable.name
        if variable.type == VariableType.SECRET:
            if variable.secret is None:
                return f"Environment variable '{name}' of type 'SECRET' must have a secret set"
            if variable.value is not None:
                return f"Environment variable '{name}' of type 'SECRET' must not have a value set"
        elif variable.type == VariableType.UNKNOWN:
            return "Environment variable of type 'UNKNOWN' is not allowed"
        else:
            if variable.value is None:
                return f"Environment variable '{name}' of type 'VALUE' must have a value set"
            if variable.secret is not None:
                return f"Environment variable '{name}' of type 'VALUE' must not have a secret set"
    return None


def _command_problem(command: CommandInfo, what: str) -> str | None:
    if command.value is None:
        kind = "'shell command'" if command.shell is not False else "'executable path'"
        return f"{what.capitalize()} must contain {kind}"
    problem = environment_problem(command)
    if problem:
        return f"{what.capitalize()}'s `CommandInfo` is invalid: {problem}"
    return None


def _timing_problem(info: CheckInfo | HealthCheck) -> str | None:
    fields = ["delay_seconds"]
    if isinstance(info, HealthCheck):
        fields.append("grace_period_seconds")
    fields += ["interval_seconds", "timeout_seconds"]
    for name in fields:
        value = getattr(info, name)
        if value is not None and value < 0.0:
            return f"Expecting '{name}' to be non-negative"
    return None


def check_problem(check: CheckInfo) -> str | None:
    """Mesos's `validateCheckInfo`."""
    if check.type is None:
        return "CheckInfo must specify 'type'"
    if check.type == CheckType.COMMAND:
        if check.command is None:
            return "Expecting 'command' to be set for COMMAND check"
        problem = _command_problem(check.command.command, "command check")
        if problem:
            return problem.replace("Command check's", "Check's")
    elif check.type == CheckType.HTTP:
        if check.http is None:
            return "Expecting 'http' to be set for HTTP check"
        path = check.http.path
        if path is not None and not path.startswith("/"):
            return f"The path '{path}' of HTTP check must start with '/'"
    elif check.type == CheckType.TCP:
        if check.tcp is None:
            return "Expecting 'tcp' to be set for TCP check"
    else:
        return f"'{check.type}' is not a valid check type"
    return _timing_problem(check)


def health_check_problem(health: HealthCheck) -> str | None:
    """Mesos's `validateHealthCheck` (a HealthCheck without `type`, the pre-1.2 form, is
    refused, as Mesos does)."""
    if health.type is None:
        return "HealthCheck must specify 'type'"
    if health.type == CheckType.COMMAND:
        if health.command is None:
            return "Expecting 'command' to be set for COMMAND health check"
        problem = _command_problem(health.command, "command health check")
        if problem:
            return problem.replace("Command health check's", "Health check's")
    elif health.type == CheckType.HTTP:
        if health.http is None:
            return "Expecting 'http' to be set for HTTP health check"
        scheme = health.http.scheme
        if scheme is not None and scheme not in ("http", "https"):
            return f"Unsupported HTTP health check scheme: '{scheme}'"
        path = health.http.path
        if path is not None and not path.startswith("/"):
            return f"The path '{path}' of HTTP health check must start with '/'"
    elif health.type == CheckType.TCP:
        if health.tcp is None:
            return "Expecting 'tcp' to be set for TCP health check"
    else:
        return f"'{health.type}' is not a valid health check type"
    return _timing_problem(health)


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
