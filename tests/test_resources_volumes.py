"""Disk resources and persistent volumes in `mezzo.resources`: identity, atomic arithmetic,
conversions and Mesos's checks (issue 14 §3)."""

from __future__ import annotations

import json

from mezzo.resources import Resources
from mezzo.resources import volumes as vol


def volume(
    vid: str = "data", size: float = 64, role: str = "eng", path: str = "data", mode: str = "RW",
    source: dict[str, object] | None = None, shared: bool = False, principal: str | None = None,
) -> Resources:
    disk: dict[str, object] = {
        "persistence": {"id": vid, **({"principal": principal} if principal else {})},
        "volume": {"container_path": path, "mode": mode},
    }
    if source is not None:
        disk["source"] = source
    r: dict[str, object] = {
        "name": "disk", "type": "SCALAR", "scalar": {"value": size},
        "reservations": [{"type": "STATIC", "role": role}], "disk": disk,
    }
    if shared:
        r["shared"] = {}
    return Resources.parse(json.dumps([r]))


def disk(size: float, role: str = "eng", source: dict[str, object] | None = None) -> Resources:
    r: dict[str, object] = {"name": "disk", "type": "SCALAR", "scalar": {"value": size},
                            "reservations": [{"type": "STATIC", "role": role}]}
    if source is not None:
        r["disk"] = {"source": source}
    return Resources.parse(json.dumps([r]))


MOUNT = {"type": "MOUNT", "mount": {"root": "/mnt/ssd"}}
PATH = {"type": "PATH", "path": {"root": "/mnt/hdd"}}


def test_identity_ignores_container_path_mode_and_principal() -> None:
    a = volume(path="data", mode="RW", principal="alice")
    b = volume(path="elsewhere", mode="RO")
    assert a == b
    assert a.contains(b) and (a - b).is_empty()
    assert volume(vid="other") != a
    # the wire keeps what was given
    (w,) = b.to_wire()
    assert w.disk is not None and w.disk.volume is not None
    assert w.disk.volume.container_path == "elsewhere" and w.disk.volume.mode == "RO"


def test_a_volume_is_taken_whole() -> None:
    v = volume(size=64)
    assert not v.contains(volume(size=32))
    assert (v - volume(size=32)) == v  # not subtractable: unchanged
    assert (v - volume(size=128)) == v
    assert (v - v).is_empty()
    # a volume is not the disk it was made of
    assert not (disk(64)).contains(v) and not v.contains(disk(64))


def test_mount_disks_are_atomic_path_disks_split() -> None:
    m = disk(100, source=MOUNT)
    assert not m.contains(disk(50, source=MOUNT))
    assert m - disk(50, source=MOUNT) == m
    p = disk(100, source=PATH)
    assert p.contains(disk(50, source=PATH))
    assert p - disk(50, source=PATH) == disk(50, source=PATH)
    assert not p.contains(disk(50))  # a PATH disk is not the root disk


def test_shared_volumes_count_copies() -> None:
    s = volume(shared=True)
    two = s + s
    assert len(two) == 2 and two.contains(s) and (two - s) == s
    assert two.quantities()["disk"] == 64  # one distinct volume


def test_create_and_destroy_conversions() -> None:
    v = volume(size=64, source=PATH)
    ((consumed, converted),) = vol.create(v)
    assert consumed == disk(64, source=PATH) and converted == v
    ((consumed, converted),) = vol.destroy(v)
    assert consumed == v and converted == disk(64, source=PATH)
    ((consumed, converted),) = vol.create(volume(size=10, shared=True))
    assert consumed == disk(10)  # never shared before


def test_grow_and_shrink_conversions() -> None:
    v = volume(size=64)
    ((consumed, converted),) = vol.grow(v, disk(36))
    assert consumed == v + disk(36)
    assert converted == volume(size=100)
    ((consumed, converted),) = vol.shrink(v, 14_000)
    assert consumed == v and converted == volume(size=50) + disk(14)


def test_mesos_checks() -> None:
    assert vol.disk_info_problem(volume()) is None
    unreserved = Resources.parse(json.dumps([{
        "name": "disk", "type": "SCALAR", "scalar": {"value": 1},
        "disk": {"persistence": {"id": "x"}, "volume": {"container_path": "x", "mode": "RW"}}}]))
    assert vol.disk_info_problem(unreserved) == (
        "Persistent volumes cannot be created from unreserved resources")
    assert vol.disk_info_problem(volume(vid="a/b")) == (
        "Invalid persistence ID for persistent volume: 'a/b' contains invalid characters")
    assert vol.persistent_volume_problem(volume(mode="RO")) == (
        "Read-only persistent volume not supported")
    assert vol.persistent_volume_problem(disk(1)) is not None
    assert vol.unique_persistence_id_problem([*volume(), *volume(path="y", size=2)]) == (
        "Persistence ID 'data' is not unique")
    assert vol.unique_persistence_id_problem([*volume(), *volume(role="ops")]) is None


