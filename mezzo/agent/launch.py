"""How the agent turns an executor into a container: ExecutorInfo, environment, limits.

Pure functions (no I/O besides reading `os.environ` when told to inherit it):

- `command_executor_info` derives the ExecutorInfo of the built-in command executor for a task
  with `command` and no `executor` (executor id = task id, as Mesos does);
- `executor_environment` builds the exact environment of spec §6.1;
- `container_config` builds the containerizer's `ContainerConfig` (argv or shell, user,
  cpu/mem limits, persistent volumes);
- `volume_mounts` lists the persistent volumes among a container's resources: where each lives
  on the agent and where it appears in the sandbox (`DiskInfo.volume`).

The command executor is `mezzo/executor/command.py`, started as a script by file path (the agent
never imports the executor SDK: layer rule); an ExecutorInfo of type DEFAULT without a command
runs the built-in default executor, `mezzo/executor/default.py`, the same way (task groups). Like Mesos, the agent gives a command executor an
allowance on top of its task's resources for the executor process itself (0.1 cpus, 32 MB) in
the container limits; the allowance is not accounted against the agent's resources.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import mezzo
from mezzo.agent.containerizer import ContainerConfig, VolumeMount
from mezzo.api.common import (
    CommandInfo,
    ExecutorID,
    ExecutorInfo,
    ExecutorType,
    FrameworkID,
    FrameworkInfo,
    TaskInfo,
)
from mezzo.core.durations import format_duration
from mezzo.resources import Resources
from mezzo.resources.volumes import disk_of, volume_path

COMMAND_EXECUTOR_PATH = Path(mezzo.__file__).resolve().parent / "executor" / "command.py"
# -S: skip site (start-up time); -E: ignore PYTHON* variables of the task's environment.
DEFAULT_COMMAND_EXECUTOR = [sys.executable, "-S", "-E", str(COMMAND_EXECUTOR_PATH)]
# The built-in default executor: runs task groups for an ExecutorInfo of type DEFAULT.
DEFAULT_EXECUTOR_PATH = COMMAND_EXECUTOR_PATH.parent / "default.py"
DEFAULT_EXECUTOR = [sys.executable, "-S", "-E", str(DEFAULT_EXECUTOR_PATH)]
COMMAND_EXECUTOR_CPUS = 0.1
COMMAND_EXECUTOR_MEM_MB = 32.0


def command_executor_info(task: TaskInfo, framework_id: FrameworkID) -> ExecutorInfo:
    command = task.command or CommandInfo()
    shown = command.value or " ".join(command.arguments)
    return ExecutorInfo(
        type=ExecutorType.DEFAULT,
        executor_id=ExecutorID(value=task.task_id.value),
        framework_id=framework_id,
        name=f"Command Executor (Task: {task.task_id.value}) (Command: {shown[:200]})",
        source=task.task_id.value,
        command=CommandInfo(value="mezzo-command-executor"),
    )


def is_default_executor(executor: ExecutorInfo, command: bool) -> bool:
    """An ExecutorInfo the built-in default executor runs (type DEFAULT, not a command task's:
    Mesos's master refuses a DEFAULT executor with a `command`)."""
    return not command and executor.type == ExecutorType.DEFAULT and executor.command is None


def shutdown_grace(executor: ExecutorInfo, default: float) -> float:
    """Seconds between SHUTDOWN and the kill: `ExecutorInfo.shutdown_grace_period`, else the
    agent's `--executor_shutdown_grace_period`."""
    period = executor.shutdown_grace_period
    if period is not None:
        return period.nanoseconds / 1e9
    return default


@dataclass(frozen=True)
class AgentEndpoint:
    """What an executor needs to know about its agent."""

    agent_id: str
    ip: str  # reachable, never 0.0.0.0
    port: int
    work_dir: str


def executor_environment(
    *,
    framework: FrameworkInfo,
    executor: ExecutorInfo,
    sandbox: Path,
    agent: AgentEndpoint,
    shutdown_grace_period: float,
    recovery_timeout: float,
    reregistration_timeout: float,
    http_command_executor: bool,
    base: Mapping[str, str] | None,
    command: bool,
) -> dict[str, str]:
    """The executor's environment (spec §6.1): the agent's own environment (or
    `--executor_environment_variables`), the MESOS_* variables, then CommandInfo.environment
    of a custom executor on top (a command task's environment is applied by the command
    executor to the task, not to itself)."""
    assert framework.id is not None
    env = dict(os.environ if base is None else base)
    checkpoint = bool(framework.checkpoint)
    env.update(
        {
            "MESOS_FRAMEWORK_ID": framework.id.value,
            "MESOS_EXECUTOR_ID": executor.executor_id.value,
            "MESOS_AGENT_ENDPOINT": f"{agent.ip}:{agent.port}",
            "MESOS_DIRECTORY": str(sandbox),
            "MESOS_SANDBOX": str(sandbox),
            "MESOS_CHECKPOINT": "1" if checkpoint else "0",
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": format_duration(shutdown_grace_period),
            "MESOS_SLAVE_ID": agent.agent_id,
            "MESOS_SLAVE_PID": f"slave(1)@{agent.ip}:{agent.port}",
            "MESOS_HTTP_COMMAND_EXECUTOR": "1" if http_command_executor else "0",
            "LIBPROCESS_PORT": "0",
        }
    )
    if checkpoint:
        env["MESOS_RECOVERY_TIMEOUT"] = format_duration(recovery_timeout)
        env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = format_duration(reregistration_timeout)
    else:
        env.pop("MESOS_RECOVERY_TIMEOUT", None)
        env.pop("MESOS_SUBSCRIPTION_BACKOFF_MAX", None)
    if not command and executor.command and executor.command.environment:
        for var in executor.command.environment.variables:
            if var.value is not None:
                env[var.name] = var.value
    return env


def executor_user(
    framework: FrameworkInfo, executor: ExecutorInfo, task: TaskInfo | None, switch_user: bool
) -> str | None:
    """The user to run as: CommandInfo.user, else FrameworkInfo.user (when switching users)."""
    if not switch_user:
        return None
    command = (task.command if task is not None and task.command else None) or executor.command
    user = (command.user if command else None) or framework.user
    return user or None


def volume_mounts(work_dir: str, resources: Resources) -> tuple[VolumeMount, ...]:
    """The persistent volumes in `resources` as the filesystem isolators mount them (a shared
    volume used by several tasks of the executor appears once per container path)."""
    mounts: dict[tuple[str, str], VolumeMount] = {}
    for item in resources.persistent_volumes():
        info = disk_of(item.key)
        if info is None or info.volume is None:
            continue
        source = volume_path(work_dir, item)
        target = info.volume.container_path
        mounts.setdefault((source, target), VolumeMount(source, target, info.volume.mode == "RO"))
    return tuple(mounts.values())


def container_config(
    *,
    executor: ExecutorInfo,
    command: bool,
    command_executor_argv: list[str] | None,
    sandbox: Path,
    env: dict[str, str],
    user: str | None,
    resources: Resources,
    pids_max: int | None,
    rlimits: Mapping[str, tuple[int | None, int | None]] | None = None,
    work_dir: str | None = None,
) -> ContainerConfig:
    config = _container_config(
        executor=executor, command=command, command_executor_argv=command_executor_argv,
        sandbox=sandbox, env=env, user=user, resources=resources, pids_max=pids_max,
    )
    if work_dir is not None:
        mounts = volume_mounts(work_dir, resources)
        if mounts:
            config = replace(config, volumes=mounts)
    # ContainerInfo.rlimit_info, applied by the posix/rlimits isolator (ignored without it).
    return replace(config, rlimits=dict(rlimits)) if rlimits else config


def _container_config(
    *,
    executor: ExecutorInfo,
    command: bool,
    command_executor_argv: list[str] | None,
    sandbox: Path,
    env: dict[str, str],
    user: str | None,
    resources: Resources,
    pids_max: int | None,
) -> ContainerConfig:
    cpus = resources.cpus() or None
    mem = resources.mem() or None
    if command:
        argv = list(command_executor_argv or DEFAULT_COMMAND_EXECUTOR)
        cpus = (cpus or 0.0) + COMMAND_EXECUTOR_CPUS
        mem = (mem or 0.0) + COMMAND_EXECUTOR_MEM_MB
        return ContainerConfig(
            sandbox=sandbox, argv=argv, env=env, user=user, cpus=cpus, mem_mb=mem,
            pids_max=pids_max, fork_server=command_executor_argv is None,
        )
    if is_default_executor(executor, command):
        # Its container holds the executor and every task of its groups: no allowance on top.
        return ContainerConfig(
            sandbox=sandbox, argv=list(DEFAULT_EXECUTOR), env=env, user=user, cpus=cpus,
            mem_mb=mem, pids_max=pids_max, fork_server=True,
        )
    info = executor.command or CommandInfo()
    if info.shell:
        return ContainerConfig(
            sandbox=sandbox, shell=info.value or "", env=env, user=user, cpus=cpus, mem_mb=mem,
            pids_max=pids_max,
        )
    argv = [info.value or "", *info.arguments[1:]] if info.arguments else [info.value or ""]
    return ContainerConfig(
        sandbox=sandbox, argv=argv, env=env, user=user, cpus=cpus, mem_mb=mem, pids_max=pids_max
    )
