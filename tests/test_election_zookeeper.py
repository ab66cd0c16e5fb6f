"""Election against a real ZooKeeper (standalone server and 3-node ensemble)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from mezzo.election import LeaderInfo
from mezzo.election.zookeeper import ZooKeeperContender, ZooKeeperDetector
from mezzo.testing.pytest_zookeeper import ZkChroot
from mezzo.testing.zookeeper import (
    ZooKeeperEnsemble,
    ZooKeeperInstall,
    expire_session,
    find_zookeeper,
    running_server,
    wait_until,
)

pytestmark = pytest.mark.zookeeper
SESSION = 4.0  # seconds; the test server allows 1..10 s


def info(n: int) -> dict[str, object]:
    return {
        "id": f"master-{n}",
        "hostname": f"m{n}",
        "port": 5050 + n,
        "pid": f"master@127.0.0.{n}:{5050 + n}",
        "version": "1.11.0",
        "address": {"hostname": f"m{n}", "ip": f"127.0.0.{n}", "port": 5050 + n},
    }


def require_zookeeper() -> ZooKeeperInstall:
    """For tests that start their own server instead of using the fixtures."""
    install, reason = find_zookeeper()
    if install is None:
        pytest.skip(f"ZooKeeper unavailable: {reason}")
    return install


class Harness:
    """Creates contenders/detectors and closes them all, whatever the test did."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.closers: list[object] = []

    def contender(self, n: int, **kw: object) -> ZooKeeperContender:
        c = ZooKeeperContender(self.url, info(n), session_timeout=SESSION, **kw)  # type: ignore[arg-type]
        self.closers.append(c)
        return c

    def contend_in_order(self, count: int) -> list[ZooKeeperContender]:
        """Contenders 1..count, each node created before the next contends: 1 leads."""
        out = []
        for n in range(1, count + 1):
            c = self.contender(n)
            c.contend()
            wait_until(lambda c=c: c.node is not None, 20, f"contender {n} to create its node")
            out.append(c)
        return out

    def detector(self) -> ZooKeeperDetector:
        d = ZooKeeperDetector(self.url, session_timeout=SESSION)
        self.closers.append(d)
        d.start()
        return d

    def close(self) -> None:
        for obj in reversed(self.closers):
            obj.close()  # type: ignore[attr-defined]


@pytest.fixture
def harness(zk_chroot: ZkChroot) -> Iterator[Harness]:
    h = Harness(zk_chroot.url)
    yield h
    h.close()


def leaders(contenders: list[ZooKeeperContender]) -> list[ZooKeeperContender]:
    return [c for c in contenders if c.is_leader]


def wait_leader(detector: ZooKeeperDetector, n: int, timeout: float = 20) -> LeaderInfo:
    ok, leader = detector.wait_for(lambda li: li is not None and li.id == f"master-{n}", timeout)
    assert ok, f"detector did not report master-{n}; it reports {leader}"
    assert leader is not None
    return leader


def test_exactly_one_leader_and_detector_agrees(harness: Harness) -> None:
    contenders = harness.contend_in_order(3)
    wait_until(lambda: len(leaders(contenders)) == 1, 20, "one leader")
    assert leaders(contenders) == [contenders[0]]
    leader = wait_leader(harness.detector(), 1)
    assert leader.address == "127.0.0.1:5051" and leader.name == contenders[0].node


def test_layout_is_what_pymesos_reads(harness: Harness, zk_chroot: ZkChroot) -> None:
    contenders = harness.contend_in_order(2)
    wait_until(lambda: contenders[0].is_leader, 20, "first contender elected")
    client = zk_chroot.client()
    try:
        client.create(zk_chroot.path + "/log_replicas", b"")
        children = client.get_children(zk_chroot.path)
        infos = sorted(c for c in children if c != "log_replicas")
        assert all(c.startswith("json.info_") and len(c) == len("json.info_") + 10 for c in infos)
        assert all(client.exists(f"{zk_chroot.path}/{c}").ephemeralOwner != 0 for c in infos)
        # pymesos: drop log_replicas, take the smallest name, JSON address.ip + address.port.
        data = json.loads(client.get(f"{zk_chroot.path}/{min(infos)}")[0])
        assert f"{data['address']['ip']}:{data['address']['port']}" == "127.0.0.1:5051"
        assert data == info(1)
    finally:
        client.stop()
        client.close()


def test_withdraw_hands_over_and_old_leader_reports_lost(harness: Harness) -> None:
    contenders = harness.contend_in_order(3)
    detector = harness.detector()
    wait_leader(detector, 1)
    lost: list[tuple[int, str]] = []
    contenders[0].on_lost(lambda term, reason: lost.append((term, reason)))
    contenders[0].withdraw()
    assert lost == [(1, "withdrawn")]
    wait_until(lambda: contenders[1].is_leader, 20, "contender 2 elected")
    wait_leader(detector, 2)
    assert not contenders[2].is_leader


def test_session_expiry_deposes_leader(harness: Harness, zk_chroot: ZkChroot) -> None:
    contenders = harness.contend_in_order(2)
    detector = harness.detector()
    wait_leader(detector, 1)
    old = contenders[0]
    old_node = old.node
    expire_session(old.client, zk_chroot.hosts)
    assert old.wait_lost(1, 20), "old leader did not report lost after its session expired"
    wait_until(lambda: contenders[1].is_leader, 20, "contender 2 elected")
    wait_leader(detector, 2)
    # The old leader re-contends in its new session, behind the new leader.
    wait_until(lambda: old.node is not None and old.node != old_node, 20, "re-contention")
    assert not old.is_leader and old.term == 1


