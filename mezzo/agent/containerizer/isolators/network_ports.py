"""The ``network/ports`` isolator (Mesos's of that name): containers listen only on their ports.

Every ``--container_ports_watch_interval`` (default 30 s) the isolator reads the TCP sockets in
LISTEN state from ``/proc/net/tcp`` and ``/proc/net/tcp6`` (inode -> port), then the open
file descriptors of every process of each container (``/proc/<pid>/fd`` links
``socket:[inode]``), and compares the ports a container listens on with the ``ports`` it was
allocated (``ContainerConfig.ports``; none allocated means none allowed). A container listening
on others is logged, and, with ``--enforce_container_ports``, limited: it is killed and its
tasks end TASK_FAILED with REASON_CONTAINER_LIMITATION and Mesos's message, "Container <id> is
listening on unallocated port(s): [8080-8080]".

Which ports are checked: all of them by default; only those inside the agent's own ``ports``
resource with ``--check_agent_port_range_only`` (a task may then listen outside the range the
agent offers); only those in ``--container_ports_isolated_range`` when that is given.

A container's processes are the members of its root's session (the launcher's process model)
plus those of its nested containers, whose ports count against the root's allocation, as in
Mesos (where nested containers get no resources of their own). A process that leaves its
session (setsid) escapes the check: Mesos counts the members of the container's freezer cgroup
instead. Off by default, like in Mesos: enable it with ``--isolation=...,network/ports``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mezzo.agent.containerizer.isolator import Isolator
from mezzo.agent.containerizer.launcher import sessions_members
from mezzo.agent.containerizer.records import (
    REASON_CONTAINER_LIMITATION,
    ContainerConfig,
    ContainerState,
    LaunchInfo,
    Limitation,
)

log = logging.getLogger(__name__)

Ranges = tuple[tuple[int, int], ...]
_LISTEN = "0A"
_PROC_NET = ("/proc/net/tcp", "/proc/net/tcp6")


@dataclass
class _Container:
    allocated: Ranges | None  # inclusive ranges of the ports it may listen on; None: unknown
    pid: int | None = None
    root: str | None = None  # set for a nested container: whose allocation it uses
    future: asyncio.Future[Limitation] | None = None
    limitation: Limitation | None = None
    reported: frozenset[int] = frozenset()  # last unallocated set logged (log once)
    children: set[str] = field(default_factory=set)


def listening_ports(paths: Iterable[str] = _PROC_NET) -> dict[int, int]:
    """socket inode -> port of every TCP socket in LISTEN state."""
    found: dict[int, int] = {}
    for path in paths:
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            inode = int(fields[9])
            if inode:
                found[inode] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` has open (empty if it is gone)."""
    inodes: set[int] = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"{fd_dir}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def contains(ranges: Ranges, port: int) -> bool:
    return any(b <= port <= e for b, e in ranges)


def to_ranges(ports: Iterable[int]) -> Ranges:
    """Sorted ports as coalesced inclusive ranges."""
    out: list[tuple[int, int]] = []
    for port in sorted(set(ports)):
        if out and out[-1][1] + 1 == port:
            out[-1] = (out[-1][0], port)
        else:
            out.append((port, port))
    return tuple(out)


def format_ranges(ranges: Ranges) -> str:
    """Mesos's ``Value::Ranges`` text: ``[31000-31000, 31002-31005]``."""
    return "[" + ", ".join(f"{b}-{e}" for b, e in ranges) + "]"


def parse_ranges(text: str) -> Ranges:
    """``[0-1023]`` or ``[0-1023,8080-8080]`` (ValueError if malformed)."""
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise ValueError(f"expected ranges like [0-1023], got {text!r}")
    out = []
    for part in body[1:-1].split(","):
        begin, sep, end = part.strip().partition("-")
        if not sep:
            raise ValueError(f"expected ranges like [0-1023], got {text!r}")
        b, e = int(begin), int(end)
        if not 0 <= b <= e <= 65535:
            raise ValueError(f"bad port range {part.strip()!r}")
        out.append((b, e))
    return tuple(sorted(out))


