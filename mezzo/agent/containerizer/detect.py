"""Isolator names -> instances: what this machine provides, and ``--isolation`` parsing.

The default isolation is Mesos's ``posix/cpu,posix/mem`` (usage reporting only, works
anywhere, and the agent flag default of spec §9.2). ``auto`` asks for the strongest set this
machine provides: ``cgroups/cpu,cgroups/mem,cgroups/pids,posix/rlimits`` where cgroups are
writable, falling back to the posix pair per controller, and ``filesystem/linux`` (persistent
volumes bind-mounted, RO enforced) as root, else ``filesystem/posix`` (symlinks). Production
agents on Linux should run with ``auto`` or an explicit cgroups list: only cgroups/mem enforces
memory limits. Without a ``filesystem/*`` isolator in the list, the agent's containerizer adds
``filesystem/posix`` first (``Containerizer.create``, as Mesos does).

Availability is *detected* by constructing the isolator (finding the hierarchy, creating the
cgroups root, probing ``unshare``); an unknown or unavailable name is a ConfigError with a
one-line reason, raised when the agent starts rather than at the first launch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mezzo.agent.containerizer.isolator import Isolator
from mezzo.agent.containerizer.isolators.cgroupfs import CgroupUnavailable
from mezzo.agent.containerizer.isolators.cgroups import (
    CgroupsCpuIsolator,
    CgroupsMemIsolator,
    CgroupsPidsIsolator,
)
from mezzo.agent.containerizer.isolators.filesystem import (
    LinuxFilesystemIsolator,
    PosixFilesystemIsolator,
)
from mezzo.agent.containerizer.isolators.namespaces import (
    NamespacesUnavailable,
    PidNamespaceIsolator,
)
from mezzo.agent.containerizer.isolators.network_ports import NetworkPortsIsolator
from mezzo.agent.containerizer.isolators.posix import (
    PosixCpuIsolator,
    PosixMemIsolator,
    PosixRlimitsIsolator,
)
from mezzo.core.errors import ConfigError

DEFAULT_ISOLATION = "posix/cpu,posix/mem"
AUTO = "auto"


@dataclass(frozen=True)
class IsolationOptions:
    """The agent flags that shape isolators (Mesos names in comments)."""

    isolation: str = DEFAULT_ISOLATION  # --isolation
    cgroups_root: str = "mezzo"  # --cgroups_root (Mesos: "mesos")
    cgroups_enable_cfs: bool = True  # --cgroups_enable_cfs (Mesos default: false)
    # Kill containers found under cgroups_root that the agent does not know on recovery. Off
    # by default: several agents on one machine (tests, `mezzo local`) share the default root.
    cleanup_orphans: bool = False
    # network/ports: --container_ports_watch_interval, the ports checked (None: all; from
    # --container_ports_isolated_range or, with --check_agent_port_range_only, the agent's
    # `ports`), --enforce_container_ports.
    container_ports_watch_interval: float = 30.0
    container_ports_isolated: tuple[tuple[int, int], ...] | None = None
    enforce_container_ports: bool = False


Factory = Callable[[IsolationOptions], Isolator]

ISOLATORS: dict[str, Factory] = {
    "posix/cpu": lambda o: PosixCpuIsolator(),
    "posix/mem": lambda o: PosixMemIsolator(),
    "posix/rlimits": lambda o: PosixRlimitsIsolator(),
    "cgroups/cpu": lambda o: CgroupsCpuIsolator(
        o.cgroups_root, o.cleanup_orphans, enable_cfs=o.cgroups_enable_cfs
    ),
    "cgroups/mem": lambda o: CgroupsMemIsolator(o.cgroups_root, o.cleanup_orphans),
    "cgroups/pids": lambda o: CgroupsPidsIsolator(o.cgroups_root, o.cleanup_orphans),
    "namespaces/pid": lambda o: PidNamespaceIsolator(),
    "network/ports": lambda o: NetworkPortsIsolator(
        o.container_ports_watch_interval, o.container_ports_isolated, o.enforce_container_ports
    ),
    "filesystem/posix": lambda o: PosixFilesystemIsolator(),
    "filesystem/linux": lambda o: LinuxFilesystemIsolator(),
}
# `auto`: for each slot, the first name that is available.
_AUTO_SLOTS = (
    ("filesystem/linux", "filesystem/posix"),
    ("cgroups/cpu", "posix/cpu"),
    ("cgroups/mem", "posix/mem"),
    ("cgroups/pids",),
    ("posix/rlimits",),
)
_UNAVAILABLE = (CgroupUnavailable, NamespacesUnavailable, OSError)


def _build(name: str, options: IsolationOptions) -> Isolator:
    factory = ISOLATORS.get(name)
    if factory is None:
        known = ", ".join(sorted(ISOLATORS))
        raise ConfigError(f"--isolation: unknown isolator {name!r} (known: {known}, auto)")
    try:
        return factory(options)
    except _UNAVAILABLE as e:
        raise ConfigError(f"--isolation: isolator {name!r} is unavailable here: {e}") from e


def available_isolators(options: IsolationOptions | None = None) -> dict[str, str | None]:
    """Every known isolator -> None if usable here, else the reason it is not."""
    options = options or IsolationOptions()
    result: dict[str, str | None] = {}
    for name in ISOLATORS:
        try:
            _build(name, options)
            result[name] = None
        except ConfigError as e:
            result[name] = str(e.__cause__ or e)
    return result


def create_isolators(
    isolation: str | None = None, options: IsolationOptions | None = None
) -> list[Isolator]:
    """Instances for a comma-separated ``--isolation`` value, in the order given.

    ``isolation`` defaults to ``options.isolation``. Duplicates are an error; ``auto`` expands
    as described in the module docstring.
    """
    options = options or IsolationOptions()
    spec = options.isolation if isolation is None else isolation
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if names == [AUTO]:
        result = []
        for slot in _AUTO_SLOTS:
            for name in slot:
                try:
                    result.append(_build(name, options))
                    break
                except ConfigError:
                    continue
        return result
    seen: set[str] = set()
    isolators = []
    for name in names:
        if name in seen:
            raise ConfigError(f"--isolation: isolator {name!r} is listed twice")
        seen.add(name)
        isolators.append(_build(name, options))
    return isolators
