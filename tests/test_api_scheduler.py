"""Scheduler Call/Event shapes: the spec's examples round-trip; request-level checks."""

from __future__ import annotations

import base64
import json

import pytest

from mezzo.api import common as c
from mezzo.api import scheduler as s
from mezzo.api.codec import decode, encode
from mezzo.api.recordio import RecordIODecoder, encode_record
from mezzo.core.errors import DecodeError, ValidationError

UUID16 = bytes(range(16))
B64 = base64.b64encode(UUID16).decode()

SUBSCRIBE = (
    '{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"f",'
    '"failover_timeout":100}}}'
)
RESUBSCRIBE = (
    '{"type":"SUBSCRIBE","framework_id":{"value":"M-0000"},'
    '"subscribe":{"framework_info":{"user":"u","name":"f","id":{"value":"M-0000"}}}}'
)
ACCEPT = (
    '{"type":"ACCEPT","framework_id":{"value":"M-0000"},"accept":{"offer_ids":[{"value":"M-O3"}],'
    '"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"t","task_id":{"value":"t1"},'
    '"agent_id":{"value":"M-S0"},"command":{"value":"sleep 5"},'
    '"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}]}]}}],'
    '"filters":{"refuse_seconds":5}}}'
)
ACKNOWLEDGE = (
    '{"type":"ACKNOWLEDGE","framework_id":{"value":"M-0000"},'
    '"acknowledge":{"agent_id":{"value":"M-S0"},"task_id":{"value":"t1"},"uuid":"B64"}}'
).replace("B64", B64)


def test_subscribe_example() -> None:
    call = s.decode_call(SUBSCRIBE)
    assert call.type == s.CallType.SUBSCRIBE and call.framework_id is None
    assert call.subscribe is not None
    info = call.subscribe.framework_info
    assert (info.user, info.name, info.failover_timeout, info.checkpoint) == (
        "u",
        "f",
        100.0,
        False,
    )
    again = json.loads(encode(call))
    assert again["subscribe"]["framework_info"] == {
        "user": "u",
        "name": "f",
        "failover_timeout": 100.0,
        "checkpoint": False,
    }


def test_resubscribe_example_and_id_mismatch() -> None:
    call = s.decode_call(RESUBSCRIBE)
    assert call.framework_id == c.FrameworkID(value="M-0000")
    assert call.subscribe is not None
    assert call.subscribe.framework_info.id == call.framework_id
    bad = RESUBSCRIBE.replace('"id":{"value":"M-0000"}', '"id":{"value":"M-0001"}')
    with pytest.raises(ValidationError, match="differs"):
        s.decode_call(bad)


def test_accept_example_round_trip() -> None:
    call = s.decode_call(ACCEPT)
    assert call.accept is not None
    assert call.accept.offer_ids == [c.OfferID(value="M-O3")]
    op = call.accept.operations[0]
    assert op.type == c.OfferOperationType.LAUNCH and op.launch is not None
    task = op.launch.task_infos[0]
    assert task.task_id == c.TaskID(value="t1") and task.agent_id == c.AgentID(value="M-S0")
    assert task.command is not None and task.command.shell is True
    assert task.resources[0].scalar == c.Scalar(value=0.1)
    assert c.refuse_seconds(call.accept.filters) == 5.0
    assert decode(encode(call), s.Call) == call
    wire = json.loads(encode(call))
    original = json.loads(ACCEPT)
    # Only the proto defaults are added on the way back out.
    original["accept"]["operations"][0]["launch"]["task_infos"][0]["command"]["shell"] = True
    original["accept"]["filters"]["refuse_seconds"] = 5.0
    assert wire == original


def test_acknowledge_example() -> None:
    call = s.decode_call(ACKNOWLEDGE)
    assert call.acknowledge is not None and call.acknowledge.uuid == UUID16
    assert json.loads(encode(call))["acknowledge"]["uuid"] == B64
    short = ACKNOWLEDGE.replace(B64, base64.b64encode(b"abc").decode())
    with pytest.raises(ValidationError, match="16 bytes"):
        s.decode_call(short)


