"""The on-disk layout under the agent's ``--work_dir``: sandboxes, checkpoints, runtime files.

This module owns every path the agent writes; nothing else joins path segments by hand. The
layout follows Mesos (``src/slave/paths.hpp``) so operators find sandboxes where they expect
them; directory names keep Mesos's spelling (``slaves``) because tools depend on it.

    <work_dir>/
    ├── slaves/<agent_id>/                                   sandboxes, garbage-collected by age
    │   └── frameworks/<framework_id>/
    │       └── executors/<executor_id>/
    │           └── runs/
    │               ├── latest -> <container_id>             symlink to the newest run
    │               └── <container_id>/                      THE SANDBOX (cwd of the executor)
    │                   ├── stdout                           executor stdout (appended)
    │                   ├── stderr                           executor stderr (appended)
    │                   └── tasks/<task_id>/                 a default executor's task: its
    │                       ├── stdout                       nested container's sandbox (its
    │                       └── stderr                       cwd, MESOS_SANDBOX, fetched URIs)
    ├── meta/                                                checkpoints (agent recovery)
    │   ├── boot_id                                          host boot id at checkpoint time
    │   ├── resources/resources.info                         checkpointed resources (JSON list:
    │   │                                                    dynamic reservations, volumes)
    │   └── slaves/
    │       ├── latest -> <agent_id>                         symlink to the current agent id
    │       └── <agent_id>/
    │           ├── slave.info                               AgentInfo
    │           ├── operations/<uuid>/operation.info         an operation not yet acknowledged
    │           └── frameworks/<framework_id>/
    │               ├── framework.info                       FrameworkInfo
    │               ├── framework.pid                        scheduler endpoint (legacy)
    │               └── executors/<executor_id>/
    │                   ├── executor.info                    ExecutorInfo
    │                   └── runs/
    │                       ├── latest -> <container_id>
    │                       └── <container_id>/
    │                           ├── pids/forked.pid          pid of the container's root process
    │                           ├── pids/libprocess.pid      executor endpoint (legacy)
    │                           ├── http.marker              executor speaks the v1 HTTP API
    │                           └── tasks/<task_id>/
    │                               ├── task.info            TaskInfo
    │                               └── task.updates         status updates + acks (append log)
    └── containers/<container_id>/                           containerizer runtime files
        ├── pid                                              pid of the container's root process
        └── termination                                      how the container ended (if known)

The agent fills the checkpoint files; this module only names them. Ids become single path
segments, so :func:`segment` rejects empty ids, ``.``/``..`` and ids containing ``/`` or NUL.
"""

from __future__ import annotations

import os
from pathlib import Path

from mezzo.core.errors import ValidationError

StrPath = str | os.PathLike[str]


def segment(kind: str, value: str) -> str:
    """``value`` as one safe path segment; ValidationError naming ``kind`` otherwise."""
    if not value or value in (".", "..") or "/" in value or "\0" in value:
        raise ValidationError(f"{kind} {value!r} cannot be used as a path segment")
    return value


# --- sandboxes -----------------------------------------------------------------------------


def agent_dir(work_dir: StrPath, agent_id: str) -> Path:
    return Path(work_dir) / "slaves" / segment("agent id", agent_id)


def framework_dir(work_dir: StrPath, agent_id: str, framework_id: str) -> Path:
    return agent_dir(work_dir, agent_id) / "frameworks" / segment("framework id", framework_id)


def executor_dir(work_dir: StrPath, agent_id: str, framework_id: str, executor_id: str) -> Path:
    return (
        framework_dir(work_dir, agent_id, framework_id)
        / "executors"
        / segment("executor id", executor_id)
    )


def executor_runs_dir(
    work_dir: StrPath, agent_id: str, framework_id: str, executor_id: str
) -> Path:
    return executor_dir(work_dir, agent_id, framework_id, executor_id) / "runs"


