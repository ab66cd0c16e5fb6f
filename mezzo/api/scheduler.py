"""The v1 scheduler API: the `Call` a framework POSTs and the `Event`s of its stream (spec §4).

Owns the shapes and the request-level checks (`check_call`) that make a Mesos master answer 400
before looking at any state: `type` present, the payload of that type present, `framework_id`
present where required, ids consistent on SUBSCRIBE/UPDATE_FRAMEWORK, 16-byte acknowledgement
uuids. Everything that needs the master's state (is the offer outstanding? ...) is the master's.
Payload classes carry their proto names; where a name is taken (`Message`, `Request`) the call
payload is prefixed `Call` and the event payload `Event`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from mezzo.api.base import Message, union_payload
from mezzo.api.codec import decode
from mezzo.api.common import (
    UUID,
    AgentID,
    ExecutorID,
    Filters,
    FrameworkID,
    FrameworkInfo,
    InverseOffer,
    KillPolicy,
    MasterInfo,
    Offer,
    OfferID,
    OfferOperation,
    OperationID,
    OperationStatus,
    Request,
    ResourceProviderID,
    TaskID,
    TaskStatus,
)
from mezzo.core.errors import ValidationError

# --------------------------------------------------------------------------- calls


class CallType(StrEnum):
    UNKNOWN = "UNKNOWN"
    SUBSCRIBE = "SUBSCRIBE"
    TEARDOWN = "TEARDOWN"
    ACCEPT = "ACCEPT"
    DECLINE = "DECLINE"
    ACCEPT_INVERSE_OFFERS = "ACCEPT_INVERSE_OFFERS"
    DECLINE_INVERSE_OFFERS = "DECLINE_INVERSE_OFFERS"
    REVIVE = "REVIVE"
    KILL = "KILL"
    SHUTDOWN = "SHUTDOWN"
    ACKNOWLEDGE = "ACKNOWLEDGE"
    ACKNOWLEDGE_OPERATION_STATUS = "ACKNOWLEDGE_OPERATION_STATUS"
    RECONCILE = "RECONCILE"
    RECONCILE_OPERATIONS = "RECONCILE_OPERATIONS"
    MESSAGE = "MESSAGE"
    REQUEST = "REQUEST"
    SUPPRESS = "SUPPRESS"
    UPDATE_FRAMEWORK = "UPDATE_FRAMEWORK"


class Subscribe(Message):
    framework_info: FrameworkInfo
    suppressed_roles: list[str] = []
    offer_constraints: dict[str, Any] | None = None  # passed through to the allocator


class Accept(Message):
    offer_ids: list[OfferID] = []
    operations: list[OfferOperation] = []
    filters: Filters | None = None


class Decline(Message):
    offer_ids: list[OfferID] = []
    filters: Filters | None = None


class AcceptInverseOffers(Message):
    inverse_offer_ids: list[OfferID] = []
    filters: Filters | None = None


class DeclineInverseOffers(Message):
    inverse_offer_ids: list[OfferID] = []
    filters: Filters | None = None


class Revive(Message):
    roles: list[str] = []  # empty = every subscribed role


class Suppress(Message):
    roles: list[str] = []  # empty = every subscribed role


class Kill(Message):
    task_id: TaskID
    agent_id: AgentID | None = None
    kill_policy: KillPolicy | None = None


class Shutdown(Message):
    executor_id: ExecutorID
    agent_id: AgentID


class Acknowledge(Message):
    agent_id: AgentID
    task_id: TaskID
    uuid: bytes


class AcknowledgeOperationStatus(Message):
    """Mesos wants `uuid` as bare bytes; pymesos sends the whole OperationStatus, whose `uuid`
    is a `{"value": ...}` UUID record. Both shapes decode; `uuid_bytes` reads either."""

    agent_id: AgentID | None = None
    resource_provider_id: ResourceProviderID | None = None
    uuid: bytes | UUID
    operation_id: OperationID

    @property
    def uuid_bytes(self) -> bytes:
        return self.uuid.value if isinstance(self.uuid, UUID) else self.uuid


class ReconcileTask(Message):
    task_id: TaskID
    agent_id: AgentID | None = None


class Reconcile(Message):
    tasks: list[ReconcileTask] = []  # empty = implicit reconciliation


class ReconcileOperation(Message):
    operation_id: OperationID
    agent_id: AgentID | None = None
    resource_provider_id: ResourceProviderID | None = None


class ReconcileOperations(Message):
    operations: list[ReconcileOperation] = []


class CallMessage(Message):
    agent_id: AgentID
    executor_id: ExecutorID
    data: bytes


class CallRequest(Message):
    requests: list[Request] = []


class UpdateFramework(Message):
    framework_info: FrameworkInfo
    suppressed_roles: list[str] = []
    offer_constraints: dict[str, Any] | None = None


class Call(Message):
    """`{"type": T, "framework_id": {...}, "<t lowercased>": {...}}`."""

    # Optional on the wire: a missing or unrecognised type is reported by `check_call`.
    type: CallType | None = None
    framework_id: FrameworkID | None = None
    subscribe: Subscribe | None = None
    accept: Accept | None = None
    decline: Decline | None = None
    accept_inverse_offers: AcceptInverseOffers | None = None
    decline_inverse_offers: DeclineInverseOffers | None = None
    revive: Revive | None = None
    kill: Kill | None = None
    shutdown: Shutdown | None = None
    acknowledge: Acknowledge | None = None
    acknowledge_operation_status: AcknowledgeOperationStatus | None = None
    reconcile: Reconcile | None = None
    reconcile_operations: ReconcileOperations | None = None
    message: CallMessage | None = None
    request: CallRequest | None = None
    suppress: Suppress | None = None
    update_framework: UpdateFramework | None = None


_NO_PAYLOAD = frozenset({CallType.TEARDOWN})
# Mesos accepts these without their payload object (spec §11).
_OPTIONAL_PAYLOAD = frozenset({CallType.REVIVE, CallType.SUPPRESS})


def check_call(call: Call) -> Call:
    """Request-level validation of a decoded call; returns it unchanged.

    Raises DecodeError (missing type or payload) or ValidationError (inconsistent ids, bad
    uuid), both 400. A call of type UNKNOWN passes: the server answers it with 501.
    """
    union_payload(call, no_payload=_NO_PAYLOAD, optional=_OPTIONAL_PAYLOAD)
    if call.type == CallType.UNKNOWN:
        return call
    if call.type == CallType.SUBSCRIBE:
        assert call.subscribe is not None
        info_id = call.subscribe.framework_info.id
        if call.framework_id is not None and call.framework_id != info_id:
            raise ValidationError("'framework_id' differs from 'subscribe.framework_info.id'")
        return call
    if call.framework_id is None:
        raise ValidationError("Expecting 'framework_id' to be present")
    if call.type == CallType.UPDATE_FRAMEWORK:
        assert call.update_framework is not None
        if call.update_framework.framework_info.id != call.framework_id:
            raise ValidationError(
                "'framework_id' differs from 'update_framework.framework_info.id'"
            )
    elif call.type == CallType.ACKNOWLEDGE:
        assert call.acknowledge is not None
        if len(call.acknowledge.uuid) != 16:
            raise ValidationError("'acknowledge.uuid' is not a valid UUID (16 bytes)")
    return call


def decode_call(data: bytes | str) -> Call:
    """Decode and check a scheduler call body (see `check_call`)."""
    return check_call(decode(data, Call))


# --------------------------------------------------------------------------- events


class EventType(StrEnum):
    UNKNOWN = "UNKNOWN"
    SUBSCRIBED = "SUBSCRIBED"
    OFFERS = "OFFERS"
    INVERSE_OFFERS = "INVERSE_OFFERS"
    RESCIND = "RESCIND"
    RESCIND_INVERSE_OFFER = "RESCIND_INVERSE_OFFER"
    UPDATE = "UPDATE"
    UPDATE_OPERATION_STATUS = "UPDATE_OPERATION_STATUS"
    MESSAGE = "MESSAGE"
    FAILURE = "FAILURE"
    ERROR = "ERROR"
    HEARTBEAT = "HEARTBEAT"


HEARTBEAT_INTERVAL_SECONDS = 15.0


class Subscribed(Message):
    framework_id: FrameworkID
    heartbeat_interval_seconds: float | None = None
    master_info: MasterInfo | None = None


class Offers(Message):
    offers: list[Offer] = []


class InverseOffers(Message):
    inverse_offers: list[InverseOffer] = []


class Rescind(Message):
    offer_id: OfferID


class RescindInverseOffer(Message):
    inverse_offer_id: OfferID


class Update(Message):
    status: TaskStatus


class UpdateOperationStatus(Message):
    status: OperationStatus


class EventMessage(Message):
    agent_id: AgentID
    executor_id: ExecutorID
    data: bytes


class Failure(Message):
    """Agent lost (`agent_id` only) or custom executor exited (with `executor_id`, `status`)."""

    agent_id: AgentID | None = None
    executor_id: ExecutorID | None = None
    status: int | None = None  # wait status of the executor


class Error(Message):
    message: str


class Event(Message):
    type: EventType | None = None
    subscribed: Subscribed | None = None
    offers: Offers | None = None
    inverse_offers: InverseOffers | None = None
    rescind: Rescind | None = None
    rescind_inverse_offer: RescindInverseOffer | None = None
    update: Update | None = None
    update_operation_status: UpdateOperationStatus | None = None
    message: EventMessage | None = None
    failure: Failure | None = None
    error: Error | None = None


def check_event(event: Event) -> Event:
    """Check that a decoded event carries the payload of its type (used by the SDK)."""
    union_payload(event, no_payload=frozenset({EventType.HEARTBEAT}))
    return event
