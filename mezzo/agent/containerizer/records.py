"""Plain records the containerizer, its launcher and its isolators exchange.

These are deliberately independent of the wire types in ``mezzo.api``: the agent translates a
TaskInfo/ExecutorInfo into a :class:`ContainerConfig` and a :class:`Termination` back into a
TaskStatus. Resource limits are plain numbers (cpus, MB), as in Mesos's scalar resources.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from mezzo.core.errors import MezzoError

# Mesos's TaskStatus.Reason names for container limitations (kept as strings: no api import).
REASON_CONTAINER_LIMITATION_MEMORY = "REASON_CONTAINER_LIMITATION_MEMORY"
REASON_CONTAINER_LIMITATION = "REASON_CONTAINER_LIMITATION"


class LaunchError(MezzoError):
    """A container could not be prepared, isolated or started; the message says which step."""


@dataclass(frozen=True)
class ContainerStdio:
    """The standard streams of a container whose I/O the agent carries (`io_switchboard`).

    ``stdin``/``stdout``/``stderr`` are the child's ends (a pty's slave, or pipe ends); ``feed``
    is the agent's end of stdin (the pipe's write end, or the pty master), through which the
    launcher releases the barrier when there is no pty; ``tty`` is the pty slave's path, which the command re-opens
    so that the pty becomes its controlling terminal.
    """

    stdin: int
    stdout: int
    stderr: int
    feed: int
    tty: str | None = None


@dataclass(frozen=True)
class VolumeMount:
    """A persistent volume in a container: its directory on the agent (`source`), where it
    appears relative to the sandbox (`target`), read-only or not (filesystem isolators)."""

    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerConfig:
    """Everything needed to start one container.

    Exactly one of ``argv`` (exec'd directly) or ``shell`` (run by ``/bin/sh -c``) is set.
    ``env`` is the *complete* environment (the agent decides what is inherited). ``user``
    switches user when the agent runs as root. Limits are optional: an isolator ignores the
    ones it does not enforce. ``rlimits`` maps a name (``"nofile"`` or Mesos's
    ``"RLMT_NOFILE"``) to ``(soft, hard)``, ``None`` meaning unlimited. ``volumes`` are the
    persistent volumes to show in the sandbox (the filesystem isolators). ``fork_server``
    marks ``argv`` as the built-in command executor, which the launcher may fork from its fork
    server instead of exec'ing (the same process contract, without an interpreter start-up).

    Nested containers (the agent operator API's LAUNCH_NESTED_CONTAINER and sessions) set
    ``parent`` to the parent container's id: isolators put them under the parent's isolation
    where they can (the cgroups isolators add them to the parent's cgroups). ``stdio`` gives the
    container its own stdin/stdout/stderr (pipes or a pty, `io_switchboard`) instead of /dev/null
    and the container logger's files. ``ports`` are the allocated `ports` ranges (inclusive),
    which the `network/ports` isolator holds the container to; None when none were allocated.
    """

    sandbox: Path
    argv: Sequence[str] | None = None
    shell: str | None = None
    env: Mapping[str, str] | None = None
    user: str | None = None
    cpus: float | None = None
    mem_mb: float | None = None
    pids_max: int | None = None
    rlimits: Mapping[str, tuple[int | None, int | None]] = field(default_factory=dict)
    fork_server: bool = False
    parent: str | None = None
    stdio: ContainerStdio | None = None
    ports: tuple[tuple[int, int], ...] | None = None
    volumes: Sequence[VolumeMount] = ()

    def __post_init__(self) -> None:
        if (self.argv is None) == (self.shell is None):
            raise LaunchError("exactly one of argv or shell must be given")
        if self.argv is not None and len(self.argv) == 0:
            raise LaunchError("argv must not be empty")
        object.__setattr__(self, "sandbox", Path(self.sandbox))

    def command(self) -> list[str]:
        """The argv to exec (a shell command becomes ``/bin/sh -c <command>``)."""
        if self.shell is not None:
            return ["/bin/sh", "-c", self.shell]
        assert self.argv is not None
        return list(self.argv)


@dataclass(frozen=True)
class Limitation:
    """An isolator's report that a container broke a limit; the container is then destroyed."""

    reason: str
    message: str
    resources: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Termination:
    """How a container ended.

    ``status`` is the raw wait status (as in Mesos's ``ContainerTermination.status``), or None
    when unknown: a container recovered after an agent restart is not our child, so its exit
    status cannot be collected.
    """

    status: int | None
    limitation: Limitation | None = None
    message: str = ""

    @property
    def exit_code(self) -> int | None:
        if self.status is not None and os.WIFEXITED(self.status):
            return os.WEXITSTATUS(self.status)
        return None

    @property
    def signal(self) -> int | None:
        if self.status is not None and os.WIFSIGNALED(self.status):
            return os.WTERMSIG(self.status)
        return None

    def describe(self) -> str:
        """A Mesos-style sentence: 'exited with status 0' / 'terminated with signal SIGKILL'."""
        if self.exit_code is not None:
            return f"exited with status {self.exit_code}"
        if self.signal is not None:
            return f"terminated with signal {signal.Signals(self.signal).name}"
        return "exit status unknown"


@dataclass
class ResourceStatistics:
    """Usage of one container; field names follow Mesos's ``ResourceStatistics``.

    Every field is optional: each isolator fills what it measures and :meth:`merge` combines
    them (a later isolator's value wins, so cgroups accounting beats /proc sampling).
    """

    timestamp: float | None = None
    processes: int | None = None
    threads: int | None = None
    cpus_user_time_secs: float | None = None
    cpus_system_time_secs: float | None = None
    cpus_limit: float | None = None
    cpus_nr_periods: int | None = None
    cpus_nr_throttled: int | None = None
    cpus_throttled_time_secs: float | None = None
    mem_rss_bytes: int | None = None
    mem_total_bytes: int | None = None
    mem_cache_bytes: int | None = None
    mem_max_bytes: int | None = None
    mem_limit_bytes: int | None = None
    mem_soft_limit_bytes: int | None = None
    pids_current: int | None = None
    pids_limit: int | None = None

    def merge(self, other: ResourceStatistics) -> ResourceStatistics:
        for f in fields(self):
            value = getattr(other, f.name)
            if value is not None:
                setattr(self, f.name, value)
        return self

    def to_dict(self) -> dict[str, float | int]:
        """Only the measured fields, ready for a JSON endpoint."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True)
class ContainerState:
    """What the agent checkpointed about a live container, handed back on recovery."""

    container_id: str
    pid: int
    config: ContainerConfig | None = None


@dataclass
class LaunchInfo:
    """What an isolator's ``prepare`` contributes to the launch.

    ``wrapper`` is prepended to the command (e.g. ``unshare --pid --fork ...``); ``env`` is
    merged into the environment.
    """

    wrapper: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
