"""The codec: round trips, stout leniency, error messages naming the field, proto defaults."""

from __future__ import annotations

import base64
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mezzo.api import codec
from mezzo.api import common as c
from mezzo.api.base import fill_proto_defaults
from mezzo.api.codec import MAX_DEPTH, convert, decode, encode, to_builtins
from mezzo.core.errors import DecodeError

STATUS = {"task_id": {"value": "t1"}, "state": "TASK_RUNNING"}


def test_ids_are_value_records_and_hashable() -> None:
    tid = decode(b'{"value":"t1"}', c.TaskID)
    assert tid == c.TaskID(value="t1")
    assert {tid: 1}[c.TaskID(value="t1")] == 1
    assert encode(tid) == b'{"value":"t1"}'
    nested = decode(b'{"value":"child","parent":{"value":"root"}}', c.ContainerID)
    assert nested.parent == c.ContainerID(value="root")


def test_strings_for_numbers_and_bools() -> None:
    info = decode(
        b'{"user":"u","name":"n","failover_timeout":"100","checkpoint":"true"}', c.FrameworkInfo
    )
    assert info.failover_timeout == 100.0
    assert info.checkpoint is True
    rng = decode(b'{"begin":"31000","end":32000}', c.Range)
    assert (rng.begin, rng.end) == (31000, 32000)


def test_infinity_strings_for_doubles() -> None:
    assert decode(b'{"value":"Infinity"}', c.Scalar).value == math.inf
    assert decode(b'{"value":"-Infinity"}', c.Scalar).value == -math.inf


def test_ints_accepted_for_doubles() -> None:
    assert decode(b'{"refuse_seconds":5}', c.Filters).refuse_seconds == 5.0
    status = decode(json.dumps({**STATUS, "timestamp": 1700000000}), c.TaskStatus)
    assert status.timestamp == 1700000000.0


def test_unknown_fields_ignored() -> None:
    body = {"executor_id": {"value": "e"}, "command.environment": {"x": 1}, "new_field": [1, 2]}
    info = decode(json.dumps(body), c.ExecutorInfo)
    assert info.executor_id == c.ExecutorID(value="e")


def test_null_is_unset_also_for_lists_and_defaulted_fields() -> None:
    info = decode(
        b'{"user":"u","name":"n","roles":null,"capabilities":null,"checkpoint":null,"id":null}',
        c.FrameworkInfo,
    )
    assert info.roles == [] and info.capabilities == [] and info.id is None
    assert info.checkpoint is False  # unset -> proto default


def test_null_for_required_field_is_missing() -> None:
    with pytest.raises(DecodeError, match=r"^missing required field \$\.name$"):
        decode(b'{"user":"u","name":null}', c.FrameworkInfo)


def test_bare_value_for_repeated_field_is_one_element_list() -> None:
    info = decode(
        b'{"user":"u","name":"n","roles":["a"],"capabilities":{"type":"MULTI_ROLE"}}',
        c.FrameworkInfo,
    )
    assert info.roles == ["a"]
    assert info.has_capability(c.FrameworkCapabilityType.MULTI_ROLE)


def test_a_string_where_a_list_is_expected_is_refused() -> None:
    with pytest.raises(DecodeError, match=r"^invalid field \$\.roles: expected array, got str$"):
        decode(b'{"user":"u","name":"n","roles":"a"}', c.FrameworkInfo)


def test_enum_as_number_is_an_error_naming_the_field() -> None:
    with pytest.raises(DecodeError) as err:
        decode(json.dumps({**STATUS, "state": 1}), c.TaskStatus)
    assert str(err.value) == "invalid field $.state: expected str, got int"


def test_unknown_enum_name_unsets_optional_but_fails_required() -> None:
    status = decode(json.dumps({**STATUS, "reason": "REASON_FROM_THE_FUTURE"}), c.TaskStatus)
    assert status.reason is None and status.state == c.TaskState.TASK_RUNNING
    with pytest.raises(DecodeError) as err:
        decode(json.dumps({**STATUS, "state": "TASK_SLEEPING"}), c.TaskStatus)
    assert str(err.value) == "invalid field $.state: invalid enum value 'TASK_SLEEPING'"


