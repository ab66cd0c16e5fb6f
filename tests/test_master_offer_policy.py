"""The master core on a FakeClock: offer constraints, offer_filters and GPU_RESOURCES gating
reach the allocator on SUBSCRIBE and UPDATE_FRAMEWORK; invalid ones are refused with nothing
changed."""

from __future__ import annotations

from typing import Any

import pytest

from mezzo.api.codec import convert, to_builtins
from mezzo.api.common import OfferFilters
from mezzo.master.base import MasterOptions
from mezzo.master.core import CallRefused
from mezzo.testing.master_cluster import MasterCluster, framework_info


def rack_is(rack: str, role: str = "*") -> dict[str, Any]:
    return {"role_constraints": {role: {"groups": [{"attribute_constraints": [{
        "selector": {"attribute_name": "rack"},
        "predicate": {"text_equals": {"value": rack}},
    }]}]}}}


def new_offers(cluster: MasterCluster, sched) -> list:
    """Run one allocation; the offers the scheduler received since it last looked."""
    cluster.allocate()
    return [o for e in sched.all_of("OFFERS") for o in e.offers.offers]


def offered_hosts(cluster: MasterCluster, sched) -> set[str]:
    return {o.hostname for o in new_offers(cluster, sched)}


def update_framework(sched, offer_constraints: dict | None, **info: Any) -> int:
    body = to_builtins(sched.info)
    body.update(info)
    payload: dict[str, Any] = {"framework_info": body}
    if offer_constraints is not None:
        payload["offer_constraints"] = offer_constraints
    return sched.call("UPDATE_FRAMEWORK", payload)


def three_racks() -> MasterCluster:
    c = MasterCluster()
    c.add_agent(hostname="a1", attributes={"rack": "r1"})
    c.add_agent(hostname="a2", attributes={"rack": "r2"})
    c.add_agent(hostname="a3")
    return c


def test_subscribe_with_constraints_offers_only_matching_agents() -> None:
    c = three_racks()
    s = c.add_scheduler(subscribe=False)
    assert s.subscribe(offer_constraints=rack_is("r1")).error is None
    assert offered_hosts(c, s) == {"a1"}


def test_update_framework_changes_constraints_at_the_next_allocation() -> None:
    c = three_racks()
    s = c.add_scheduler(subscribe=False)
    s.subscribe(offer_constraints=rack_is("r1"))
    assert offered_hosts(c, s) == {"a1"}
    assert update_framework(s, rack_is("r2")) == 200
    # The outstanding a1 offer stays; the next allocation honours the new constraints.
    assert offered_hosts(c, s) == {"a2"}
    assert update_framework(s, None) == 200  # no constraints any more
    assert offered_hosts(c, s) == {"a3"}


def test_bad_regex_is_refused_on_subscribe_and_on_update_leaving_state_alone() -> None:
    bad = {"role_constraints": {"*": {"groups": [{"attribute_constraints": [{
        "selector": {"attribute_name": "rack"}, "predicate": {"text_matches": {"regex": "(r1"}},
    }]}]}}}
    c = three_racks()
    s = c.add_scheduler(subscribe=False)
    result = s.subscribe(offer_constraints=bad)
    assert result.framework_id is None
    assert result.error.startswith("Offer constraints are not valid:")
    assert "Failed to construct regex from pattern '(r1'" in result.error
    assert s.stream.types() == ["ERROR"] and c.master.frameworks == {}
    ok = c.add_scheduler(subscribe=False)
    ok.subscribe(offer_constraints=rack_is("r1"))
    with pytest.raises(CallRefused, match="Failed to construct regex") as refused:
        update_framework(ok, bad)
    assert refused.value.status == 400
    assert offered_hosts(c, ok) == {"a1"}  # the old constraints still apply
    with pytest.raises(CallRefused, match="role 'other' not contained in the set of roles"):
        update_framework(ok, rack_is("r1", role="other"))


def test_offer_filters_minimum_per_role() -> None:
    c = MasterCluster()
    c.add_agent("cpus:1;mem:512", hostname="small")
    c.add_agent("cpus:8;mem:8192", hostname="big")
    info = framework_info()
    info.offer_filters = {"*": convert(
        {"min_allocatable_resources": {"quantities": [{"quantities": {"cpus": {"value": 4}}}]}},
        OfferFilters,
    )}
    s = c.add_scheduler(info)
    assert offered_hosts(c, s) == {"big"}
    assert update_framework(s, None, offer_filters={}) == 200
    assert offered_hosts(c, s) == {"small"}
    bad = {"*": {"min_allocatable_resources": {"quantities": [{"quantities": {}}]}}}
    with pytest.raises(CallRefused, match="must contain at least one quantity"):
        update_framework(s, None, offer_filters=bad)


def test_gpu_agents_only_for_gpu_resources_frameworks() -> None:
    c = MasterCluster()
    c.add_agent("cpus:4;mem:4096;gpus:1", hostname="gpu")
    c.add_agent("cpus:4;mem:4096", hostname="cpu")
    plain = c.add_scheduler()
    assert offered_hosts(c, plain) == {"cpu"}
    gpu = c.add_scheduler(framework_info("g", capabilities=["GPU_RESOURCES"]))
    assert offered_hosts(c, gpu) == {"gpu"}


def test_dropping_the_gpu_capability_stops_gpu_offers_at_the_next_allocation() -> None:
    c = MasterCluster(MasterOptions())
    c.add_agent("cpus:4;mem:4096;gpus:1", hostname="gpu")
    s = c.add_scheduler(framework_info("g", capabilities=["GPU_RESOURCES"]))
    (offer,) = new_offers(c, s)
    assert offer.hostname == "gpu"
    assert s.call("DECLINE", {"offer_ids": [to_builtins(offer.id)],
                              "filters": {"refuse_seconds": 0}}) == 202
    assert update_framework(s, None, capabilities=[]) == 200
    assert offered_hosts(c, s) == set()