def test_closing_leader_client_elects_next(harness: Harness) -> None:
    contenders = harness.contend_in_order(2)
    detector = harness.detector()
    wait_leader(detector, 1)
    contenders[0].client.stop()  # the process "dies": its session closes, its node goes
    assert contenders[0].wait_lost(1, 20)
    wait_until(lambda: contenders[1].is_leader, 20, "contender 2 elected")
    wait_leader(detector, 2)


def test_detector_ignores_unrelated_children(harness: Harness, zk_chroot: ZkChroot) -> None:
    client = zk_chroot.client()
    try:
        client.ensure_path(zk_chroot.path)
        client.create(zk_chroot.path + "/log_replicas", b"\x00binary")
        client.create(zk_chroot.path + "/info_0000000000", b"\x08protobuf")
        client.create(zk_chroot.path + "/registry", b"")
        detector = harness.detector()
        # Nothing but unrelated children: no leader. Then a contender appears.
        wait_until(lambda: detector.client.connected, 20, "detector connected")
        assert detector.leader() is None
        (c,) = harness.contend_in_order(1)
        wait_leader(detector, 1)
        assert c.is_leader
    finally:
        client.stop()
        client.close()


def test_detector_before_path_exists_and_no_leader_after(harness: Harness) -> None:
    detector = harness.detector()
    wait_until(lambda: detector.client.connected, 20, "detector connected")
    (c,) = harness.contend_in_order(1)
    wait_leader(detector, 1)
    c.withdraw()
    ok, _ = detector.wait_for(lambda li: li is None, 20)
    assert ok


async def test_asyncio_api(harness: Harness) -> None:
    loop = asyncio.get_running_loop()
    detector = harness.detector()
    first, second = harness.contender(1), harness.contender(2)
    elected_on_loop: asyncio.Queue[int] = asyncio.Queue()
    second.on_elected(elected_on_loop.put_nowait, loop=loop)
    first.contend()
    assert await asyncio.wait_for(first.elected(), 20) == 1
    second.contend()
    leader = await asyncio.wait_for(detector.detect(), 20)
    assert leader is not None and leader.id == "master-1"
    await asyncio.to_thread(wait_until, lambda: second.node is not None, 20, "second node")
    lost = asyncio.ensure_future(first.lost(1))
    change = asyncio.ensure_future(detector.detect(leader))
    await asyncio.to_thread(first.withdraw)
    await asyncio.wait_for(lost, 20)
    assert await asyncio.wait_for(elected_on_loop.get(), 20) == 1
    new = await asyncio.wait_for(change, 20)
    # The detector may briefly report "no leader" between the two; follow until master-2.
    while new is None or new.id != "master-2":
        new = await asyncio.wait_for(detector.detect(new), 20)
    assert new.address == "127.0.0.2:5052"


@pytest.mark.slow
def test_disconnection_longer_than_grace_deposes_leader(tmp_path: Path) -> None:
    require_zookeeper()
    with running_server(tmp_path / "zk") as server:
        url = f"zk://{server.hosts}/grace"
        c = ZooKeeperContender(url, info(1), session_timeout=SESSION, suspended_grace=0.5)
        try:
            c.contend()
            assert c.wait_elected(20) == 1
            server.kill()
            assert c.wait_lost(1, 20), "a leader cut off from ZooKeeper must step down"
            server.start()  # same data dir and port: the session may survive; re-elected if so
            server.wait_serving()
            assert c.wait_elected(30) == 2
        finally:
            c.close()


@pytest.mark.slow
def test_ensemble_survives_a_member_loss(zk_ensemble: ZooKeeperEnsemble) -> None:
    url = f"zk://{zk_ensemble.hosts}/mezzo"
    h = Harness(url)
    try:
        contenders = h.contend_in_order(3)
        detector = h.detector()
        wait_leader(detector, 1)
        zk_leader = zk_ensemble.leader()
        assert zk_leader is not None
        zk_leader.kill()  # the ZooKeeper leader crashes: the other two elect a new one
        zk_ensemble.wait_quorum()
        wait_until(lambda: zk_ensemble.leader() is not None, 30, "a new ZooKeeper leader")
        # Sessions survive the member loss (grace covers the reconnection): still one leader.
        wait_until(lambda: len(leaders(contenders)) == 1, 30, "exactly one leader")
        wait_leader(detector, contenders.index(leaders(contenders)[0]) + 1)
        # And election still works: the leader's process dies, the next one takes over.
        current = leaders(contenders)[0]
        current.client.stop()
        wait_until(
            lambda: len(leaders(contenders)) == 1 and leaders(contenders)[0] is not current,
            30,
            "a new leader",
        )
    finally:
        h.close()


def test_fixture_reports_install() -> None:
    install = require_zookeeper()
    assert "zookeeper.jar" in install.classpath


def test_raw_client_sees_ephemeral_cleanup(zk_chroot: ZkChroot) -> None:
    """Sanity check of the fixture itself: a closed client's ephemeral nodes disappear."""
    a = KazooClient(hosts=zk_chroot.hosts)
    a.start(timeout=20)
    a.create(zk_chroot.path + "/e", b"", ephemeral=True, makepath=True)
    a.stop()
    a.close()
    b = zk_chroot.client()
    try:
        assert b.exists(zk_chroot.path + "/e") is None
    finally:
        b.stop()
        b.close()
