"""Nested and standalone containers of the agent operator API: the decisions (no I/O).

Mesos's agent API lets an operator (or an executor, such as the default executor, or a CLI's
`task exec`) run containers beside the ones the agent starts for executors:

- a **nested** container has a `ContainerID` whose `parent` is an existing container: an
  executor's container (as the agent reports it in `container_status.container_id` of its
  tasks' updates), a standalone container, or another nested container;
- a **standalone** container (LAUNCH_CONTAINER with no parent) has no executor, no tasks and
  no framework: it is supervised by whoever launched it.

`ContainerTree` owns the records of those containers and every decision about them: whether a
launch is valid and where it runs (its sandbox, working directory, class, TTY), which containers
a kill, wait or remove names, which containers die with an ending parent. The HTTP shell
(`mezzo.agent.container_api`) carries the decisions out with the containerizer and the I/O
switchboard. It never changes the agent core's state: executor containers are only *read*,
through the `RootLookup` the shell passes in.

Names: the containerizer knows a container by one string, Mesos's `stringify(ContainerID)`:
the ids from the root down joined with `.` (`<executor container>.<child>.<grandchild>`);
`.` may not appear in an id, so the name is unambiguous.

Sandboxes (Mesos's `containerizer::paths::getSandboxPath`): a nested container's sandbox is
`<parent's sandbox>/containers/<id>`; a session (LAUNCH_NESTED_CONTAINER_SESSION, Mesos's DEBUG
class) works in its parent's sandbox, with `MESOS_SANDBOX` pointing there, as Mesos's debug
containers do, and keeps its logs in its own; a standalone container's sandbox is
`<work_dir>/standalone/<id>` (Mesos: `<work_dir>/containers/<id>`, which is mezzo's runtime
directory: `mezzo.agent.containerizer.paths`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mezzo.api.common import CommandInfo, ContainerID, ContainerInfo, ContainerType
from mezzo.core.errors import CallRefused

# Mesos's MAX_CONTAINER_ID_LENGTH.
MAX_CONTAINER_ID_LENGTH = 242
# Finished containers kept for WAIT (Mesos keeps their termination until REMOVE).
MAX_TERMINATED = 1000
# The message Mesos's I/O switchboard gives when a container has no switchboard server (the
# Mesos CLI matches it, with status 500, to say "launched without a TTY").
NO_SWITCHBOARD = "I/O switchboard server was disabled for this container"


class ContainerClass(StrEnum):
    DEFAULT = "DEFAULT"
    DEBUG = "DEBUG"  # a session: tied to its connection, shares the parent's sandbox


class Phase(StrEnum):
    LAUNCHING = "LAUNCHING"
    RUNNING = "RUNNING"
    TERMINATED = "TERMINATED"


@dataclass(frozen=True)
class Root:
    """A top-level container the agent runs for an executor, as the core knows it."""

    name: str  # its containerizer id (= ContainerID.value)
    sandbox: str
    pid: int | None  # None while it is still being launched


RootLookup = Callable[[str], "Root | None"]


@dataclass(frozen=True)
class WaitResult:
    """What WAIT_CONTAINER answers: the raw wait status (None if unknown) and a message."""

    exit_status: int | None
    message: str = ""
    reason: str | None = None
    limited_ports: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class LaunchPlan:
    """What the shell starts: everything decided, nothing done."""

    name: str
    parent: str | None  # the parent's name (None: standalone)
    sandbox: str  # created by the shell; logs go here
    workdir: str  # the working directory (the parent's sandbox for a session)
    mesos_sandbox: str  # MESOS_SANDBOX
    container_class: ContainerClass
    tty: bool
    window: tuple[int, int] | None  # rows, columns from TTYInfo.window_size
    argv: list[str] | None
    shell: str | None
    environment: dict[str, str]  # CommandInfo.environment (applied last)
    user: str | None  # CommandInfo.user (the shell applies it only with --switch_user)
    cpus: float | None  # standalone containers' resources
    mem_mb: float | None

    @property
    def switchboard(self) -> bool:
        """Mesos's `IOSwitchboard::requiresServer`: a TTY or a session."""
        return self.tty or self.container_class == ContainerClass.DEBUG


@dataclass
class Container:
    name: str
    container_id: ContainerID
    parent: str | None
    root: str
    plan: LaunchPlan
    phase: Phase = Phase.LAUNCHING
    pid: int | None = None
    result: WaitResult | None = None
    children: set[str] = field(default_factory=set)


def container_name(container_id: ContainerID) -> str:
    """Mesos's `stringify(ContainerID)`: `root.child.grandchild`."""
    parts: list[str] = []
    cid: ContainerID | None = container_id
    while cid is not None:
        parts.append(cid.value)
        cid = cid.parent
    return ".".join(reversed(parts))


