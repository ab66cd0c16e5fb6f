"""What a container asks for, and whether this agent can provide it (pure, no I/O).

mezzo's agent is a Mesos containerizer without a provisioner, network plugins or volume
isolators: it runs every container on the host's filesystem and network. A task asking for more
than that must not run on the bare host as if it had been given what it asked for, so
`unsupported_container` names the first thing it cannot provide:

- `ContainerInfo.type: DOCKER` (there is no Docker containerizer; Mesos's agent with
  `--containerizers=mesos` cannot launch it either);
- a container image (`mesos.image`): no provisioner;
- volumes (no `filesystem/*` or `volume/*` isolator);
- a named network (CNI) or port mappings: only the host network exists here.

The agent core fails such a launch with TASK_FAILED / REASON_CONTAINER_LAUNCH_FAILED before any
container is created. `ContainerInfo.rlimit_info` *is* supported (the `posix/rlimits` isolator):
`rlimits_of` turns it into the containerizer's `{name: (soft, hard)}` with Mesos's rules
(both limits or neither, neither meaning unlimited; soft <= hard), and a malformed one is
reported by `unsupported_container` as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mezzo.api.common import ContainerInfo, ContainerType

# Mesos's RLimitInfo.RLimit.Type names (RLMT_*) the posix/rlimits isolator understands.
RLIMIT_TYPES = frozenset(
    {
        "RLMT_AS", "RLMT_CORE", "RLMT_CPU", "RLMT_DATA", "RLMT_FSIZE", "RLMT_LOCKS",
        "RLMT_MEMLOCK", "RLMT_MSGQUEUE", "RLMT_NICE", "RLMT_NOFILE", "RLMT_NPROC",
        "RLMT_RSS", "RLMT_RTPRIO", "RLMT_RTTIME", "RLMT_SIGPENDING", "RLMT_STACK",
    }
)

Rlimits = dict[str, tuple[int | None, int | None]]


class RlimitError(ValueError):
    """A malformed `rlimit_info` (the message says which limit and why)."""


def unsupported_container(containers: Iterable[ContainerInfo | None]) -> str | None:
    """Why this agent cannot run a container with these ContainerInfos (the task's and its
    executor's), or None when it can."""
    for container in containers:
        if container is None:
            continue
        problem = _unsupported(container)
        if problem is not None:
            return problem
    return None


def _unsupported(container: ContainerInfo) -> str | None:
    if container.type == ContainerType.DOCKER:
        return (
            "Container type DOCKER is not supported: this agent has only the Mesos "
            "containerizer (no Docker)"
        )
    if container.mesos is not None and container.mesos.image:
        return (
            "Container images are not supported: this agent has no provisioner "
            "(ContainerInfo.mesos.image is set)"
        )
    if container.volumes:
        paths = ", ".join(repr(v.container_path) for v in container.volumes)
        return f"Volumes are not supported: this agent has no volume isolator (volumes {paths})"
    for network in container.network_infos:
        if network.name:
            return (
                f"Network {network.name!r} is not supported: this agent runs containers on "
                f"the host network only"
            )
        if network.port_mappings:
            return "Port mappings are not supported: this agent runs containers on the host network only"
    try:
        rlimits_of(container)
    except RlimitError as e:
        return str(e)
    return None


def rlimits_of(container: ContainerInfo | None) -> Rlimits:
    """`rlimit_info` as the containerizer's `{"RLMT_X": (soft, hard)}` (None = unlimited)."""
    if container is None or not container.rlimit_info:
        return {}
    entries: Any = container.rlimit_info.get("rlimits", [])
    if not isinstance(entries, list):
        raise RlimitError("Invalid rlimit_info: 'rlimits' must be a list")
    limits: Rlimits = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise RlimitError("Invalid rlimit_info: each rlimit must be an object")
        kind = entry.get("type")
        if kind not in RLIMIT_TYPES:
            raise RlimitError(f"Invalid rlimit_info: unknown rlimit type {kind!r}")
        soft, hard = _limit(kind, entry.get("soft")), _limit(kind, entry.get("hard"))
        if (soft is None) != (hard is None):
            # Mesos: both or neither ("Invalid rlimit values"); neither means unlimited.
            raise RlimitError(f"Invalid rlimit values for {kind}: set both 'soft' and 'hard', or neither")
        if soft is not None and hard is not None and soft > hard:
            raise RlimitError(f"Invalid rlimit values for {kind}: soft limit {soft} exceeds hard limit {hard}")
        if kind in limits:
            raise RlimitError(f"Invalid rlimit_info: {kind} is given twice")
        limits[kind] = (soft, hard)
    return limits


def _limit(kind: str, value: object) -> int | None:
    if value is None:
        return None
    # uint64 fields arrive as JSON numbers or (protobuf's JSON mapping) decimal strings.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise RlimitError(f"Invalid rlimit values for {kind}: {value!r} is not an integer")
    try:
        number = int(value)
    except ValueError:
        raise RlimitError(f"Invalid rlimit values for {kind}: {value!r} is not an integer") from None
    if number < 0 or number >= 2**64:
        raise RlimitError(f"Invalid rlimit values for {kind}: {number} is out of range")
    return number
