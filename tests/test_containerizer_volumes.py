"""Persistent volumes in containers (issue 14 §3): filesystem/posix links them into the
sandbox, filesystem/linux bind-mounts them (RO enforced) and unmounts them on cleanup; data
outlives the container. Real processes; filesystem/linux needs root (skipped otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mezzo.agent.containerizer import (
    ContainerConfig,
    Containerizer,
    IsolationOptions,
    VolumeMount,
)
from mezzo.agent.containerizer.isolators.filesystem import mount_points_under
from mezzo.testing.processes import eventually

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")


def _create(isolation: str) -> Containerizer:
    return Containerizer.create(IsolationOptions(isolation=isolation))


async def test_posix_is_added_and_links_the_volume(tmp_path: Path) -> None:
    c = _create("posix/cpu")
    assert [i.name for i in c.isolators] == ["filesystem/posix", "posix/cpu"]
    volume = tmp_path / "volumes" / "roles" / "eng" / "data"
    sandbox = tmp_path / "run1"
    config = ContainerConfig(
        sandbox=sandbox, shell="echo hello > data/file; cat data/file",
        volumes=(VolumeMount(str(volume), "data"),),
    )
    await c.launch("c1", config)
    termination = await c.wait("c1")
    assert termination.exit_code == 0, (sandbox / "stderr").read_text()
    assert (volume / "file").read_text() == "hello\n"
    assert not (sandbox / "data").exists()  # the link is gone, the data stays
    # a later container sees the data
    sandbox2 = tmp_path / "run2"
    await c.launch("c2", ContainerConfig(
        sandbox=sandbox2, shell="cat data/file", volumes=(VolumeMount(str(volume), "data"),)))
    assert (await c.wait("c2")).exit_code == 0
    assert (sandbox2 / "stdout").read_text() == "hello\n"


async def test_posix_refuses_nested_container_paths(tmp_path: Path) -> None:
    c = _create("posix/cpu")
    config = ContainerConfig(sandbox=tmp_path / "s", argv=["true"],
                             volumes=(VolumeMount(str(tmp_path / "v"), "a/b"),))
    with pytest.raises(Exception, match="contains a slash"):
        await c.launch("c1", config)


@ROOT_ONLY
async def test_linux_bind_mounts_and_enforces_read_only(tmp_path: Path) -> None:
    c = _create("filesystem/linux,posix/cpu")
    assert c.isolators[0].name == "filesystem/linux"
    volume = tmp_path / "vol"
    volume.mkdir()
    (volume / "seed").write_text("seed\n")
    sandbox = tmp_path / "run1"
    config = ContainerConfig(
        sandbox=sandbox,
        shell="cat ro/seed; echo x > ro/new 2>/dev/null && echo wrote || echo refused; "
              "echo rw > deep/dir/written; sleep 30",
        volumes=(VolumeMount(str(volume), "ro", read_only=True),
                 VolumeMount(str(volume), "deep/dir")),
    )
    await c.launch("c1", config)
    try:
        await eventually(lambda: (volume / "written").exists(), 10, "the task's write")
        assert sorted(mount_points_under(sandbox)) == [str(sandbox / "deep/dir"), str(sandbox / "ro")]
        assert (sandbox / "stdout").read_text() == "seed\nrefused\n"
        assert (volume / "written").read_text() == "rw\n"
    finally:
        await c.destroy("c1")
    assert mount_points_under(sandbox) == []
    assert (volume / "seed").exists()  # cleanup never touches the data


@ROOT_ONLY
async def test_linux_update_adds_and_removes_volumes(tmp_path: Path) -> None:
    c = _create("filesystem/linux")
    a, b = tmp_path / "a", tmp_path / "b"
    sandbox = tmp_path / "run"
    await c.launch("c1", ContainerConfig(sandbox=sandbox, argv=["sleep", "30"],
                                         volumes=(VolumeMount(str(a), "a"),)))
    try:
        assert mount_points_under(sandbox) == [str(sandbox / "a")]
        await c.update("c1", volumes=[VolumeMount(str(b), "b")])
        assert mount_points_under(sandbox) == [str(sandbox / "b")]
    finally:
        await c.destroy("c1")
    assert mount_points_under(sandbox) == []


@ROOT_ONLY
def test_sandbox_gc_never_deletes_through_a_mount(tmp_path: Path) -> None:
    import subprocess

    from mezzo.agent.sandbox_gc import _remove_all

    volume, run = tmp_path / "vol", tmp_path / "run"
    (run / "data").mkdir(parents=True)
    volume.mkdir()
    (volume / "precious").write_text("x")
    subprocess.run(["mount", "--bind", str(volume), str(run / "data")], check=True)
    try:
        _remove_all([str(run)])
        assert (volume / "precious").exists() and run.exists()
    finally:
        subprocess.run(["umount", "-l", str(run / "data")], check=False)
    _remove_all([str(run)])
    assert not run.exists() and (volume / "precious").exists()


@ROOT_ONLY
async def test_linux_volumes_are_seen_inside_a_pid_namespace(tmp_path: Path) -> None:
    from mezzo.core.errors import ConfigError

    try:
        c = _create("filesystem/linux,namespaces/pid")
    except ConfigError as e:
        pytest.skip(str(e))
    volume = tmp_path / "vol"
    volume.mkdir()
    (volume / "seed").write_text("from the host\n")
    sandbox = tmp_path / "run"
    await c.launch("c1", ContainerConfig(
        sandbox=sandbox, shell="cat data/seed; echo $$; touch ro/x 2>/dev/null || echo ro",
        volumes=(VolumeMount(str(volume), "data"), VolumeMount(str(volume), "ro", True))))
    assert (await c.wait("c1")).exit_code == 0
    assert (sandbox / "stdout").read_text() == "from the host\n1\nro\n"
    assert mount_points_under(sandbox) == []