def validate_container_id(container_id: ContainerID, field_name: str) -> None:
    """Mesos's `validateContainerId` (every level): 400 with Mesos's wording."""
    cid: ContainerID | None = container_id
    while cid is not None:
        value = cid.value
        problem = None
        if not value:
            problem = "ID must not be empty"
        elif value in (".", ".."):
            problem = f"'{value}' is disallowed"
        elif len(value) > MAX_CONTAINER_ID_LENGTH:
            problem = (f"'ContainerID.value' '{value}' exceeds the maximum length "
                       f"({MAX_CONTAINER_ID_LENGTH})")
        elif any(c in "./ \\" or ord(c) < 32 for c in value):
            problem = f"'ContainerID.value' '{value}' contains invalid characters"
        if problem is not None:
            raise CallRefused(400, f"Failed to validate agent::Call: '{field_name}' is invalid: {problem}")
        cid = cid.parent


class ContainerTree:
    """The nested and standalone containers of one agent (see the module docstring)."""

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self.containers: dict[str, Container] = {}
        self._terminated_order: list[str] = []

    # --------------------------------------------------------------------- launch

    def plan_launch(
        self,
        container_id: ContainerID,
        command: CommandInfo | None,
        container: ContainerInfo | None,
        *,
        container_class: ContainerClass,
        roots: RootLookup,
        resources: Any = None,
        field_name: str = "launch_container.container_id",
    ) -> LaunchPlan | None:
        """Decide a launch; None when the id is already in use (Mesos: 202 Accepted, nothing
        done). CallRefused: 400 for what Mesos refuses (unknown or ending parent, a container
        type other than MESOS, a session without a parent)."""
        validate_container_id(container_id, field_name)
        name = container_name(container_id)
        existing = self.containers.get(name)
        if existing is not None and existing.phase != Phase.TERMINATED:
            return None
        if roots(name) is not None:
            return None  # an executor's own container
        if container is not None and container.type != ContainerType.MESOS:
            raise CallRefused(400, "The provided ContainerInfo is not supported")
        tty_info = container.tty_info if container is not None else None
        tty = tty_info is not None
        window = _window(tty_info)
        if container_id.parent is None:
            if container_class == ContainerClass.DEBUG:
                raise CallRefused(400, f"Expecting '{field_name}.parent' to be present")
            sandbox = f"{self.work_dir}/standalone/{container_id.value}"
            parent_name = None
            workdir = mesos_sandbox = sandbox
            cpus, mem = _scalars(resources)
        else:
            parent_name = container_name(container_id.parent)
            parent_sandbox = self._live_parent_sandbox(parent_name, roots)
            sandbox = f"{parent_sandbox}/containers/{container_id.value}"
            if container_class == ContainerClass.DEBUG:
                workdir = mesos_sandbox = parent_sandbox
            else:
                workdir = mesos_sandbox = sandbox
            cpus = mem = None  # nested containers share their parent's resources
        command = command or CommandInfo()
        shell_cmd, argv = _command_line(command)
        env = {
            v.name: v.value or ""
            for v in (command.environment.variables if command.environment else [])
            if v.type in (None, "VALUE")
        }
        return LaunchPlan(
            name=name, parent=parent_name, sandbox=sandbox, workdir=workdir,
            mesos_sandbox=mesos_sandbox, container_class=container_class, tty=tty,
            window=window, argv=argv, shell=shell_cmd, environment=env, user=command.user,
            cpus=cpus, mem_mb=mem,
        )

    def _live_parent_sandbox(self, parent: str, roots: RootLookup) -> str:
        root = roots(parent)
        if root is not None:
            if root.pid is None:
                raise CallRefused(400, f"Parent container {parent} is not running yet")
            return root.sandbox
        entry = self.containers.get(parent)
        if entry is None:
            raise CallRefused(400, f"Parent container {parent} does not exist")
        if entry.phase != Phase.RUNNING:
            raise CallRefused(400, f"Parent container {parent} is in '{entry.phase}' state")
        return entry.plan.sandbox

    def launching(self, container_id: ContainerID, plan: LaunchPlan) -> None:
        """Record a planned launch (before the shell starts it)."""
        self._forget(plan.name)
        root = plan.name.split(".", 1)[0]
        self.containers[plan.name] = Container(plan.name, container_id, plan.parent, root, plan)
        if plan.parent is not None and plan.parent in self.containers:
            self.containers[plan.parent].children.add(plan.name)

    def launched(self, name: str, pid: int) -> None:
        entry = self.containers.get(name)
        if entry is not None and entry.phase == Phase.LAUNCHING:
            entry.phase = Phase.RUNNING
            entry.pid = pid

    def launch_failed(self, name: str) -> None:
        """A launch that never ran leaves nothing behind (Mesos destroys and forgets it)."""
        entry = self.containers.pop(name, None)
        if entry is not None and entry.parent in self.containers:
            self.containers[entry.parent].children.discard(name)

    def terminated(self, name: str, result: WaitResult) -> None:
        entry = self.containers.get(name)
        if entry is None or entry.phase == Phase.TERMINATED:
            return
        entry.phase = Phase.TERMINATED
        entry.result = result
        self._terminated_order.append(name)
        while len(self._terminated_order) > MAX_TERMINATED:
            self._forget(self._terminated_order[0])

    # --------------------------------------------------------------------- the others

    def descendants(self, name: str) -> list[str]:
        """Live containers below `name` (an executor's or one of ours), deepest first: what
        must be destroyed when it ends (a nested container dies with its parent)."""
        prefix = name + "."
        live = [c.name for c in self.containers.values()
                if c.name.startswith(prefix) and c.phase != Phase.TERMINATED]
        return sorted(live, key=lambda n: n.count("."), reverse=True)

    def lookup(self, container_id: ContainerID, field_name: str) -> Container | None:
        validate_container_id(container_id, field_name)
        return self.containers.get(container_name(container_id))

    def kill_target(self, container_id: ContainerID, field_name: str) -> Container:
        """The running container KILL_CONTAINER names: 404 if unknown or already ended."""
        entry = self.lookup(container_id, field_name)
        if entry is None or entry.phase == Phase.TERMINATED:
            raise CallRefused(404, f"Container '{container_name(container_id)}' cannot be "
                                   "found (or is already killed)")
        return entry

    def wait_target(self, container_id: ContainerID, field_name: str) -> Container:
        entry = self.lookup(container_id, field_name)
        if entry is None:
            raise CallRefused(404, f"Container {container_name(container_id)} cannot be found")
        return entry

    def attach_target(self, container_id: ContainerID, field_name: str, roots: RootLookup) -> Container:
        """The nested or standalone container an ATTACH call names. As Mesos (where the
        containerizer's attach fails): 500 when it has ended, 500 with Mesos's message when it
        has no switchboard (no TTY and not a session: its output went to its sandbox files).
        The Mesos CLI relies on both (a 500 on input means "the command already ended").
        A container this agent never ran is bad input: 404, as Mesos answers for an unknown
        root container (Mesos's containerizer would fail it with a 500)."""
        entry = self.lookup(container_id, field_name)
        name = container_name(container_id)
        if entry is None:
            raise CallRefused(404, f"Container {name} cannot be found")
        if entry.phase == Phase.TERMINATED:
            raise CallRefused(500, f"Unknown container {name}")
        if not entry.plan.switchboard:
            raise CallRefused(500, NO_SWITCHBOARD)
        return entry

    def remove(self, container_id: ContainerID, field_name: str, roots: RootLookup) -> str | None:
        """REMOVE_CONTAINER: the sandbox to delete (None: nothing to delete). Mesos answers
        500 for a running or unknown container; mezzo answers 400 (bad input is never a 5xx)
        with Mesos's message. A nested container whose parent is gone is removed trivially
        (200), as in Mesos."""
        entry = self.lookup(container_id, field_name)
        name = container_name(container_id)
        if entry is not None and entry.phase != Phase.TERMINATED:
            what = "Nested container" if entry.parent is not None else "Container"
            raise CallRefused(400, f"{what} has not terminated yet")
        if entry is None:
            root = name.split(".", 1)[0]
            if container_id.parent is not None and roots(root) is None and root not in self.containers:
                return None
            raise CallRefused(400, f"Unknown container {name}")
        self._forget(name)
        return entry.plan.sandbox

    def _forget(self, name: str) -> None:
        entry = self.containers.pop(name, None)
        if name in self._terminated_order:
            self._terminated_order.remove(name)
        if entry is not None and entry.parent in self.containers:
            self.containers[entry.parent].children.discard(name)