def sandbox_dir(
    work_dir: StrPath, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> Path:
    """The sandbox of one executor run: its cwd, holding ``stdout`` and ``stderr``."""
    return Path(sandbox_path(work_dir, agent_id, framework_id, executor_id, container_id))


def sandbox_path(
    work_dir: StrPath, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> str:
    """`sandbox_dir` as a string (the agent core computes one per launch: building a Path
    from parts costs more than the rest of a launch decision)."""
    return (
        f"{os.fspath(work_dir)}/slaves/{segment('agent id', agent_id)}"
        f"/frameworks/{segment('framework id', framework_id)}"
        f"/executors/{segment('executor id', executor_id)}"
        f"/runs/{segment('container id', container_id)}"
    )


def stdout_path(sandbox: StrPath) -> Path:
    return Path(sandbox) / "stdout"


def stderr_path(sandbox: StrPath) -> Path:
    return Path(sandbox) / "stderr"


def task_sandbox(executor_sandbox: StrPath, task_id: str) -> str:
    """The sandbox of a task the default executor runs as a nested container:
    ``<executor sandbox>/tasks/<task_id>`` (the executor, `mezzo/executor/default_core.py`,
    uses the same layout; it cannot import this module)."""
    return f"{executor_sandbox}/tasks/{task_id}"


def create_sandbox(
    work_dir: StrPath, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> Path:
    """Create the sandbox directory and point the executor's ``runs/latest`` at it."""
    path = sandbox_dir(work_dir, agent_id, framework_id, executor_id, container_id)
    path.mkdir(parents=True, exist_ok=True)
    _point_latest(path.parent / "latest", container_id)
    return path


# --- checkpoints (meta) --------------------------------------------------------------------


def meta_dir(work_dir: StrPath) -> Path:
    return Path(work_dir) / "meta"


def boot_id_path(work_dir: StrPath) -> Path:
    return meta_dir(work_dir) / "boot_id"


def resources_info_path(work_dir: StrPath) -> Path:
    return meta_dir(work_dir) / "resources" / "resources.info"


def latest_agent_path(work_dir: StrPath) -> Path:
    """Symlink naming the agent id the meta directory currently belongs to."""
    return meta_dir(work_dir) / "slaves" / "latest"


def agent_meta_dir(work_dir: StrPath, agent_id: str) -> Path:
    return meta_dir(work_dir) / "slaves" / segment("agent id", agent_id)


def operations_dir(work_dir: StrPath, agent_id: str) -> Path:
    return agent_meta_dir(work_dir, agent_id) / "operations"


def operation_info_path(work_dir: StrPath, agent_id: str, uuid_hex: str) -> Path:
    return operations_dir(work_dir, agent_id) / segment("operation uuid", uuid_hex) / "operation.info"


def agent_info_path(work_dir: StrPath, agent_id: str) -> Path:
    return agent_meta_dir(work_dir, agent_id) / "slave.info"


def framework_meta_dir(work_dir: StrPath, agent_id: str, framework_id: str) -> Path:
    return agent_meta_dir(work_dir, agent_id) / "frameworks" / segment("framework id", framework_id)


def framework_info_path(work_dir: StrPath, agent_id: str, framework_id: str) -> Path:
    return framework_meta_dir(work_dir, agent_id, framework_id) / "framework.info"


def framework_pid_path(work_dir: StrPath, agent_id: str, framework_id: str) -> Path:
    return framework_meta_dir(work_dir, agent_id, framework_id) / "framework.pid"


def executor_meta_dir(
    work_dir: StrPath, agent_id: str, framework_id: str, executor_id: str
) -> Path:
    return (
        framework_meta_dir(work_dir, agent_id, framework_id)
        / "executors"
        / segment("executor id", executor_id)
    )


def executor_info_path(
    work_dir: StrPath, agent_id: str, framework_id: str, executor_id: str
) -> Path:
    return executor_meta_dir(work_dir, agent_id, framework_id, executor_id) / "executor.info"


def run_meta_dir(
    work_dir: StrPath, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> Path:
    return (
        executor_meta_dir(work_dir, agent_id, framework_id, executor_id)
        / "runs"
        / segment("container id", container_id)
    )


def forked_pid_path(
    work_dir: StrPath, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> Path:
    return (
        run_meta_dir(work_dir, agent_id, framework_id, executor_id, container_id)
        / "pids"
        / "forked.pid"
    )


def libprocess_pid_path(
    work_dir: StrPath, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> Path:
    return (
        run_meta_dir(work_dir, agent_id, framework_id, executor_id, container_id)
        / "pids"
        / "libprocess.pid"
    )


def http_marker_path(
    work_dir: StrPath, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> Path:
    return run_meta_dir(work_dir, agent_id, framework_id, executor_id, container_id) / (
        "http.marker"
    )


def task_meta_dir(
    work_dir: StrPath,
    agent_id: str,
    framework_id: str,
    executor_id: str,
    container_id: str,
    task_id: str,
) -> Path:
    return (
        run_meta_dir(work_dir, agent_id, framework_id, executor_id, container_id)
        / "tasks"
        / segment("task id", task_id)
    )


def task_info_path(
    work_dir: StrPath,
    agent_id: str,
    framework_id: str,
    executor_id: str,
    container_id: str,
    task_id: str,
) -> Path:
    return (
        task_meta_dir(work_dir, agent_id, framework_id, executor_id, container_id, task_id)
        / "task.info"
    )


def task_updates_path(
    work_dir: StrPath,
    agent_id: str,
    framework_id: str,
    executor_id: str,
    container_id: str,
    task_id: str,
) -> Path:
    return (
        task_meta_dir(work_dir, agent_id, framework_id, executor_id, container_id, task_id)
        / "task.updates"
    )


# --- containerizer runtime files -----------------------------------------------------------


def containers_dir(work_dir: StrPath) -> Path:
    return Path(work_dir) / "containers"


def container_runtime_dir(work_dir: StrPath, container_id: str) -> Path:
    return containers_dir(work_dir) / segment("container id", container_id)


def container_pid_path(work_dir: StrPath, container_id: str) -> Path:
    return container_runtime_dir(work_dir, container_id) / "pid"


def container_termination_path(work_dir: StrPath, container_id: str) -> Path:
    return container_runtime_dir(work_dir, container_id) / "termination"


def _point_latest(link: Path, target: str) -> None:
    """Atomically repoint ``link`` at ``target`` (rename over the old symlink)."""
    try:  # a first run (every command task's executor is new): one syscall, atomic as well
        os.symlink(target, link)
        return
    except FileExistsError:
        pass
    tmp = link.with_name(f".latest.{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(link)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
