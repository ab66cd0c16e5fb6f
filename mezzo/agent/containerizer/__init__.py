"""The containerizer: a launcher plus an ordered list of isolators.

Public API (everything the agent needs is re-exported here):

- :class:`Containerizer` — ``launch``, ``wait``, ``destroy``, ``update``, ``usage``,
  ``recover``, ``containers``; built from ``--isolation`` by ``Containerizer.create``.
- :class:`ContainerConfig`, :class:`Termination`, :class:`Limitation`,
  :class:`ResourceStatistics`, :class:`ContainerState` — plain records (no wire types).
- :class:`Isolator` — the plug-in contract; :func:`create_isolators`,
  :func:`available_isolators`, :class:`IsolationOptions`, ``DEFAULT_ISOLATION``.
- :mod:`.paths` — the on-disk layout of the agent's work_dir.
"""

from mezzo.agent.containerizer.containerizer import Containerizer
from mezzo.agent.containerizer.detect import (
    DEFAULT_ISOLATION,
    IsolationOptions,
    available_isolators,
    create_isolators,
)
from mezzo.agent.containerizer.isolator import Isolator
from mezzo.agent.containerizer.records import (
    REASON_CONTAINER_LIMITATION,
    REASON_CONTAINER_LIMITATION_MEMORY,
    ContainerConfig,
    ContainerState,
    ContainerStdio,
    LaunchError,
    LaunchInfo,
    Limitation,
    ResourceStatistics,
    Termination,
    VolumeMount,
)

__all__ = [
    "DEFAULT_ISOLATION",
    "REASON_CONTAINER_LIMITATION",
    "REASON_CONTAINER_LIMITATION_MEMORY",
    "ContainerConfig",
    "ContainerState",
    "ContainerStdio",
    "Containerizer",
    "IsolationOptions",
    "Isolator",
    "LaunchError",
    "LaunchInfo",
    "Limitation",
    "ResourceStatistics",
    "Termination",
    "VolumeMount",
    "available_isolators",
    "create_isolators",
]