def _command_line(command: CommandInfo) -> tuple[str | None, list[str] | None]:
    """(shell command, None) or (None, argv): Mesos's CommandInfo rules (shell by default)."""
    if command.shell is not False:
        if not command.value:
            raise CallRefused(400, "Failed to validate agent::Call: 'command.value' is required "
                                   "for a shell command")
        return command.value, None
    if not command.value:
        raise CallRefused(400, "Failed to validate agent::Call: 'command.value' is required")
    # Mesos execs `value` with `arguments` as argv (arguments[0] is the program's name).
    args = list(command.arguments) or [command.value]
    return None, [command.value, *args[1:]]


def _window(tty_info: dict[str, Any] | None) -> tuple[int, int] | None:
    if not tty_info:
        return None
    size = tty_info.get("window_size")
    if not isinstance(size, dict):
        return None
    rows, columns = size.get("rows"), size.get("columns")
    # A terminal's size is two unsigned shorts (struct winsize).
    if not isinstance(rows, int) or not isinstance(columns, int) or not (
            0 <= rows < 65536 and 0 <= columns < 65536):
        raise CallRefused(400, "Failed to validate agent::Call: 'tty_info.window_size' needs "
                               "integer 'rows' and 'columns' between 0 and 65535")
    return rows, columns


def _scalars(resources: Any) -> tuple[float | None, float | None]:
    cpus = mem = None
    for r in resources or []:
        name = getattr(r, "name", None)
        scalar = getattr(r, "scalar", None)
        value = getattr(scalar, "value", None) if scalar is not None else None
        if name == "cpus" and value is not None:
            cpus = float(value)
        elif name == "mem" and value is not None:
            mem = float(value)
    return cpus, mem
