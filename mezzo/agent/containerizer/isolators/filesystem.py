"""The filesystem isolators: persistent volumes appear in the container's sandbox.

A container's `ContainerConfig.volumes` lists `VolumeMount`s: the volume's directory on the
agent (`source`, `mezzo.resources.volumes.volume_path`), the relative `target` inside the
sandbox (`DiskInfo.volume.container_path`) and whether it is read-only. The set can change
while the container runs (a task using a volume joins a running executor, or one that used it
ends): `update_volumes` gets the new set.

- ``filesystem/posix`` (Mesos's default, added when no ``filesystem/*`` isolator is named): a
  symlink `<sandbox>/<target>` -> `source`. Works without privileges. As in Mesos, the
  container path must be one relative component (no `/`), and **RO is not enforced**: a
  symlink cannot be read-only, so a task given an RO volume can still write through it.
- ``filesystem/linux`` (root): a bind mount of `source` on `<sandbox>/<target>` in the agent's
  mount namespace (as Mesos's `filesystem/linux` does for containers without an image), then,
  for RO, a read-only remount of that bind (`EROFS` for writers). Nested relative paths are
  allowed. Containers with their own mount namespace (``namespaces/pid``) receive the mounts
  present when they start; a volume added to a running one (a second task joining it) is not
  seen inside it. Cleanup unmounts everything under the sandbox (found in
  `/proc/self/mountinfo`, so it also works for containers recovered after an agent restart)
  before the sandbox can be garbage-collected: the volume's data is never deleted through it.

The volume directory is created if missing (the agent creates it when the volume is
created; this covers a MOUNT disk's root or an agent restart in between). If the container
runs as another user (`ContainerConfig.user`), the volume directory is given to that user, as
Mesos gives it to the sandbox's owner, unless another container uses it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import pwd
from collections.abc import Sequence
from pathlib import Path

from mezzo.agent.containerizer.isolator import Isolator
from mezzo.agent.containerizer.records import ContainerConfig, LaunchError, LaunchInfo, VolumeMount

log = logging.getLogger(__name__)

_MS_RDONLY = 1
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MNT_DETACH = 2


def _target(sandbox: Path, volume: VolumeMount, nested: bool) -> Path:
    target = volume.target
    if not target or os.path.isabs(target) or ".." in Path(target).parts:
        raise LaunchError(f"invalid container path {target!r} for volume {volume.source}")
    if not nested and "/" in target.strip("/"):
        raise LaunchError(
            f"container path {target!r} of volume {volume.source} contains a slash "
            "(filesystem/posix links only single components; use filesystem/linux)"
        )
    return sandbox / target


def _prepare_source(volume: VolumeMount, user: str | None, shared_in_use: bool) -> None:
    os.makedirs(volume.source, exist_ok=True)
    if user and os.geteuid() == 0 and not shared_in_use:
        with contextlib.suppress(KeyError, OSError):
            entry = pwd.getpwnam(user)
            os.chown(volume.source, entry.pw_uid, entry.pw_gid)


class _VolumeIsolator(Isolator):
    """What both isolators share: the per-container sandbox and current volumes."""

    nested = False

    def __init__(self) -> None:
        self._sandboxes: dict[str, Path] = {}
        self._users: dict[str, str | None] = {}
        self._volumes: dict[str, tuple[VolumeMount, ...]] = {}

    def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        self._sandboxes[container_id] = Path(config.sandbox)
        self._users[container_id] = config.user
        self._volumes[container_id] = ()
        self._apply(container_id, tuple(config.volumes))
        return None

    def update_volumes(self, container_id: str, volumes: Sequence[VolumeMount]) -> None:
        if container_id not in self._sandboxes:
            return  # a recovered container: its volumes stay as they were
        self._apply(container_id, tuple(volumes))

    def _in_use_elsewhere(self, container_id: str, volume: VolumeMount) -> bool:
        return any(
            any(v.source == volume.source for v in vols)
            for cid, vols in self._volumes.items() if cid != container_id
        )

    def _apply(self, container_id: str, wanted: tuple[VolumeMount, ...]) -> None:
        sandbox = self._sandboxes[container_id]
        current = self._volumes[container_id]
        for volume in current:
            if volume not in wanted:
                self._detach(_target(sandbox, volume, self.nested))
        for volume in wanted:
            if volume in current:
                continue
            target = _target(sandbox, volume, self.nested)
            _prepare_source(
                volume, self._users.get(container_id), self._in_use_elsewhere(container_id, volume)
            )
            self._attach(volume, target)
            log.info("volume %s at %s of container %s%s", volume.source, target, container_id,
                     " (read-only)" if volume.read_only else "")
        self._volumes[container_id] = wanted

    def cleanup(self, container_id: str) -> None:
        sandbox = self._sandboxes.pop(container_id, None)
        volumes = self._volumes.pop(container_id, ())
        self._users.pop(container_id, None)
        if sandbox is not None:
            for volume in volumes:
                with contextlib.suppress(LaunchError):
                    self._detach(_target(sandbox, volume, self.nested))

    def _attach(self, volume: VolumeMount, target: Path) -> None:
        raise NotImplementedError

    def _detach(self, target: Path) -> None:
        raise NotImplementedError


class PosixFilesystemIsolator(_VolumeIsolator):
    name = "filesystem/posix"

    def _attach(self, volume: VolumeMount, target: Path) -> None:
        if target.is_symlink():
            target.unlink()
        elif target.exists():
            raise LaunchError(
                f"cannot link volume {volume.source} at {target}: the path exists in the sandbox"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(volume.source)

    def _detach(self, target: Path) -> None:
        if target.is_symlink():
            target.unlink()


class _Libc:
    def __init__(self) -> None:
        name = ctypes.util.find_library("c") or "libc.so.6"
        self.libc = ctypes.CDLL(name, use_errno=True)
        self.libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                    ctypes.c_ulong, ctypes.c_void_p]
        self.libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

    def mount(self, source: str | None, target: str, flags: int) -> None:
        rc = self.libc.mount(
            source.encode() if source is not None else None, target.encode(), None, flags, None
        )
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")

    def umount(self, target: str) -> None:
        if self.libc.umount2(target.encode(), _MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err not in (errno.EINVAL, errno.ENOENT):  # not mounted (any more)
                raise OSError(err, f"umount {target}: {os.strerror(err)}")


def mount_points_under(directory: Path) -> list[str]:
    """Mount points at or below `directory` in this mount namespace, deepest first."""
    prefix = str(directory).rstrip("/") + "/"
    found: list[str] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ").replace("\\011", "\t")
            if point.startswith(prefix) or point == prefix.rstrip("/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


class FilesystemUnavailable(OSError):
    """filesystem/linux cannot work here (not root)."""


class LinuxFilesystemIsolator(_VolumeIsolator):
    name = "filesystem/linux"
    nested = True

    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise FilesystemUnavailable("filesystem/linux needs root (bind mounts)")
        super().__init__()
        self._libc = _Libc()

    def _attach(self, volume: VolumeMount, target: Path) -> None:
        try:
            if target.is_symlink():
                target.unlink()
            target.mkdir(parents=True, exist_ok=True)
            self._libc.mount(volume.source, str(target), _MS_BIND | _MS_REC)
            if volume.read_only:
                self._libc.mount(
                    None, str(target), _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_REC
                )
        except OSError as e:
            raise LaunchError(f"cannot mount volume {volume.source} at {target}: {e}") from e

    def _detach(self, target: Path) -> None:
        for point in mount_points_under(target):
            self._libc.umount(point)

    def cleanup(self, container_id: str) -> None:
        sandbox = self._sandboxes.get(container_id)
        super().cleanup(container_id)
        if sandbox is None:
            # Recovered after an agent restart (or never prepared): find the runs directory.
            sandbox = _sandbox_of(container_id)
        if sandbox is not None:
            for point in mount_points_under(sandbox):
                with contextlib.suppress(OSError):
                    self._libc.umount(point)


def _sandbox_of(container_id: str) -> Path | None:
    """The sandbox (`.../runs/<container_id>`) of a container, from the mount table."""
    marker = f"/runs/{container_id}/"
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            i = point.find(marker)
            if i >= 0:
                return Path(point[: i + len(marker) - 1])
    return None
