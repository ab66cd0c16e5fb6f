"""Operator Call/Response/Event shapes (spec §7) as pymesos' operator driver uses them."""

from __future__ import annotations

import json

import pytest

from mezzo.api import common as c
from mezzo.api import operator as o
from mezzo.api.codec import decode, encode
from mezzo.core.errors import DecodeError


def test_payloadless_calls_decode() -> None:
    for name in ("GET_HEALTH", "GET_STATE", "GET_MASTER", "SUBSCRIBE", "GET_METRICS"):
        assert o.decode_call(json.dumps({"type": name})).type == name


def test_calls_with_payloads() -> None:
    call = o.decode_call('{"type":"GET_METRICS","get_metrics":{"timeout":{"nanoseconds":"5"}}}')
    assert call.get_metrics == o.GetMetrics(timeout=c.DurationInfo(nanoseconds=5))
    call = o.decode_call(
        '{"type":"UPDATE_WEIGHTS","update_weights":{"weight_infos":[{"role":"r","weight":2}]}}'
    )
    assert call.update_weights == o.UpdateWeights(weight_infos=[o.WeightInfo(role="r", weight=2.0)])
    call = o.decode_call('{"type":"TEARDOWN","teardown":{"framework_id":{"value":"F"}}}')
    assert call.teardown == o.Teardown(framework_id=c.FrameworkID(value="F"))
    with pytest.raises(DecodeError, match=r"^Expecting 'mark_agent_gone' to be present$"):
        o.decode_call('{"type":"MARK_AGENT_GONE"}')
    with pytest.raises(DecodeError, match=r"^missing required field \$\.teardown\.framework_id$"):
        o.decode_call('{"type":"TEARDOWN","teardown":{}}')


def test_not_served_calls_still_decode_for_a_501() -> None:
    call = o.decode_call('{"type":"ADD_RESOURCE_PROVIDER_CONFIG","add_resource_provider_config":{}}')
    assert call.type == o.CallType.ADD_RESOURCE_PROVIDER_CONFIG
    call = o.decode_call('{"type":"START_MAINTENANCE","start_maintenance":{"machines":[]}}')
    assert call.start_maintenance == {"machines": []}
    with pytest.raises(DecodeError, match=r"^Expecting 'type' to be present$"):
        o.decode_call("{}")


def _framework() -> o.FrameworkEntry:
    return o.FrameworkEntry(
        framework_info=c.FrameworkInfo(user="u", name="f", id=c.FrameworkID(value="F")),
        active=False,
        connected=False,
        recovered=False,
        registered_time=c.TimeInfo.from_seconds(1.5),
    )


def test_responses_on_the_wire() -> None:
    health = o.Response(type=o.CallType.GET_HEALTH, get_health=o.GetHealth(healthy=False))
    # Required booleans are emitted even when false.
    assert encode(health) == b'{"type":"GET_HEALTH","get_health":{"healthy":false}}'
    master = o.Response(
        type=o.CallType.GET_MASTER,
        get_master=o.GetMaster(master_info=c.MasterInfo(id="M"), start_time=1.0),
    )
    assert json.loads(encode(master))["get_master"] == {
        "master_info": {"id": "M", "ip": 0, "port": 5050},
        "start_time": 1.0,
    }
    frameworks = o.Response(
        type=o.CallType.GET_FRAMEWORKS, get_frameworks=o.GetFrameworks(frameworks=[_framework()])
    )
    entry = json.loads(encode(frameworks))["get_frameworks"]["frameworks"][0]
    assert entry["active"] is False and entry["connected"] is False
    assert entry["registered_time"] == {"nanoseconds": 1_500_000_000}
    assert decode(encode(frameworks), o.Response) == frameworks
    version = o.Response(
        type=o.CallType.GET_VERSION,
        get_version=o.GetVersion(version_info=o.VersionInfo(version="1.11.0")),
    )
    assert encode(version) == (
        b'{"type":"GET_VERSION","get_version":{"version_info":{"version":"1.11.0"}}}'
    )


def test_events_round_trip() -> None:
    agent = o.AgentEntry(
        agent_info=c.AgentInfo(hostname="h", id=c.AgentID(value="S0")), active=True
    )
    task = c.Task(
        name="t",
        task_id=c.TaskID(value="t"),
        framework_id=c.FrameworkID(value="F"),
        agent_id=c.AgentID(value="S0"),
        state=c.TaskState.TASK_STAGING,
    )
    status = c.TaskStatus(task_id=c.TaskID(value="t"), state=c.TaskState.TASK_RUNNING)
    events = [
        o.Event(
            type=o.EventType.SUBSCRIBED,
            subscribed=o.Subscribed(
                get_state=o.GetState(get_tasks=o.GetTasks(tasks=[task])),
                heartbeat_interval_seconds=o.HEARTBEAT_INTERVAL_SECONDS,
            ),
        ),
        o.Event(type=o.EventType.TASK_ADDED, task_added=o.TaskAdded(task=task)),
        o.Event(
            type=o.EventType.TASK_UPDATED,
            task_updated=o.TaskUpdated(
                framework_id=c.FrameworkID(value="F"), status=status, state=c.TaskState.TASK_RUNNING
            ),
        ),
        o.Event(
            type=o.EventType.FRAMEWORK_ADDED,
            framework_added=o.FrameworkAdded(framework=_framework()),
        ),
        o.Event(
            type=o.EventType.FRAMEWORK_UPDATED,
            framework_updated=o.FrameworkUpdated(framework=_framework()),
        ),
        o.Event(
            type=o.EventType.FRAMEWORK_REMOVED,
            framework_removed=o.FrameworkRemoved(framework_info=_framework().framework_info),
        ),
        o.Event(type=o.EventType.AGENT_ADDED, agent_added=o.AgentAdded(agent=agent)),
        o.Event(
            type=o.EventType.AGENT_REMOVED,
            agent_removed=o.AgentRemoved(agent_id=c.AgentID(value="S0")),
        ),
        o.Event(type=o.EventType.HEARTBEAT),
    ]
    for event in events:
        assert o.check_event(decode(encode(event), o.Event)) == event
    first = json.loads(encode(events[0]))
    assert "get_state" in first["subscribed"]  # pymesos reads subscribed.get_state
    assert json.loads(encode(events[7]))["agent_removed"]["agent_id"]["value"] == "S0"