class NetworkPortsIsolator(Isolator):
    name = "network/ports"

    def __init__(self, watch_interval: float = 30.0, isolated: Ranges | None = None,
                 enforce: bool = False) -> None:
        self.watch_interval = watch_interval
        self.isolated = isolated  # None: every port is checked
        self.enforce = enforce
        self._containers: dict[str, _Container] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._check: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ hooks

    def recover(self, states: Sequence[ContainerState]) -> None:
        for state in states:
            # Unknown until the agent tells (update_ports): not checked before that.
            ports = state.config.ports if state.config is not None else None
            self._containers[state.container_id] = _Container(
                tuple(ports) if ports is not None else None, state.pid)

    def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        root = self._root_of(config.parent)
        if root is not None:
            self._containers[container_id] = _Container((), root=root)
            self._containers[root].children.add(container_id)
        else:
            self._containers[container_id] = _Container(tuple(config.ports or ()))
        return None

    def isolate(self, container_id: str, pid: int) -> None:
        c = self._containers.get(container_id)
        if c is not None:
            c.pid = pid

    def watch(self, container_id: str) -> asyncio.Future[Limitation] | None:
        c = self._containers.get(container_id)
        if c is None or c.root is not None:
            return None  # a nested container's breach is its root's
        if c.future is None:
            c.future = asyncio.get_running_loop().create_future()
            self._arm()
        return c.future

    def limitation(self, container_id: str) -> Limitation | None:
        c = self._containers.get(container_id)
        return c.limitation if c is not None else None

    def update_ports(self, container_id: str, ports: Ranges) -> None:
        c = self._containers.get(container_id)
        if c is not None and c.root is None:
            c.allocated = tuple(ports)
            log.info("Updated ports to %s for container %s", format_ranges(tuple(ports)), container_id)

    def cleanup(self, container_id: str) -> None:
        c = self._containers.pop(container_id, None)
        if c is None:
            return
        if c.root is not None and c.root in self._containers:
            self._containers[c.root].children.discard(container_id)
        if c.future is not None and not c.future.done():
            c.future.cancel()
        if not any(x.future is not None for x in self._containers.values()) and self._timer:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------------ the check

    def _root_of(self, parent: str | None) -> str | None:
        if parent is None or parent not in self._containers:
            return None
        c = self._containers[parent]
        return c.root if c.root is not None else parent

    def _arm(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.watch_interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if (self._check is None or self._check.done()) and self._containers:
            self._check = asyncio.ensure_future(self._check_soon())
        if any(c.future is not None and not c.future.done() for c in self._containers.values()):
            self._arm()

    async def _check_soon(self) -> None:
        try:
            sessions = self._sessions()
            listeners = await asyncio.to_thread(collect_listeners, sessions, self.isolated)
            self.check(listeners)
        except Exception:  # a failed sample must not stop the next ones
            log.exception("network/ports: checking listening sockets failed")

    def _sessions(self) -> dict[int, str]:
        """Session id -> the root container it counts for."""
        out: dict[int, str] = {}
        for name, c in self._containers.items():
            if c.pid is not None:
                out[c.pid] = c.root if c.root is not None else name
        return out

    def check(self, listeners: dict[str, set[int]]) -> None:
        """Compare what each root container listens on with its allocation (Mesos's
        `NetworkPortsIsolatorProcess::check`)."""
        for name, ports in listeners.items():
            c = self._containers.get(name)
            if c is None or c.root is not None or c.allocated is None:
                continue
            unallocated = frozenset(p for p in ports if not contains(c.allocated, p))
            if not unallocated or unallocated == c.reported:
                continue
            c.reported = unallocated  # log each new violation once
            message = (f"Container {name} is listening on unallocated port(s): "
                       f"{format_ranges(to_ranges(unallocated))}")
            log.info(message)
            if self.enforce and c.limitation is None:
                c.limitation = Limitation(REASON_CONTAINER_LIMITATION, message,
                                          {"ports": float(len(unallocated))})
                if c.future is not None and not c.future.done():
                    c.future.set_result(c.limitation)


def collect_listeners(sessions: dict[int, str], isolated: Ranges | None) -> dict[str, set[int]]:
    """Root container -> ports its processes listen on (within ``isolated`` if given). Reads
    /proc only (run it off the event loop)."""
    inodes = listening_ports()
    found: dict[str, set[int]] = {}
    if not inodes:
        return found
    for pid, sid in sessions_members(set(sessions)):
        for inode in socket_inodes(pid):
            port = inodes.get(inode)
            if port is None:
                continue
            if isolated is None or contains(isolated, port):
                found.setdefault(sessions[sid], set()).add(port)
    return found
