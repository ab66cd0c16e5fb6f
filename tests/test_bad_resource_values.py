"""Hostile resource values are refused the same way on every path (issue 9): in a launch
(TASK_ERROR, nothing launched), in an agent's registration (ERROR, not admitted), and in the
text format of `--resources` (one-line error), on the master core with a FakeClock; and role
weights that are not positive and finite (an operator call over loopback HTTP)."""

from __future__ import annotations

import math

import aiohttp
import pytest

from mezzo.api.common import AgentInfo, CommandInfo, Resource, Scalar, TaskID, TaskInfo, ValueType
from mezzo.core.errors import ValidationError
from mezzo.master.flags import MasterFlags
from mezzo.master.main import build_master
from mezzo.resources import Resources
from mezzo.testing.master_cluster import MasterCluster, ScriptedAgent
from tests.test_master_http import serve_on_loopback

HOSTILE = [math.nan, math.inf, -math.inf, -1.0, 1e308, 9007199254741.0, 0.0004]


def scalar(name: str, value: float) -> Resource:
    return Resource(name=name, type=ValueType.SCALAR, scalar=Scalar(value=value))


@pytest.mark.parametrize("value", HOSTILE, ids=str)
def test_a_launch_with_a_hostile_value_is_a_task_error_and_launches_nothing(value: float) -> None:
    c = MasterCluster()
    agent = c.add_agent("cpus:1;mem:512")
    s = c.add_scheduler()
    c.allocate()
    offer = s.next_event("OFFERS").offers.offers[0]
    task = TaskInfo(name="t", task_id=TaskID(value="t"), agent_id=offer.agent_id,
                    resources=[scalar("cpus", 0.1), scalar("mem", value)],
                    command=CommandInfo(value="true"))
    s.launch(offer, [task])
    status = s.next_event("UPDATE").update.status
    assert (status.state, status.reason) == ("TASK_ERROR", "REASON_TASK_INVALID")
    assert "mem" in (status.message or "")
    assert not agent.all_of("RUN_TASK")
    assert c.master.frameworks[s.framework_id].tasks == {}


def test_amounts_of_one_resource_that_add_up_beyond_the_bound_are_refused() -> None:
    half = 2**52 / 1000 + 1  # each fine, the sum is not
    with pytest.raises(ValidationError, match=r"total .* is too large"):
        Resources.from_wire([scalar("mem", half), scalar("mem", half)])


@pytest.mark.parametrize("value", HOSTILE, ids=str)
def test_an_agent_registering_hostile_resources_is_refused(value: float) -> None:
    c = MasterCluster()
    agent = ScriptedAgent(c, AgentInfo(hostname="h", resources=[scalar("cpus", 1.0), scalar("mem", value)]))
    result = agent.subscribe()
    assert result.agent_id is None
    error = agent.next_event("ERROR")
    assert "Invalid agent resources" in error.error.message and "mem" in error.error.message
    assert agent.stream.closed and not c.master.agents


@pytest.mark.parametrize("text", ["mem:nan", "mem:inf", "mem:-1", "mem:1e308", "cpus:0.0004"])
def test_the_text_format_refuses_them_too(text: str) -> None:
    with pytest.raises(ValidationError, match=f"invalid resource '{text}'"):
        Resources.parse(text)


@pytest.mark.parametrize(("role", "weight", "words"), [
    ("eng", "NaN", "Invalid weight"), ("eng", "Infinity", "Invalid weight"),
    ("eng", "-Infinity", "Invalid weight"), ("eng", 0, "Invalid weight"), ("eng", -1, "Invalid weight"),
    (None, 2.0, "role name must not be empty"),  # `role` is optional on the wire (found by the fuzz test)
])
async def test_update_weights_refuses_weights_that_are_not_positive_and_finite(
    role: str | None, weight: object, words: str
) -> None:
    """Over real HTTP on loopback: 400, and the weights stay as they were."""
    flags = MasterFlags.parse({"registry": "in_memory", "port": "0", "ip": "127.0.0.1"})
    process = build_master(flags)
    process.master.recover(process.registrar.recover())
    runner, url = await serve_on_loopback(process, flags)
    try:
        body = {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": role, "weight": weight}]}}
        async with aiohttp.ClientSession() as session, session.post(
            url + "/api/v1", json=body, headers={"Accept": "application/json"}
        ) as resp:
            assert resp.status == 400, await resp.text()
            assert words in await resp.text()
        assert process.master.weights == {}
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("reservation_type", [None, "FROB"])
def test_a_reservation_without_a_known_type_is_refused_as_mesos(reservation_type: str | None) -> None:
    """Found by comparing with Mesos (common/resources.cpp `Resources::validate`): a
    reservation whose type is missing, or an unknown name (dropped by the JSON decoding, as
    stout drops it), was taken as DYNAMIC and reserved (202); Mesos refuses it."""
    from mezzo.api.codec import convert

    entry: dict[str, object] = {"role": "web"}
    if reservation_type is not None:
        entry["type"] = reservation_type
    wire = convert({"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "reservations": [entry]},
                   Resource)
    with pytest.raises(ValidationError, match=r"'Resource\.ReservationInfo\.type' field must be set"):
        Resources.from_wire([wire])