def test_wrong_type_deep_in_a_list_names_the_path() -> None:
    op = {"type": "LAUNCH", "launch": {"task_infos": [{"name": "t", "task_id": {"value": 7}}]}}
    with pytest.raises(DecodeError) as err:
        decode(json.dumps(op), c.OfferOperation)
    assert str(err.value) == (
        "invalid field $.launch.task_infos[0].task_id.value: expected str, got int"
    )


def test_missing_required_field_names_the_path() -> None:
    op = {"type": "LAUNCH", "launch": {"task_infos": [{"name": "t", "task_id": {"value": "x"}}]}}
    with pytest.raises(DecodeError) as err:
        decode(json.dumps(op), c.OfferOperation)
    assert str(err.value) == "missing required field $.launch.task_infos[0].agent_id"


@pytest.mark.parametrize("data", [b"not json", b"", b'{"value":', "{'value': 1}"])
def test_not_json(data: bytes | str) -> None:
    with pytest.raises(DecodeError, match=r"^not JSON: "):
        decode(data, c.TaskID)


def test_wrong_top_level_shape() -> None:
    with pytest.raises(DecodeError, match=r"^invalid field \$: expected object, got array$"):
        decode(b"[]", c.TaskID)


def test_bytes_are_standard_base64() -> None:
    raw = bytes(range(250, 256)) + b"\x00\xff" * 5  # exercises '+' and '/' in the alphabet
    wire = encode(
        c.TaskStatus(
            task_id=c.TaskID(value="t"), state=c.TaskState.TASK_RUNNING, uuid=raw, data=b"hello"
        )
    )
    obj = json.loads(wire)
    assert obj["uuid"] == base64.b64encode(raw).decode()
    assert obj["data"] == "aGVsbG8="
    assert decode(wire, c.TaskStatus).uuid == raw


def test_bad_base64_is_an_error() -> None:
    with pytest.raises(DecodeError) as err:
        decode(json.dumps({**STATUS, "uuid": "not*base64"}), c.TaskStatus)
    assert str(err.value) == "invalid field $.uuid: invalid base64 encoded string"


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (c.FrameworkInfo(user="u", name="n"), {"failover_timeout": 0.0, "checkpoint": False}),
        (c.CommandInfo(value="true"), {"shell": True}),
        (c.Filters(), {"refuse_seconds": 5.0}),
        (c.AgentInfo(hostname="h"), {"port": 5051}),
        (c.MasterInfo(id="m"), {"port": 5050}),
        (c.URI(value="http://x/y.tgz"), {"extract": True}),
        (c.EnvironmentVariable(name="A", value="1"), {"type": "VALUE"}),
        (c.IPAddress(ip_address="10.0.0.1"), {"protocol": "IPv4"}),
        (c.DockerInfo(image="busybox"), {"network": "HOST", "privileged": False}),
    ],
)
def test_proto_defaults_are_emitted(record: object, expected: dict[str, object]) -> None:
    obj = json.loads(encode(record))
    assert {k: obj[k] for k in expected} == expected


def test_proto_defaults_apply_on_decode_and_explicit_values_win() -> None:
    assert decode(b'{"value":"ls"}', c.CommandInfo).shell is True
    assert decode(b'{"value":"ls","shell":false}', c.CommandInfo).shell is False
    assert decode(b"{}", c.Filters).refuse_seconds == 5.0
    cmd = c.CommandInfo(value="ls")
    cmd.shell = None
    assert b"shell" not in encode(cmd)
    assert fill_proto_defaults(cmd).shell is True


def test_deprecated_role_is_not_emitted_unless_set() -> None:
    assert "role" not in json.loads(encode(c.FrameworkInfo(user="u", name="n")))


def test_refuse_seconds_rules() -> None:
    assert c.refuse_seconds(None) == 5.0
    assert c.refuse_seconds(c.Filters(refuse_seconds=-1)) == 5.0
    assert c.refuse_seconds(c.Filters(refuse_seconds=1e12)) == 365 * 24 * 3600.0
    assert c.refuse_seconds(c.Filters(refuse_seconds=0.0)) == 0.0


