"""cgroup filesystem access for v1 and v2 behind one interface, plus detection.

Owns: finding which hierarchy serves a controller (from ``/proc/self/mountinfo``), checking we
can create cgroups there, and the per-container :class:`Cgroup` handle (create, add a pid,
read/write control files, kill every member, remove).

Layout: a container's cgroup is ``<mount>/<root>/<container_id>`` where ``root`` is the agent's
``--cgroups_root`` (default ``mezzo``), an absolute path inside each hierarchy as in Mesos. A
v1 hierarchy is preferred for a controller when both exist (hybrid machines mount cpu/memory
on v1 and leave cgroup2 with few or no controllers); on v2 one directory serves every
controller, so several isolators share it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
# Polling step while waiting for killed processes to leave a cgroup: short, because the
# kernel removes a SIGKILLed task within microseconds; bounded by KILL_TIMEOUT overall.
_KILL_POLL = 0.001
KILL_TIMEOUT = 5.0


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy: v1 (``controllers`` from the mount options) or v2."""

    mount: Path
    version: int
    controllers: frozenset[str]


class CgroupUnavailable(Exception):
    """The controller cannot be used here; ``str()`` is the one-line reason."""


def mounted_hierarchies(mountinfo: Path = MOUNTINFO) -> list[Hierarchy]:
    result: list[Hierarchy] = []
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return result
    for line in lines:
        # mountinfo: id parent maj:min root mountpoint opts [optional...] - fstype source superopts
        left, _, right = line.partition(" - ")
        parts, rparts = left.split(), right.split()
        if len(parts) < 5 or len(rparts) < 3:
            continue
        fstype, superopts, mount = rparts[0], rparts[2], Path(parts[4].replace("\\040", " "))
        if fstype == "cgroup":
            names = {o for o in superopts.split(",") if not o.startswith("name=")}
            names -= {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec"}
            result.append(Hierarchy(mount, 1, frozenset(names)))
        elif fstype == "cgroup2":
            try:
                ctrls = (mount / "cgroup.controllers").read_text().split()
            except OSError:
                ctrls = []
            result.append(Hierarchy(mount, 2, frozenset(ctrls)))
    return result


def find_hierarchy(controller: str, mountinfo: Path = MOUNTINFO) -> Hierarchy:
    """The hierarchy serving ``controller`` (v1 preferred); CgroupUnavailable if none."""
    hierarchies = mounted_hierarchies(mountinfo)
    for h in hierarchies:
        if h.version == 1 and controller in h.controllers:
            return h
    for h in hierarchies:
        if h.version == 2 and controller in h.controllers:
            return h
    if not hierarchies:
        raise CgroupUnavailable("no cgroup filesystem is mounted")
    raise CgroupUnavailable(f"no mounted cgroup hierarchy offers the {controller!r} controller")


def prepare_root(hierarchy: Hierarchy, root: str, controller: str) -> Path:
    """Create ``<mount>/<root>`` (enabling ``controller`` for its children on v2).

    Raises CgroupUnavailable with the precise reason when the directory or the controller
    cannot be set up (read-only cgroupfs, not root, v2 controller not delegated...).
    """
    path = hierarchy.mount / root.strip("/")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CgroupUnavailable(f"cannot create cgroup {path}: {e.strerror}") from e
    if not os.access(path / "cgroup.procs", os.W_OK):
        raise CgroupUnavailable(f"cgroup {path} is not writable")
    if hierarchy.version == 2:
        # Each level from the mount down to the root must delegate the controller; the root
        # itself enables it for the container cgroups below it.
        levels = [hierarchy.mount]
        for part in path.relative_to(hierarchy.mount).parts:
            levels.append(levels[-1] / part)
        for level in levels:
            enabled = (level / "cgroup.subtree_control").read_text().split()
            if controller in enabled:
                continue
            try:
                (level / "cgroup.subtree_control").write_text(f"+{controller}")
            except OSError as e:
                raise CgroupUnavailable(
                    f"cannot enable the {controller!r} controller in {level}: {e.strerror}"
                ) from e
    return path


class Cgroup:
    """One container's cgroup in one hierarchy."""

    def __init__(self, hierarchy: Hierarchy, root: str, container_id: str) -> None:
        self.hierarchy = hierarchy
        self.path = hierarchy.mount / root.strip("/") / container_id

    @property
    def v2(self) -> bool:
        return self.hierarchy.version == 2

    def exists(self) -> bool:
        return self.path.is_dir()

    def create(self) -> None:
        # parents=True: survive an operator removing an empty root between start and launch.
        self.path.mkdir(parents=True, exist_ok=True)

    def read(self, name: str) -> str:
        with open(self.path / name) as f:
            return f.read()

    def read_int(self, name: str) -> int | None:
        """An integer control file; None for ``max``/missing (unlimited or not offered)."""
        try:
            text = self.read(name).strip()
        except OSError:
            return None
        return None if text == "max" else int(text)

    def read_keyed(self, name: str) -> dict[str, int]:
        """A flat-keyed file (``memory.stat``, ``cpu.stat``, ``memory.events``...)."""
        result: dict[str, int] = {}
        try:
            for line in self.read(name).splitlines():
                key, _, value = line.partition(" ")
                with contextlib.suppress(ValueError):
                    result[key] = int(value)
        except OSError:
            pass
        return result

    def write(self, name: str, value: str | int) -> None:
        # Unbuffered single write: cgroupfs parses each write() call as one command.
        fd = os.open(self.path / name, os.O_WRONLY)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)

    def add(self, pid: int) -> None:
        self.write("cgroup.procs", pid)

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in self.read("cgroup.procs").split()]
        except OSError:
            return []

    def kill_all(self, timeout: float = KILL_TIMEOUT) -> bool:
        """SIGKILL every member until the cgroup is empty; False if it never emptied.

        A kill loop rather than the freezer: a member may fork while we iterate, so we repeat
        until the membership list is empty (a pids limit bounds a fork bomb).
        """
        if not self.exists():
            return True
        if self.v2 and (self.path / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                self.write("cgroup.kill", 1)
        deadline = time.monotonic() + timeout
        while True:
            members = self.pids()
            if not members:
                return True
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() >= deadline:
                return False
            time.sleep(_KILL_POLL)

    def remove(self, timeout: float = 1.0) -> None:
        """rmdir, retrying EBUSY briefly (exiting tasks linger for a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                    raise
                time.sleep(_KILL_POLL)


def list_container_cgroups(hierarchy: Hierarchy, root: str) -> list[str]:
    """Container ids that have a cgroup under ``root`` (for orphan detection on recovery)."""
    try:
        return sorted(p.name for p in (hierarchy.mount / root.strip("/")).iterdir() if p.is_dir())
    except OSError:
        return []