def test_volume_paths_as_mesos() -> None:
    (item,) = list(volume(vid="db", role="eng/web"))
    assert vol.volume_path("/w", item) == "/w/volumes/roles/eng web/db"
    (item,) = list(volume(vid="db", source=PATH))
    assert vol.volume_path("/w", item) == "/mnt/hdd/volumes/roles/eng/db"
    (item,) = list(volume(vid="db", source={"type": "PATH", "path": {"root": "rel"}}))
    assert vol.volume_path("/w", item) == "/w/rel/volumes/roles/eng/db"
    (item,) = list(volume(vid="db", source=MOUNT))
    assert vol.volume_path("/w", item) == "/mnt/ssd"


def test_printing_as_mesos() -> None:
    assert str(volume(source=PATH)) == "disk(eng)[PATH:/mnt/hdd,data:data]:64"


# --------------------------------------------------------------------------- agent disk sources


def _disk_json(source: dict[str, object]) -> str:
    return json.dumps([{"name": "disk", "type": "SCALAR", "scalar": {"value": 10},
                        "reservations": [{"type": "STATIC", "role": "eng"}],
                        "disk": {"source": source}}])


def test_agent_disk_sources_are_checked_as_mesos(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from mezzo.agent.flags import check_disk_sources
    from mezzo.core.errors import ConfigError

    # PATH: created if missing, a relative root under the work dir.
    check_disk_sources(Resources.parse(_disk_json({"type": "PATH", "path": {"root": "ssd"}})),
                       str(tmp_path))
    assert (tmp_path / "ssd").is_dir()
    # MOUNT: must be a mount point.
    check_disk_sources(Resources.parse(_disk_json({"type": "MOUNT", "mount": {"root": "/proc"}})),
                       str(tmp_path))
    with pytest.raises(ConfigError, match=f"^Failed to find mount '{tmp_path}' in /proc/mounts$"):
        check_disk_sources(Resources.parse(_disk_json(
            {"type": "MOUNT", "mount": {"root": str(tmp_path)}})), str(tmp_path))
    with pytest.raises(ConfigError, match="MOUNT disk root directory is not specified"):
        check_disk_sources(Resources.parse(_disk_json({"type": "MOUNT"})), str(tmp_path))
    with pytest.raises(ConfigError, match=r"^Unsupported 'DiskInfo\.Source\.Type'"):
        check_disk_sources(Resources.parse(_disk_json({"type": "RAW"})), str(tmp_path))


# --------------------------------------------------------------------------- the agent's side


def test_agent_applies_create_and_destroy_and_syncs_directories(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mezzo.agent import volumes as volume_dirs
    from mezzo.agent.operations import AgentOperations
    from mezzo.api.codec import convert
    from mezzo.api.common import UUID, AgentID, OfferOperation
    from mezzo.api.internal import AgentApplyOperation
    from mezzo.resources.conversions import apply_checkpointed

    static = Resources.parse("cpus:2;disk(eng):100")
    ops = AgentOperations(static)
    wire_volume = [{"name": "disk", "type": "SCALAR", "scalar": {"value": 64},
                    "reservations": [{"type": "STATIC", "role": "eng"}],
                    "disk": {"persistence": {"id": "db"},
                             "volume": {"container_path": "data", "mode": "RW"}}}]

    def apply(kind: str, uuid: bytes) -> str:
        op = convert({"type": kind, kind.lower(): {"volumes": wire_volume}}, OfferOperation)
        _, call = ops.apply(AgentApplyOperation(operation_info=op, operation_uuid=UUID(value=uuid)),
                            AgentID(value="A"), uuid, now=0.0)
        assert call.update_operation_status is not None
        return str(call.update_operation_status.status.state)

    before = ops.checkpointed
    assert apply("CREATE", b"c" * 16) == "OPERATION_FINISHED"
    assert ops.checkpointed.persistent_volumes().disk() == 64
    assert ops.total.reserved("eng").disk() == 100
    # A restarted agent carves the checkpointed volume out of its static resources again.
    assert apply_checkpointed(static, ops.checkpointed) == ops.total
    volume_dirs.sync(str(tmp_path), before, ops.checkpointed)
    path = tmp_path / "volumes" / "roles" / "eng" / "db"
    (path / "file").write_text("kept")
    volume_dirs.sync(str(tmp_path), before, ops.checkpointed)  # idempotent: data kept
    assert (path / "file").read_text() == "kept"
    after_create = ops.checkpointed
    assert apply("CREATE", b"d" * 16) == "OPERATION_FAILED"  # the disk is a volume already
    assert apply("DESTROY", b"e" * 16) == "OPERATION_FINISHED"
    assert ops.checkpointed.is_empty() and ops.total == static
    volume_dirs.sync(str(tmp_path), after_create, ops.checkpointed)
    assert not path.exists()