def test_acknowledge_operation_status_accepts_both_uuid_shapes() -> None:
    bare = {"agent_id": {"value": "a"}, "uuid": B64, "operation_id": {"value": "op"}}
    # pymesos sends the whole OperationStatus: uuid is a UUID record, plus extra keys.
    pymesos = {**bare, "uuid": {"value": B64}, "state": "OPERATION_FINISHED"}
    for payload in (bare, pymesos):
        body = {
            "type": "ACKNOWLEDGE_OPERATION_STATUS",
            "framework_id": {"value": "F"},
            "acknowledge_operation_status": payload,
        }
        call = s.decode_call(json.dumps(body))
        assert call.acknowledge_operation_status is not None
        assert call.acknowledge_operation_status.uuid_bytes == UUID16
        assert call.acknowledge_operation_status.operation_id == c.OperationID(value="op")


def test_missing_or_unknown_type() -> None:
    for body in ('{"framework_id":{"value":"F"}}', '{"type":"FLY","framework_id":{"value":"F"}}'):
        with pytest.raises(DecodeError, match=r"^Expecting 'type' to be present$"):
            s.decode_call(body)
    call = s.decode_call('{"type":"UNKNOWN"}')  # the server answers 501
    assert call.type == s.CallType.UNKNOWN


def test_type_as_number_is_an_error() -> None:
    with pytest.raises(DecodeError, match=r"invalid field \$\.type: expected str, got int"):
        s.decode_call('{"type":3}')


def test_payload_of_the_type_is_required() -> None:
    with pytest.raises(DecodeError, match=r"^Expecting 'accept' to be present$"):
        s.decode_call('{"type":"ACCEPT","framework_id":{"value":"F"}}')
    with pytest.raises(DecodeError, match=r"^Expecting 'subscribe' to be present$"):
        s.decode_call('{"type":"SUBSCRIBE"}')


def test_framework_id_required_except_on_subscribe() -> None:
    with pytest.raises(ValidationError, match="framework_id"):
        s.decode_call('{"type":"TEARDOWN"}')
    assert s.decode_call('{"type":"TEARDOWN","framework_id":{"value":"F"}}').type == "TEARDOWN"


def test_lenient_forms_mesos_accepts() -> None:
    # REVIVE/SUPPRESS without payload, KILL without agent_id, RECONCILE without agent_id.
    for body in (
        '{"type":"REVIVE","framework_id":{"value":"F"}}',
        '{"type":"SUPPRESS","framework_id":{"value":"F"},"suppress":{"roles":["r"]}}',
        '{"type":"KILL","framework_id":{"value":"F"},"kill":{"task_id":{"value":"t"}}}',
        '{"type":"RECONCILE","framework_id":{"value":"F"},'
        '"reconcile":{"tasks":[{"task_id":{"value":"t"}}]}}',
    ):
        s.decode_call(body)
    call = s.decode_call(
        '{"type":"SUPPRESS","framework_id":{"value":"F"},"suppress":{"roles":["r"]}}'
    )
    assert call.suppress == s.Suppress(roles=["r"])
    # ...but not a string for a list of strings (issue 9).
    with pytest.raises(ValidationError, match=r"suppress\.roles: expected array, got str"):
        s.decode_call('{"type":"SUPPRESS","framework_id":{"value":"F"},"suppress":{"roles":"r"}}')


def test_request_and_message_payloads() -> None:
    call = s.decode_call(
        '{"type":"REQUEST","framework_id":{"value":"F"},"request":{"requests":[{"resources":[]}]}}'
    )
    assert call.request == s.CallRequest(requests=[c.Request()])
    msg = s.decode_call(
        '{"type":"MESSAGE","framework_id":{"value":"F"},"message":{"agent_id":{"value":"a"},'
        '"executor_id":{"value":"e"},"data":"aGk="}}'
    )
    assert msg.message is not None and msg.message.data == b"hi"


