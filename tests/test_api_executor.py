"""Executor Call/Event shapes, including the exact SUBSCRIBE and UPDATE that pymesos sends."""

from __future__ import annotations

import base64
import json

import pytest

from mezzo.api import common as c
from mezzo.api import executor as x
from mezzo.api.codec import decode, encode
from mezzo.core.errors import DecodeError, ValidationError

UUID16 = bytes(range(16))
B64 = base64.b64encode(UUID16).decode()

# pymesos 0.3.15 executor SUBSCRIBE (spec §13.5): re-sent tasks, always-empty updates.
PYMESOS_SUBSCRIBE = {
    "type": "SUBSCRIBE",
    "framework_id": {"value": "M-0000"},
    "executor_id": {"value": "MinimalExecutor"},
    "subscribe": {
        "unacknowledged_tasks": [
            {
                "task_id": {"value": "t1"},
                "agent_id": {"value": "M-S0"},
                "name": "task t1",
                "data": base64.b64encode(b"Hello from task t1!").decode(),
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
                "executor": {
                    "executor_id": {"value": "MinimalExecutor"},
                    "name": "MinimalExecutor",
                    "command": {"value": "/usr/bin/python3 /x/executor.py"},
                    "command.environment": {"ignored": True},
                },
            }
        ],
        "unacknowledged_updates": [],
    },
}


def test_pymesos_subscribe() -> None:
    call = x.decode_call(json.dumps(PYMESOS_SUBSCRIBE))
    assert call.type == x.CallType.SUBSCRIBE
    assert call.framework_id == c.FrameworkID(value="M-0000")
    assert call.executor_id == c.ExecutorID(value="MinimalExecutor")
    assert call.subscribe is not None and call.subscribe.unacknowledged_updates == []
    task = call.subscribe.unacknowledged_tasks[0]
    assert task.data == b"Hello from task t1!"
    assert task.executor is not None and task.executor.command is not None
    assert task.executor.command.value == "/usr/bin/python3 /x/executor.py"


def test_pymesos_update_without_agent_id() -> None:
    body = {
        "type": "UPDATE",
        "framework_id": {"value": "M-0000"},
        "executor_id": {"value": "MinimalExecutor"},
        "update": {
            "status": {
                "task_id": {"value": "t1"},
                "state": "TASK_RUNNING",
                "timestamp": 1700000000,
                "uuid": B64,
                "source": "SOURCE_EXECUTOR",
            }
        },
    }
    call = x.decode_call(json.dumps(body))
    assert call.update is not None
    status = call.update.status
    assert status.agent_id is None and status.uuid == UUID16
    assert status.timestamp == 1700000000.0 and status.source == c.Source.SOURCE_EXECUTOR


def test_update_needs_a_16_byte_uuid() -> None:
    body = {
        "type": "UPDATE",
        "framework_id": {"value": "F"},
        "executor_id": {"value": "E"},
        "update": {"status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING"}},
    }
    with pytest.raises(ValidationError, match="uuid"):
        x.decode_call(json.dumps(body))


def test_ids_are_required_and_heartbeat_has_no_payload() -> None:
    with pytest.raises(DecodeError, match=r"^missing required field \$\.executor_id$"):
        x.decode_call('{"type":"HEARTBEAT","framework_id":{"value":"F"}}')
    call = x.decode_call(
        '{"type":"HEARTBEAT","framework_id":{"value":"F"},"executor_id":{"value":"E"}}'
    )
    assert call.type == x.CallType.HEARTBEAT
    with pytest.raises(DecodeError, match=r"^Expecting 'message' to be present$"):
        x.decode_call('{"type":"MESSAGE","framework_id":{"value":"F"},"executor_id":{"value":"E"}}')


def test_subscribed_event_as_pymesos_reads_it() -> None:
    event = x.Event(
        type=x.EventType.SUBSCRIBED,
        subscribed=x.Subscribed(
            executor_info=c.ExecutorInfo(
                executor_id=c.ExecutorID(value="E"), framework_id=c.FrameworkID(value="F")
            ),
            framework_info=c.FrameworkInfo(user="u", name="f", id=c.FrameworkID(value="F")),
            agent_info=c.AgentInfo(hostname="h", id=c.AgentID(value="M-S0")),
            container_id=c.ContainerID(value="cid"),
        ),
    )
    obj = json.loads(encode(event))["subscribed"]
    # pymesos compares these with exact dict equality.
    assert obj["executor_info"]["executor_id"] == {"value": "E"}
    assert obj["framework_info"]["id"] == {"value": "F"}
    assert obj["agent_info"] == {"hostname": "h", "port": 5051, "id": {"value": "M-S0"}}
    assert x.check_event(decode(encode(event), x.Event)) == event


def test_other_events_round_trip() -> None:
    task = c.TaskInfo(name="t", task_id=c.TaskID(value="t"), agent_id=c.AgentID(value="a"))
    events = [
        x.Event(type=x.EventType.LAUNCH, launch=x.Launch(task=task)),
        x.Event(
            type=x.EventType.LAUNCH_GROUP,
            launch_group=x.LaunchGroup(task_group=c.TaskGroupInfo(tasks=[task])),
        ),
        x.Event(
            type=x.EventType.KILL,
            kill=x.Kill(
                task_id=c.TaskID(value="t"),
                kill_policy=c.KillPolicy(grace_period=c.DurationInfo.from_seconds(3)),
            ),
        ),
        x.Event(
            type=x.EventType.ACKNOWLEDGED,
            acknowledged=x.Acknowledged(task_id=c.TaskID(value="t"), uuid=UUID16),
        ),
        x.Event(type=x.EventType.MESSAGE, message=x.EventMessage(data=b"\x00\x01")),
        x.Event(type=x.EventType.ERROR, error=x.Error(message="boom")),
        x.Event(type=x.EventType.SHUTDOWN),
        x.Event(type=x.EventType.HEARTBEAT),
    ]
    for event in events:
        assert x.check_event(decode(encode(event), x.Event)) == event
    assert json.loads(encode(events[3]))["acknowledged"]["uuid"] == B64
    assert encode(events[6]) == b'{"type":"SHUTDOWN"}'
    assert json.loads(encode(events[2]))["kill"]["kill_policy"] == {
        "grace_period": {"nanoseconds": 3_000_000_000}
    }