def test_encode_is_compact_and_omits_unset() -> None:
    offer = c.Offer(
        id=c.OfferID(value="M-O3"),
        framework_id=c.FrameworkID(value="M-0000"),
        agent_id=c.AgentID(value="M-S0"),
        hostname="h",
        resources=[
            c.Resource(name="cpus", type=c.ValueType.SCALAR, scalar=c.Scalar(value=4.0), role="*")
        ],
    )
    assert encode(offer) == (
        b'{"id":{"value":"M-O3"},"framework_id":{"value":"M-0000"},"agent_id":{"value":"M-S0"},'
        b'"hostname":"h","resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":4.0},'
        b'"role":"*"}]}'
    )


def test_to_builtins_and_convert_round_trip() -> None:
    status = c.TaskStatus(
        task_id=c.TaskID(value="t"),
        state=c.TaskState.TASK_FAILED,
        reason=c.Reason.REASON_CONTAINER_LIMITATION_MEMORY,
        uuid=b"\x01" * 16,
    )
    obj = to_builtins(status)
    assert obj["state"] == "TASK_FAILED" and isinstance(obj["uuid"], str)
    assert convert(obj, c.TaskStatus) == status


def test_convert_is_lenient_and_does_not_modify_its_input() -> None:
    obj = {"user": "u", "name": "n", "capabilities": {"type": "MULTI_ROLE"}, "hostname": None}
    info = convert(obj, c.FrameworkInfo)
    assert info.has_capability(c.FrameworkCapabilityType.MULTI_ROLE) and info.hostname is None
    assert obj == {"user": "u", "name": "n", "capabilities": {"type": "MULTI_ROLE"}, "hostname": None}
    with pytest.raises(DecodeError, match=r"^invalid field \$\.user: expected str, got int$"):
        convert({"user": 1, "name": "n"}, c.FrameworkInfo)


def test_terminal_states_as_the_master_treats_them() -> None:
    terminal = {s for s in c.TaskState if c.is_terminal(s)}
    assert terminal == {
        c.TaskState.TASK_FINISHED,
        c.TaskState.TASK_FAILED,
        c.TaskState.TASK_KILLED,
        c.TaskState.TASK_LOST,
        c.TaskState.TASK_ERROR,
        c.TaskState.TASK_DROPPED,
        c.TaskState.TASK_GONE,
        c.TaskState.TASK_GONE_BY_OPERATOR,
    }
    assert c.is_terminal("TASK_FINISHED") and not c.is_terminal("TASK_UNREACHABLE")


def test_reason_names_use_agent_not_slave() -> None:
    names = {r.value for r in c.Reason}
    assert "REASON_AGENT_REMOVED_BY_OPERATOR" in names
    assert not any("SLAVE" in n for n in names)
    assert len(names) == 35


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_tricky_text = st.text(alphabet='[]{}"\\ab\u00e9\n', max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.integers() | _tricky_text,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_text, inner, max_size=3),
                    max_leaves=400))
def test_the_depth_limit_counts_nesting_not_brackets_in_strings(value: object) -> None:
    # Wrapped so that the depth crosses the limit for some examples and not for others.
    for wrap in (0, MAX_DEPTH - _depth(value), MAX_DEPTH - _depth(value) + 1):
        wrapped: object = value
        for _ in range(max(wrap, 0)):
            wrapped = [wrapped]
        data = json.dumps(wrapped).encode()
        assert codec._too_deep(data) == (_depth(wrapped) > MAX_DEPTH), data[:200]


def test_brackets_in_strings_cannot_hide_nesting() -> None:
    # Each string "][" would pair with the structural brackets around it if strings counted.
    hidden = b'["][",' * 150 + b"1" + b"]" * 150
    with pytest.raises(DecodeError, match="nested deeper than 100 levels"):
        decode(hidden, c.FrameworkInfo)
    assert not codec._too_deep(b'["' + b"[" * 500 + b'"]')