def _offer() -> c.Offer:
    return c.Offer(
        id=c.OfferID(value="M-O1"),
        framework_id=c.FrameworkID(value="M-0000"),
        agent_id=c.AgentID(value="M-S0"),
        hostname="host1",
        url=c.URL(
            scheme="http",
            address=c.Address(hostname="host1", ip="10.0.0.1", port=5051),
            path="/slave(1)",
        ),
        resources=[
            c.Resource(name="mem", type=c.ValueType.SCALAR, scalar=c.Scalar(value=1024.0), role="*")
        ],
    )


def test_events_shapes_on_the_wire() -> None:
    subscribed = s.Event(
        type=s.EventType.SUBSCRIBED,
        subscribed=s.Subscribed(
            framework_id=c.FrameworkID(value="M-0000"),
            heartbeat_interval_seconds=s.HEARTBEAT_INTERVAL_SECONDS,
            master_info=c.MasterInfo(id="M", ip=16777343, hostname="h", version="1.11.0"),
        ),
    )
    assert json.loads(encode(subscribed)) == {
        "type": "SUBSCRIBED",
        "subscribed": {
            "framework_id": {"value": "M-0000"},
            "heartbeat_interval_seconds": 15.0,
            "master_info": {
                "id": "M",
                "ip": 16777343,
                "port": 5050,
                "hostname": "h",
                "version": "1.11.0",
            },
        },
    }
    offers = json.loads(
        encode(s.Event(type=s.EventType.OFFERS, offers=s.Offers(offers=[_offer()])))
    )
    assert offers["offers"]["offers"][0]["url"]["address"]["port"] == 5051  # nested offers.offers
    status = c.TaskStatus(
        task_id=c.TaskID(value="t1"),
        state=c.TaskState.TASK_RUNNING,
        source=c.Source.SOURCE_EXECUTOR,
        agent_id=c.AgentID(value="M-S0"),
        timestamp=1700000000.5,
        uuid=UUID16,
    )
    update = json.loads(encode(s.Event(type=s.EventType.UPDATE, update=s.Update(status=status))))
    assert update == {
        "type": "UPDATE",
        "update": {
            "status": {
                "task_id": {"value": "t1"},
                "state": "TASK_RUNNING",
                "source": "SOURCE_EXECUTOR",
                "agent_id": {"value": "M-S0"},
                "timestamp": 1700000000.5,
                "uuid": B64,
            }
        },
    }
    error = s.Event(type=s.EventType.ERROR, error=s.Error(message="Framework failed over"))
    assert encode(error) == b'{"type":"ERROR","error":{"message":"Framework failed over"}}'
    assert encode(s.Event(type=s.EventType.HEARTBEAT)) == b'{"type":"HEARTBEAT"}'


def test_event_stream_round_trip_through_recordio() -> None:
    events = [
        s.Event(type=s.EventType.HEARTBEAT),
        s.Event(type=s.EventType.OFFERS, offers=s.Offers(offers=[_offer()])),
        s.Event(type=s.EventType.RESCIND, rescind=s.Rescind(offer_id=c.OfferID(value="M-O1"))),
        s.Event(
            type=s.EventType.FAILURE,
            failure=s.Failure(
                agent_id=c.AgentID(value="a"), executor_id=c.ExecutorID(value="e"), status=9
            ),
        ),
    ]
    stream = b"".join(encode_record(encode(e)) for e in events)
    records = RecordIODecoder().feed(stream)
    decoded = [s.check_event(decode(r, s.Event)) for r in records]
    assert decoded == events


def test_check_event_requires_payload() -> None:
    with pytest.raises(DecodeError, match=r"^Expecting 'offers' to be present$"):
        s.check_event(decode(b'{"type":"OFFERS"}', s.Event))
