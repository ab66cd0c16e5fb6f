"""pytest fixtures backed by real ZooKeeper processes (see mezzo.testing.zookeeper).

- ``zk_server`` (session): one standalone server shared by the whole run;
- ``zk_chroot`` (function): a unique, initially absent path on that server, deleted afterwards,
  so tests never see each other's nodes;
- ``zk_ensemble`` (function): a fresh 3-node ensemble, for tests that stop or kill members.

When java or the ZooKeeper jars are missing, the fixtures skip with the exact reason.
Registered for the suite by ``pytest_plugins`` in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kazoo.client import KazooClient

from mezzo.testing.zookeeper import (
    ZooKeeperEnsemble,
    ZooKeeperInstall,
    ZooKeeperServer,
    find_zookeeper,
    free_ports,
)


@dataclass(frozen=True)
class ZkChroot:
    """A private path on a running server: ``hosts`` for kazoo, ``url`` for mezzo flags."""

    hosts: str
    path: str

    @property
    def url(self) -> str:
        return f"zk://{self.hosts}{self.path}"

    def client(self, timeout: float = 10.0) -> KazooClient:
        """A started kazoo client on the server (not chrooted); the caller stops it."""
        client = KazooClient(hosts=self.hosts, timeout=timeout)
        client.start(timeout=30)
        return client


def _install() -> ZooKeeperInstall:
    install, reason = find_zookeeper()
    if install is None:
        pytest.skip(f"ZooKeeper unavailable: {reason}")
    return install


@pytest.fixture(scope="session")
def zk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    server = ZooKeeperServer(
        install=_install(),
        data_dir=tmp_path_factory.mktemp("zookeeper"),
        client_port=free_ports(1)[0],
    )
    server.start()
    try:
        server.wait_serving(60.0)
        yield server
    finally:
        server.stop()


@pytest.fixture
def zk_chroot(zk_server: ZooKeeperServer) -> Iterator[ZkChroot]:
    chroot = ZkChroot(hosts=zk_server.hosts, path=f"/t-{uuid.uuid4().hex[:12]}")
    yield chroot
    # Best effort: a test that killed the server (it should not: use zk_ensemble) skips cleanup.
    with contextlib.suppress(Exception):
        client = chroot.client()
        try:
            client.delete(chroot.path, recursive=True)
        finally:
            client.stop()
            client.close()


@pytest.fixture
def zk_ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperEnsemble]:
    ensemble = ZooKeeperEnsemble(_install(), tmp_path_factory.mktemp("zk-ensemble"), size=3)
    try:
        ensemble.start()
        yield ensemble
    finally:
        ensemble.stop()
