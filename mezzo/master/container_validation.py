"""The master's checks of a launch's ContainerInfos (pure; Mesos's rules and messages).

What the master can know is wrong with a container regardless of the agent it lands on
(Mesos's `master/validation.cpp` and `common/validation.cpp`): a DOCKER container without
`docker`, a volume that is not exactly one of host_path / image / source, a Docker parameter
`name`, and, for task groups, Docker on a task or the executor and a DEFAULT executor with a
non-MESOS container or an image. Such tasks end TASK_ERROR at the master. What only the agent
knows (it has no Docker, provisioner, volume or network support) is checked by the agent
(`mezzo.agent.container_support`) and ends TASK_FAILED there.
"""

from __future__ import annotations

from mezzo.api.common import ContainerInfo, ContainerType, ExecutorInfo, ExecutorType, TaskInfo

_SOURCE_FIELDS = {
    "DOCKER_VOLUME": "docker_volume",
    "HOST_PATH": "host_path",
    "SANDBOX_PATH": "sandbox_path",
    "SECRET": "secret",
    "CSI_VOLUME": "csi_volume",
}


def container_problem(container: ContainerInfo) -> str | None:
    """Mesos's `validateContainerInfo`: the first problem, or None."""
    for volume in container.volumes:
        count = sum(x is not None for x in (volume.host_path, volume.image, volume.source))
        if count != 1:
            return "Invalid volume: Only one of them should be set: 'host_path', 'image' and 'source'"
        if volume.source is not None:
            kind = volume.source.get("type")
            field = _SOURCE_FIELDS.get(str(kind))
            if field is None:
                return "Invalid volume: 'source.type' is unknown"
            if volume.source.get(field) is None:
                return f"Invalid volume: 'source.{field}' is not set for {kind} volume"
    if container.type == ContainerType.DOCKER:
        if container.docker is None:
            return "DockerInfo 'docker' is not set for DOCKER typed ContainerInfo"
        for parameter in container.docker.parameters:
            if parameter.key == "name":
                return "Parameter in DockerInfo must not be 'name'"
    return None


def task_container_problem(task: TaskInfo) -> str | None:
    """The problem of a task's (and its executor's) ContainerInfo, Mesos's wording."""
    if task.container is not None:
        problem = container_problem(task.container)
        if problem:
            return f"Task's `ContainerInfo` is invalid: {problem}"
    if task.executor is not None:
        return executor_container_problem(task.executor)
    return None


def executor_container_problem(executor: ExecutorInfo) -> str | None:
    if executor.container is None:
        return None
    problem = container_problem(executor.container)
    if problem:
        return f"Executor's `ContainerInfo` is invalid: {problem}"
    return None


def group_container_problem(executor: ExecutorInfo, tasks: list[TaskInfo]) -> str | None:
    """LAUNCH_GROUP's container rules: nested containers and the DEFAULT executor."""
    problem = executor_container_problem(executor)
    if problem:
        return problem
    container = executor.container
    if container is not None:
        if container.type == ContainerType.DOCKER:
            return "Docker ContainerInfo is not supported on the executor"
        if executor.type == ExecutorType.DEFAULT and container.mesos is not None and container.mesos.image:
            return "'ExecutorInfo.container.mesos.image' must not be set for 'DEFAULT' executor"
    for task in tasks:
        if task.container is None:
            continue
        problem = container_problem(task.container)
        if problem:
            return f"Task's `ContainerInfo` is invalid: {problem}"
        if task.container.type == ContainerType.DOCKER:
            return "Docker ContainerInfo is not supported on the task"
    return None
