"""Checkpoints: what the agent writes under `<work_dir>/meta` and reads back on recovery.

The file layout is `mezzo.agent.containerizer.paths` (the one documented tree); this module
owns the file *contents* and how they are written:

- `*.info` files hold one JSON record (AgentInfo, FrameworkInfo, ExecutorInfo, TaskInfo),
  written atomically (temporary file + rename) so a crash leaves the old or the new version;
- `task.updates` is an append-only log, one JSON object per line: `{"update": TaskStatus}`
  when the agent accepts an update, `{"ack": "<b64 uuid>"}` when the scheduler acknowledged
  one. A torn last line (crash mid-write) is ignored on replay;
- `pids/forked.pid` holds the pid of the executor's container root; `command.marker` marks a
  run of the built-in command executor; `containers/<container_id>/pid` is written for *every*
  container (checkpointing or not) so a restarted agent can find and kill the executors of
  non-checkpointing frameworks, which must not outlive it.

Writes are flushed but not fsync'ed: they survive a crash of the agent (kill -9), which is what
recovery is for; after a machine crash the executors are gone as well.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mezzo.agent.containerizer import paths
from mezzo.agent.operations import (
    OperationCheckpoint,
    RemoveOperationCheckpoint,
    ResourcesCheckpoint,
)
from mezzo.agent.outbox import (
    AckRecord,
    AgentRecord,
    CheckpointRecord,
    ContainerPidRecord,
    ExecutorRecord,
    FrameworkRecord,
    RemoveContainerRecord,
    RemoveExecutorRecord,
    RemoveFrameworkRecord,
    TaskRecord,
    UpdateRecord,
)
from mezzo.api.codec import decode, encode, to_builtins
from mezzo.api.common import (
    AgentInfo,
    ExecutorInfo,
    FrameworkInfo,
    Operation,
    Resource,
    TaskInfo,
    TaskStatus,
)
from mezzo.core.errors import DecodeError

T = TypeVar("T")


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _read_record(path: Path, type_: type[T]) -> T | None:
    try:
        return decode(path.read_bytes(), type_)
    except (OSError, DecodeError):
        return None


def _point_link(link: Path, target: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


# --------------------------------------------------------------------------- writing


class Checkpointer:
    """Writes the checkpoint files of one agent id (see the module docstring)."""

    def __init__(self, work_dir: str | Path) -> None:
        self.work_dir = Path(work_dir)
        self.agent_id: str | None = None

    def write(self, record: CheckpointRecord) -> None:
        """Carry out one checkpoint effect of the agent core (`mezzo.agent.outbox`)."""
        match record:
            case ResourcesCheckpoint(resources):
                write_atomic(paths.resources_info_path(self.work_dir),
                             json.dumps(to_builtins(resources)).encode())
            case OperationCheckpoint(operation):
                assert self.agent_id is not None
                write_atomic(paths.operation_info_path(self.work_dir, self.agent_id,
                                                       operation.uuid.value.hex()), encode(operation))
            case RemoveOperationCheckpoint(uuid):
                assert self.agent_id is not None
                shutil.rmtree(paths.operation_info_path(self.work_dir, self.agent_id, uuid.hex()).parent,
                              ignore_errors=True)
            case AgentRecord(info):
                self.agent(info)
            case FrameworkRecord(info):
                self.framework(info)
            case ExecutorRecord(framework_id, info, container_id, pid, command):
                self.executor(framework_id, info, container_id, pid, command)
            case TaskRecord(framework_id, executor_id, container_id, task):
                self.task(framework_id, executor_id, container_id, task)
            case UpdateRecord(framework_id, executor_id, container_id, status):
                self.update(framework_id, executor_id, container_id, status)
            case AckRecord(framework_id, executor_id, container_id, task_id, uuid):
                self.ack(framework_id, executor_id, container_id, task_id, uuid)
            case RemoveExecutorRecord(framework_id, executor_id):
                self.remove_executor(framework_id, executor_id)
            case RemoveFrameworkRecord(framework_id):
                self.remove_framework(framework_id)
            case ContainerPidRecord(container_id, pid):
                self.container_pid(container_id, pid)
            case RemoveContainerRecord(container_id):
                self.remove_container(container_id)

    def agent(self, info: AgentInfo) -> None:
        assert info.id is not None
        self.agent_id = info.id.value
        write_atomic(paths.agent_info_path(self.work_dir, self.agent_id), encode(info))
        write_atomic(paths.boot_id_path(self.work_dir), boot_id().encode())
        _point_link(paths.latest_agent_path(self.work_dir), self.agent_id)

    def framework(self, info: FrameworkInfo) -> None:
        assert self.agent_id is not None and info.id is not None
        write_atomic(
            paths.framework_info_path(self.work_dir, self.agent_id, info.id.value), encode(info)
        )

    def executor(
        self, framework_id: str, info: ExecutorInfo, container_id: str, pid: int, command: bool
    ) -> None:
        assert self.agent_id is not None
        a, e = self.agent_id, info.executor_id.value
        write_atomic(paths.executor_info_path(self.work_dir, a, framework_id, e), encode(info))
        run = paths.run_meta_dir(self.work_dir, a, framework_id, e, container_id)
        write_atomic(
            paths.forked_pid_path(self.work_dir, a, framework_id, e, container_id),
            str(pid).encode(),
        )
        write_atomic(paths.http_marker_path(self.work_dir, a, framework_id, e, container_id), b"")
        if command:
            write_atomic(run / "command.marker", b"")
        _point_link(run.parent / "latest", container_id)

    def task(self, framework_id: str, executor_id: str, container_id: str, task: TaskInfo) -> None:
        assert self.agent_id is not None
        path = paths.task_info_path(
            self.work_dir, self.agent_id, framework_id, executor_id, container_id, task.task_id.value
        )
        write_atomic(path, encode(task))

    def _updates_path(self, fw: str, ex: str, cid: str, task_id: str) -> Path:
        assert self.agent_id is not None
        return paths.task_updates_path(self.work_dir, self.agent_id, fw, ex, cid, task_id)

    def update(self, fw: str, ex: str, cid: str, status: TaskStatus) -> None:
        self._append(self._updates_path(fw, ex, cid, status.task_id.value), {"update": status})

    def ack(self, fw: str, ex: str, cid: str, task_id: str, uuid: bytes) -> None:
        self._append(
            self._updates_path(fw, ex, cid, task_id), {"ack": base64.b64encode(uuid).decode()}
        )

    @staticmethod
    def _append(path: Path, record: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(to_builtins(record), separators=(",", ":")) + "\n"
        with open(path, "a") as f:
            f.write(line)

    def remove_executor(self, framework_id: str, executor_id: str) -> None:
        if self.agent_id is None:
            return
        shutil.rmtree(
            paths.executor_meta_dir(self.work_dir, self.agent_id, framework_id, executor_id),
            ignore_errors=True,
        )

    def remove_framework(self, framework_id: str) -> None:
        if self.agent_id is None:
            return
        shutil.rmtree(
            paths.framework_meta_dir(self.work_dir, self.agent_id, framework_id),
            ignore_errors=True,
        )

    # Runtime pid files, written for every container.
    def container_pid(self, container_id: str, pid: int) -> None:
        write_atomic(paths.container_pid_path(self.work_dir, container_id), str(pid).encode())

    def remove_container(self, container_id: str) -> None:
        shutil.rmtree(paths.container_runtime_dir(self.work_dir, container_id), ignore_errors=True)


# --------------------------------------------------------------------------- reading


@dataclass
class TaskCheckpoint:
    info: TaskInfo | None
    updates: list[tuple[str, TaskStatus | bytes]] = field(default_factory=list)


@dataclass
class RunState:
    container_id: str
    pid: int | None
    command: bool
    tasks: dict[str, TaskCheckpoint] = field(default_factory=dict)


@dataclass
class ExecutorState:
    info: ExecutorInfo
    run: RunState | None


@dataclass
class FrameworkState:
    info: FrameworkInfo
    executors: dict[str, ExecutorState] = field(default_factory=dict)


@dataclass
class AgentState:
    info: AgentInfo
    rebooted: bool
    frameworks: dict[str, FrameworkState] = field(default_factory=dict)
    checkpointed_resources: list[Resource] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)


def read_updates(path: Path) -> list[tuple[str, TaskStatus | bytes]]:
    out: list[tuple[str, TaskStatus | bytes]] = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            record = json.loads(line)
            if "update" in record:
                out.append(("update", decode(json.dumps(record["update"]), TaskStatus)))
            elif "ack" in record:
                out.append(("ack", base64.b64decode(record["ack"])))
        except (ValueError, DecodeError):
            continue  # a torn last line
    return out


def recover(work_dir: str | Path) -> AgentState | None:
    """Everything checkpointed for the latest agent id, or None for a fresh agent."""
    work_dir = Path(work_dir)
    latest = paths.latest_agent_path(work_dir)
    try:
        agent_id = os.readlink(latest)
    except OSError:
        return None
    info = _read_record(paths.agent_info_path(work_dir, agent_id), AgentInfo)
    if info is None:
        return None
    try:
        old_boot = paths.boot_id_path(work_dir).read_text().strip()
    except OSError:
        old_boot = ""
    state = AgentState(info, rebooted=bool(old_boot) and old_boot != boot_id())
    state.checkpointed_resources = read_checkpointed_resources(work_dir)
    for op_dir in sorted(_subdirs(paths.operations_dir(work_dir, agent_id))):
        operation = _read_record(op_dir / "operation.info", Operation)
        if operation is not None:
            state.operations.append(operation)
    frameworks_dir = paths.agent_meta_dir(work_dir, agent_id) / "frameworks"
    for fw_dir in sorted(_subdirs(frameworks_dir)):
        fw_info = _read_record(fw_dir / "framework.info", FrameworkInfo)
        if fw_info is None:
            continue
        fw = state.frameworks[fw_dir.name] = FrameworkState(fw_info)
        for ex_dir in sorted(_subdirs(fw_dir / "executors")):
            ex_info = _read_record(ex_dir / "executor.info", ExecutorInfo)
            if ex_info is None:
                continue
            fw.executors[ex_dir.name] = ExecutorState(ex_info, _read_run(ex_dir / "runs"))
    return state


def read_checkpointed_resources(work_dir: str | Path) -> list[Resource]:
    """`meta/resources/resources.info`: the dynamically reserved and persistent resources."""
    try:
        return decode(paths.resources_info_path(work_dir).read_bytes(), list[Resource])
    except (OSError, DecodeError):
        return []


def _read_run(runs: Path) -> RunState | None:
    try:
        container_id = os.readlink(runs / "latest")
    except OSError:
        return None
    run_dir = runs / container_id
    try:
        pid: int | None = int((run_dir / "pids" / "forked.pid").read_text().strip())
    except (OSError, ValueError):
        pid = None
    run = RunState(container_id, pid, (run_dir / "command.marker").exists())
    for task_dir in sorted(_subdirs(run_dir / "tasks")):
        run.tasks[task_dir.name] = TaskCheckpoint(
            _read_record(task_dir / "task.info", TaskInfo), read_updates(task_dir / "task.updates")
        )
    return run


def container_pids(work_dir: str | Path) -> dict[str, int]:
    """container id -> root pid, from the runtime pid files of every container."""
    out: dict[str, int] = {}
    for d in _subdirs(paths.containers_dir(work_dir)):
        with contextlib.suppress(OSError, ValueError):
            out[d.name] = int((d / "pid").read_text().strip())
    return out


def _subdirs(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
