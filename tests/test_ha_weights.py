"""Role weights survive a failover (issue 10 item 5): real `mezzo master --zk` processes against
a real ZooKeeper. An operator's UPDATE_WEIGHTS on the leader is stored in the registry; after
the leader is SIGKILLed the new leader serves those weights, not its own `--weights`."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from mezzo.testing.ha_cluster import HaCluster
from mezzo.testing.pytest_zookeeper import ZkChroot

pytestmark = [pytest.mark.slow, pytest.mark.zookeeper]


def operator_call(url: str, body: dict) -> tuple[int, dict | None]:
    request = urllib.request.Request(url + "/api/v1", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        data = resp.read()
        return resp.status, json.loads(data) if data else None


def test_weights_set_by_an_operator_survive_a_failover(zk_chroot: ZkChroot, tmp_path: Path) -> None:
    with HaCluster(zk_chroot.url, 2, work_dir=tmp_path, session_timeout="2secs",
                   extra=["--weights", "web=9"]) as cluster:
        cluster.start()
        leader = cluster.wait_leader()
        assert operator_call(leader.url, {"type": "GET_WEIGHTS"})[1] == {
            "type": "GET_WEIGHTS", "get_weights": {"weight_infos": [{"role": "web", "weight": 9.0}]}}
        status, _ = operator_call(leader.url, {"type": "UPDATE_WEIGHTS", "update_weights": {
            "weight_infos": [{"role": "web", "weight": 2.5}, {"role": "batch", "weight": 0.5}]}})
        assert status == 200
        leader.kill()
        successor = cluster.wait_leader(exclude=leader)
        weights = operator_call(successor.url, {"type": "GET_WEIGHTS"})[1]
        assert weights is not None
        assert sorted((w["role"], w["weight"]) for w in weights["get_weights"]["weight_infos"]) == [
            ("batch", 0.5), ("web", 2.5)]
        assert "ignoring --weights" in successor.log_tail(200)
