"""Quota in the master core (issue 14 §1) on a FakeClock: UPDATE_QUOTA / SET_QUOTA /
REMOVE_QUOTA validated with Mesos's messages, a limit below consumption refused without
`force`, stored in the registry and recovered by the next leader, outstanding offers of the
changed role rescinded, limits honoured at the next allocation."""

from __future__ import annotations

import pytest

from mezzo.master.core import CallRefused
from mezzo.master.registry import UpdateQuota
from mezzo.store.memory import MemoryStore
from mezzo.testing.master_cluster import MasterCluster, framework_info


def config(role: str, guarantees: dict | None = None, limits: dict | None = None) -> dict:
    return {"role": role,
            "guarantees": {n: {"value": v} for n, v in (guarantees or {}).items()},
            "limits": {n: {"value": v} for n, v in (limits or {}).items()}}


def offered_cpus(cluster: MasterCluster, sched) -> float:
    cluster.allocate()
    return sum(r.scalar.value for e in sched.all_of("OFFERS") for o in e.offers.offers
               for r in o.resources if r.name == "cpus")


def test_limit_caps_offers_and_is_stored_and_recovered() -> None:
    store = MemoryStore()
    c = MasterCluster(store=store)
    for _ in range(4):
        c.add_agent("cpus:4;mem:4096")
    c.master.update_quota({"quota_configs": [config("team", {"cpus": 2}, {"cpus": 8})]})
    assert c.outbox.operations[-1] == UpdateQuota(quotas={
        "team": {"guarantees": {"cpus": 2.0}, "limits": {"cpus": 8.0}}})
    s = c.add_scheduler(framework_info(role="team"))
    assert offered_cpus(c, s) == 8.0
    c2 = MasterCluster(store=store)  # the next leader
    assert c2.master.quota_config == c.master.quota_config
    assert c2.master.allocator.quotas()["team"].limits == {"cpus": 8.0}


def test_lowering_a_limit_below_consumption_needs_force_and_rescinds_offers() -> None:
    c = MasterCluster()
    for _ in range(2):
        c.add_agent("cpus:4;mem:4096")
    s = c.add_scheduler(framework_info(role="team"))
    assert offered_cpus(c, s) == 8.0
    with pytest.raises(CallRefused) as refused:
        c.master.update_quota({"quota_configs": [config("team", limits={"cpus": 4})]})
    assert refused.value.status == 400
    assert refused.value.message == (
        "Invalid QuotaConfig: Role 'team' is already consuming 'cpus:8'; this is more than "
        "the requested limits 'cpus:4' (use 'force' flag to bypass this check)")
    assert c.master.quota_config == {} and len(c.master.offers) == 2  # nothing changed
    c.master.update_quota({"force": True, "quota_configs": [config("team", limits={"cpus": 4})]})
    assert c.master.offers == {}  # rescinded
    assert len(s.all_of("RESCIND")) == 2
    assert offered_cpus(c, s) == 4.0  # the next allocation honours the lowered limit


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"quota_configs": [config("-bad", limits={"cpus": 1})]}, "Invalid 'QuotaConfig.role'"),
        ({"quota_configs": [config("a/b", limits={"cpus": 1})]},
         "Updating quota on nested role 'a/b' is not supported yet"),
        ({"quota_configs": [config("a", limits={"cpus": -1})]}, "Negative values not supported"),
        ({"quota_configs": [config("a", {"cpus": 4}, {"cpus": 2})]}, "is larger than its limit"),
        ({"quota_configs": [config("a", limits={"mem": 2e12})]}, "greater than 1 exabyte"),
        ({"quota_configs": [{"guarantees": {}}]}, "'QuotaConfig.role' must be set"),
    ],
)
def test_invalid_quota_configs_are_refused_and_change_nothing(body: dict, message: str) -> None:
    c = MasterCluster()
    with pytest.raises(CallRefused, match=message) as refused:
        c.master.update_quota(body)
    assert refused.value.status == 400
    assert c.master.quota_config == {} and c.outbox.operations == []


def test_set_quota_sets_guarantee_and_limit_and_remove_quota_removes_it() -> None:
    c = MasterCluster()
    request = {"quota_request": {"role": "team", "guarantee": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 3}}]}}
    c.master.set_quota(request)
    assert c.master.quota_config == {"team": {"guarantees": {"cpus": 3.0}, "limits": {"cpus": 3.0}}}
    with pytest.raises(CallRefused, match="which already has quota"):
        c.master.set_quota(request)
    c.master.remove_quota("team")
    assert c.master.quota_config == {}
    assert c.outbox.operations[-1] == UpdateQuota(quotas={})
    with pytest.raises(CallRefused, match="has no quota set"):
        c.master.remove_quota("team")


@pytest.mark.parametrize("name", [["cpus"], {"a": 1}, None, 5, ""])
def test_set_quota_with_a_resource_name_that_is_not_a_string_is_400(name: object) -> None:
    """Found by the fuzz test: a list as a guarantee's `name` was a 500 (unhashable type)."""
    c = MasterCluster()
    with pytest.raises(CallRefused, match="needs a 'name' string") as refused:
        c.master.set_quota({"quota_request": {"role": "team", "guarantee": [
            {"name": name, "type": "SCALAR", "scalar": {"value": 3}}]}})
    assert refused.value.status == 400
    assert c.master.quota_config == {} and c.outbox.operations == []
