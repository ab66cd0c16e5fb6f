"""The agent's persistent volume directories (Mesos's `Slave::syncCheckpointedResources`).

When the checkpointed resources change (an APPLY_OPERATION with CREATE or DESTROY), the shell
calls `sync(work_dir, before, after)` just before it writes them: the directory of every new
volume is created, and the directory of every volume that is gone is deleted — for a MOUNT
disk only what is inside it, never the mount point. Where a volume lives:
`mezzo.resources.volumes.volume_path` (`<work_dir>/volumes/roles/<role>/<id>`, under a PATH
disk's root, or a MOUNT disk's root).

A directory that already exists is kept as it is (data written before a failed destroy, or a
MOUNT disk's root); a missing one at destroy is only logged, as Mesos does.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from mezzo.resources import ResourceItem, Resources
from mezzo.resources.disk import MOUNT, as_disk_key
from mezzo.resources.volumes import volume_path

log = logging.getLogger(__name__)


def _paths(work_dir: str, resources: Resources) -> dict[str, ResourceItem]:
    return {volume_path(work_dir, item): item for item in resources.persistent_volumes()}


def sync(work_dir: str, before: Resources, after: Resources) -> None:
    """Create the directories of new volumes, delete those of destroyed ones (OSError if a
    directory cannot be created or removed)."""
    old = _paths(work_dir, before)
    new = _paths(work_dir, after)
    for path in new.keys() - old.keys():
        if not os.path.exists(path):
            log.info("creating persistent volume %s at %s",
                     _persistence_id(new[path]), path)
            os.makedirs(path, exist_ok=True)
    for path in old.keys() - new.keys():
        item = old[path]
        log.info("deleting persistent volume %s at %s", _persistence_id(item), path)
        if not os.path.exists(path):
            log.warning("failed to find persistent volume %s at %s", _persistence_id(item), path)
            continue
        disk = as_disk_key(item.key.disk)
        if disk is not None and disk.source_type == MOUNT:
            for child in Path(path).iterdir():  # the mount point itself stays
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            shutil.rmtree(path)


def _persistence_id(item: ResourceItem) -> str:
    disk = as_disk_key(item.key.disk)
    return disk.persistence_id or "" if disk is not None else ""
