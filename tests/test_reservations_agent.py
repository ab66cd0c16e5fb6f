"""The agent's side of reservations: applying APPLY_OPERATION, checkpointing resources and
operations, resending the status until acknowledged, recovering both after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from mezzo.agent import checkpoint
from mezzo.agent.operations import AgentOperations, OperationCheckpoint, ResourcesCheckpoint
from mezzo.api.codec import convert
from mezzo.api.common import UUID, AgentID, AgentInfo, OfferOperation
from mezzo.api.internal import AgentAcknowledgeOperationStatus, AgentApplyOperation
from mezzo.resources import DYNAMIC, Resources
from mezzo.resources.conversions import ConversionError

AGENT = AgentID(value="A1")


def apply_event(kind: str, amount: float, uuid: bytes, op_id: str | None = "r") -> AgentApplyOperation:
    res = {"name": "cpus", "type": "SCALAR", "scalar": {"value": amount},
           "reservations": [{"type": "DYNAMIC", "role": "eng", "principal": "p"}]}
    op = {"type": kind, kind.lower(): {"resources": [res]}}
    if op_id:
        op["id"] = {"value": op_id}
    return AgentApplyOperation(operation_info=convert(op, OfferOperation),
                               operation_uuid=UUID(value=uuid))


def test_apply_checkpoint_resend_and_acknowledge() -> None:
    ops = AgentOperations(Resources.parse("cpus:4;mem:100"))
    records, call = ops.apply(apply_event("RESERVE", 2, b"o" * 16), AGENT, b"s" * 16, now=0.0)
    assert isinstance(records[0], ResourcesCheckpoint) and isinstance(records[1], OperationCheckpoint)
    assert ops.total.reserved("eng").cpus() == 2 and ops.total.cpus() == 4
    assert ops.checkpointed.cpus() == 2
    status = call.update_operation_status.status
    assert status.state == "OPERATION_FINISHED" and status.uuid.value == b"s" * 16
    # Resent with backoff until acknowledged.
    assert ops.due(5.0, AGENT) == []
    assert len(ops.due(10.0, AGENT)) == 1 and ops.next_deadline() == 30.0
    wrong = AgentAcknowledgeOperationStatus(status_uuid=UUID(value=b"x" * 16),
                                            operation_uuid=UUID(value=b"o" * 16))
    assert ops.acknowledge(wrong) is None and ops.next_deadline() == 30.0
    removal = ops.acknowledge(AgentAcknowledgeOperationStatus(
        status_uuid=UUID(value=b"s" * 16), operation_uuid=UUID(value=b"o" * 16)))
    assert removal is not None and ops.operations == {} and ops.next_deadline() is None
    # UNRESERVE gives them back; unreserving more than is reserved fails, changing nothing.
    _, call = ops.apply(apply_event("UNRESERVE", 3, b"p" * 16), AGENT, b"t" * 16, now=0.0)
    assert call.update_operation_status.status.state == "OPERATION_FAILED"
    assert ops.checkpointed.cpus() == 2
    _, call = ops.apply(apply_event("UNRESERVE", 2, b"q" * 16), AGENT, b"u" * 16, now=0.0)
    assert call.update_operation_status.status.state == "OPERATION_FINISHED"
    assert ops.checkpointed.is_empty() and ops.total == Resources.parse("cpus:4;mem:100")


def test_checkpoint_round_trip_and_incompatible_resources(tmp_path: Path) -> None:
    static = Resources.parse("cpus:4")
    ops = AgentOperations(static)
    cp = checkpoint.Checkpointer(tmp_path)
    cp.write(checkpoint.AgentRecord(AgentInfo(hostname="h", id=AGENT, resources=static.to_wire())))
    records, _ = ops.apply(apply_event("RESERVE", 3, b"o" * 16), AGENT, b"s" * 16, now=0.0)
    for record in records:
        cp.write(record)
    state = checkpoint.recover(tmp_path)
    assert state is not None
    again = AgentOperations(static)
    again.recover(Resources.from_wire(state.checkpointed_resources), state.operations, now=0.0)
    assert again.total == ops.total and list(again.operations) == [b"o" * 16]
    assert len(again.resend_all(0.0, AGENT)) == 1
    # The agent restarts with fewer cpus than it reserved: refused.
    with pytest.raises(ConversionError, match="incompatible"):
        AgentOperations(Resources.parse("cpus:2")).recover(
            Resources.from_wire(state.checkpointed_resources), [], now=0.0)


def test_refining_a_static_reservation_checkpoints_only_the_dynamic_part() -> None:
    from mezzo.resources import STATIC, Reservation
    from mezzo.resources import conversions as conv

    static = Resources.parse("cpus(eng):4;mem:10")
    refined = Resources.parse("cpus(eng):1").push_reservation(Reservation(DYNAMIC, "eng/backend", "p"))
    plain = conv.reserve(refined)
    assert plain[0].consumed == Resources.parse("cpus(eng):1")
    total = conv.apply(static, plain)
    checkpointed = conv.checkpointed_after(Resources(), plain)
    assert checkpointed == refined
    assert conv.apply_checkpointed(static, checkpointed) == total
    [item] = list(total.reserved("eng/backend"))
    assert [(r.type, r.role) for r in item.key.reservations] == [(STATIC, "eng"), (DYNAMIC, "eng/backend")]
    # Unreserving pops back to the static reservation, which is not checkpointed.
    back = conv.unreserve(refined)
    assert conv.apply(total, back) == static
    assert conv.checkpointed_after(checkpointed, back).is_empty()
