"""Election without ZooKeeper: URL parsing, payload checks, node naming, standalone election."""

from __future__ import annotations

import asyncio

import pytest

from mezzo.core.errors import ConfigError, ValidationError
from mezzo.election import (
    LeaderInfo,
    StandaloneContender,
    StandaloneDetector,
    create_contender,
    create_detector,
    encode_master_info,
    parse_zk_url,
)
from mezzo.election.zookeeper import leader_node, node_sequence

INFO = {
    "id": "m1",
    "hostname": "host1",
    "port": 5050,
    "pid": "master@10.0.0.1:5050",
    "version": "1.11.0",
    "address": {"hostname": "host1", "ip": "10.0.0.1", "port": 5050},
}


def test_parse_zk_url() -> None:
    url = parse_zk_url("zk://h1:2181,h2:2181/mezzo")
    assert (url.hosts, url.path, url.auth) == ("h1:2181,h2:2181", "/mezzo", None)
    assert parse_zk_url("zk://u:p@h1/a/b/").path == "/a/b"
    assert parse_zk_url("zk://u:p@h1/a").auth == ("u", "p")
    assert str(parse_zk_url("zk://u:p@h1:1/a")) == "zk://u:p@h1:1/a"


@pytest.mark.parametrize(
    "bad",
    [
        "h1:2181/mezzo",
        "zoo://h1/m",
        "zk://",
        "zk:///mezzo",
        "zk://h1:2181",
        "zk://h1:2181/",
        "zk://h1:port/m",
        "zk://h1:99999/m",
        "zk://h1,,h2/m",
        "zk://user@h1/m",
        "zk://h1/a//b",
        "zk://h1/a/../b",
    ],
)
def test_malformed_zk_urls(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_zk_url(bad)


def test_node_names() -> None:
    assert node_sequence("json.info_0000000012") == 12
    for other in ["log_replicas", "info_0000000001", "json.info_12", "json.info_00000000x1"]:
        assert node_sequence(other) is None
    children = ["log_replicas", "json.info_0000000007", "info_0000000000", "json.info_0000000003"]
    assert leader_node(children) == "json.info_0000000003"
    assert leader_node(["log_replicas"]) is None


def test_payload_must_carry_an_address() -> None:
    raw = encode_master_info(INFO)
    assert b'"address":{"hostname":"host1","ip":"10.0.0.1","port":5050}' in raw
    assert encode_master_info(raw) == raw
    for bad in [{"id": "x"}, {"address": {"ip": "1.2.3.4"}}, b"not json", b"[1]"]:
        with pytest.raises(ValidationError):
            encode_master_info(bad)  # type: ignore[arg-type]
    leader = LeaderInfo("json.info_0000000001", 1, INFO, raw)
    assert leader.address == "10.0.0.1:5050" and leader.id == "m1"


def test_standalone_contender_terms_and_callbacks() -> None:
    contender = StandaloneContender(INFO)
    events: list[object] = []
    contender.on_elected(lambda term: events.append(("elected", term)))
    contender.on_lost(lambda term, reason: events.append(("lost", term, reason)))
    assert not contender.is_leader and contender.wait_elected(0) is None
    contender.contend()
    assert contender.is_leader and contender.wait_elected(0) == 1
    contender.withdraw()
    assert contender.wait_lost(1, 0)
    assert events == [("elected", 1), ("lost", 1, "withdrawn")]


async def test_standalone_awaitables() -> None:
    contender = create_contender(None, INFO)
    waiter = asyncio.ensure_future(contender.elected())
    await asyncio.sleep(0)
    assert not waiter.done()
    contender.contend()
    assert await asyncio.wait_for(waiter, 5) == 1
    lost = asyncio.ensure_future(contender.lost())
    contender.withdraw()
    await asyncio.wait_for(lost, 5)


async def test_standalone_detector() -> None:
    detector = create_detector("host2")
    assert isinstance(detector, StandaloneDetector)
    detector.start()
    leader = await asyncio.wait_for(detector.detect(), 5)
    assert leader is not None and leader.address == "host2:5050"
    change = asyncio.ensure_future(detector.detect(leader))
    detector.appoint(INFO)
    new = await asyncio.wait_for(change, 5)
    assert new is not None and new.address == "10.0.0.1:5050"
    gone = asyncio.ensure_future(detector.detect(new))
    detector.appoint(None)
    assert await asyncio.wait_for(gone, 5) is None


async def test_callbacks_marshalled_to_loop() -> None:
    loop = asyncio.get_running_loop()
    seen: asyncio.Queue[int] = asyncio.Queue()
    contender = StandaloneContender(INFO)
    contender.on_elected(seen.put_nowait, loop=loop)
    # Elect from a foreign thread, as kazoo would.
    await asyncio.to_thread(contender.contend)
    assert await asyncio.wait_for(seen.get(), 5) == 1
