"""Offer operations on agents' default resources and their feedback (issue 14 §2, §4).

Owns RESERVE and UNRESERVE, from frameworks (steps of an ACCEPT, on what was offered) and
from operators (RESERVE_RESOURCES / UNRESERVE_RESOURCES, on unallocated resources, rescinding
offers when needed), and the operations' life as Mesos tracks it:

1. validated with Mesos's messages (`src/master/validation.cpp`) and authorized
   (`reserve_resources` on the reservation's role, `unreserve_resources` on the reserver
   principal); a framework's invalid operation is *dropped*: OPERATION_ERROR if it has an id,
   otherwise only counted; an operator's is refused (400, 403, or 409 when the resources are
   not available) — nothing is half-applied;
2. applied speculatively: the agent's total and the allocator change at once, the operation
   is recorded OPERATION_PENDING and the agent is sent APPLY_OPERATION;
3. the agent checkpoints the result and sends OPERATION_FINISHED reliably; with an operation
   id the framework hears UPDATE_OPERATION_STATUS and acknowledges it
   (ACKNOWLEDGE_OPERATION_STATUS), otherwise the master acknowledges to the agent itself;
   an acknowledged terminal status ends the operation;
4. RECONCILE_OPERATIONS answers every listed operation (the latest status, or
   OPERATION_RECOVERING / UNREACHABLE / GONE_BY_OPERATOR / UNKNOWN as Mesos decides);
   GET_OPERATIONS lists the live ones. After a failover, agents report their checkpointed
   resources and unacknowledged operations when they re-register, and the master rebuilds
   both from them; an operation the master sent that its agent does not report is
   OPERATION_DROPPED.

Persistent volumes (CREATE / DESTROY) use the same path; their validation is the volume
code's (`volume_conversions`, which this module refuses until it exists).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import msgspec

from mezzo.api.codec import to_builtins
from mezzo.api.common import (
    TERMINAL_OPERATION_STATES,
    UUID,
    AgentID,
    AllocationInfo,
    Create,
    Destroy,
    GrowVolume,
    OfferOperation,
    OfferOperationType,
    OperationID,
    OperationState,
    OperationStatus,
    Reserve,
    Resource,
    ShrinkVolume,
    Unreserve,
)
from mezzo.api.internal import (
    AgentAcknowledgeOperationStatus,
    AgentApplyOperation,
    AgentEvent,
    AgentEventType,
    AgentSubscribe,
    AgentUpdateOperationStatus,
)
from mezzo.api.scheduler import (
    AcknowledgeOperationStatus,
    Event,
    EventType,
    ReconcileOperations,
    UpdateOperationStatus,
)
from mezzo.core.errors import CallRefused, ValidationError
from mezzo.master.base import MasterBase, log
from mezzo.master.records import AgentRecord, FrameworkRecord, OperationRecord
from mezzo.resources import DYNAMIC, Resources
from mezzo.resources import conversions as conv
from mezzo.resources.conversions import Conversion, ConversionError
from mezzo.resources.disk import as_disk_key

# Applied at once to the master's view (GROW_VOLUME/SHRINK_VOLUME too here: see volumes.py).
SPECULATIVE = frozenset({
    OfferOperationType.RESERVE, OfferOperationType.UNRESERVE,
    OfferOperationType.CREATE, OfferOperationType.DESTROY,
    OfferOperationType.GROW_VOLUME, OfferOperationType.SHRINK_VOLUME,
})
# Operator errors that name the agent (Mesos's http.cpp); DESTROY's does not.
_ON_AGENT = frozenset({
    OfferOperationType.RESERVE, OfferOperationType.CREATE,
    OfferOperationType.GROW_VOLUME, OfferOperationType.SHRINK_VOLUME,
})
# What an agent must advertise for feedback on operations on its default resources.
FEEDBACK_CAPABILITIES = ("AGENT_OPERATION_FEEDBACK", "RESOURCE_PROVIDER")


class OperationError(Exception):
    """An operation that fails validation or authorization (the message says why)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


R = TypeVar("R")


def describe_agent(agent: AgentRecord) -> str:
    """Mesos's `stringify(*slave)`."""
    return f"{agent.id} at {agent.pid} ({agent.hostname})"


def validated(check: Callable[[], R], where: str) -> R:
    """Run a validation; its OperationError gains `where` (Mesos's `; on agent ...`)."""
    try:
        return check()
    except OperationError as exc:
        raise OperationError(exc.message + where) from None


def _json(resource: object) -> str:
    return json.dumps(to_builtins(resource), separators=(",", ":"), sort_keys=True)


def map_resources(
    operation: OfferOperation, fn: Callable[[list[Resource]], list[Resource]]
) -> OfferOperation:
    """The operation with `fn` applied to each list of resources it carries."""
    replace = msgspec.structs.replace
    if operation.reserve is not None:
        return replace(operation, reserve=Reserve(
            source=fn(operation.reserve.source), resources=fn(operation.reserve.resources)))
    if operation.unreserve is not None:
        return replace(operation, unreserve=Unreserve(resources=fn(operation.unreserve.resources)))
    if operation.create is not None:
        return replace(operation, create=Create(volumes=fn(operation.create.volumes)))
    if operation.destroy is not None:
        return replace(operation, destroy=Destroy(volumes=fn(operation.destroy.volumes)))
    if operation.grow_volume is not None:
        grow = operation.grow_volume
        return replace(operation, grow_volume=GrowVolume(
            volume=fn([grow.volume])[0], addition=fn([grow.addition])[0]))
    if operation.shrink_volume is not None:
        shrink = operation.shrink_volume
        return replace(operation, shrink_volume=ShrinkVolume(
            volume=fn([shrink.volume])[0], subtract=shrink.subtract))
    return operation


class OperationCalls(MasterBase):
    # ================================================================= validation

    def _operation_resources(self, resources: list[Resource], what: str) -> Resources:
        try:
            return Resources.from_wire(resources)
        except ValidationError as exc:
            raise OperationError(f"Invalid {what}: {exc}") from None

    def validate_reserve(
        self, reserve: Reserve, principal: str | None, framework: FrameworkRecord | None
    ) -> tuple[Resources, Resources]:
        """Mesos's `validation::operation::validate(Reserve)`: the resources to reserve (as
        given, allocation info included) and the source (empty unless given)."""
        resources = self._operation_resources(list(reserve.resources), "resources")
        source = self._operation_resources(list(reserve.source), "source")
        if not resources:
            raise OperationError("Invalid resources: Resource cannot be empty")
        if source:
            for name, part in (("source", source), ("resources", resources)):
                stacks = {it.key.reservations for it in part}
                if len(stacks) != 1:
                    raise OperationError(f"Invalid {name}: Mixed reservations are not supported{part}")
            if source.to_unreserved().unallocate() != resources.to_unreserved().unallocate():
                raise OperationError(
                    "Source and target resources should refer to identical resource quantities: "
                    f"{source.to_unreserved()} vs. {resources.to_unreserved()}")
        roles = set(framework.roles) if framework is not None else None
        for item in resources:
            one = Resources([item])
            top = item.key.reservations[-1] if item.key.reservations else None
            if top is None or top.type != DYNAMIC:
                raise OperationError(f"Resource {one} is not dynamically reserved")
            if principal is not None:
                if top.principal is None:
                    raise OperationError(
                        f"A reserve operation was attempted by principal '{principal}', but there"
                        " is a reserved resource in the request with no principal set")
                if top.principal != principal:
                    raise OperationError(
                        "A reserve operation was attempted by authenticated principal"
                        f" '{principal}', which does not match a reserved resource in the request"
                        f" with principal '{top.principal}'")
            allocation = item.key.allocation_role
            if roles is not None:
                if allocation is None:
                    raise OperationError(
                        f"A reserve operation was attempted on unallocated resource {one}, but"
                        " frameworks can only perform reservations on allocated resources")
                if allocation != top.role:
                    raise OperationError(
                        f"A reserve operation was attempted for a resource with role '{top.role}',"
                        f" but the resource was allocated to role '{allocation}'")
                if allocation not in roles:
                    raise OperationError(
                        "A reserve operation was attempted for a resource allocated to role"
                        f" '{allocation}', but the framework only has roles '{sorted(roles)}'")
            elif allocation is not None:
                raise OperationError(
                    "A reserve operation was attempted with an allocated resource, but the"
                    " operator API only allows reservations to be made to unallocated resources")
        if roles is not None and len(resources.allocations()) > 1:
            raise OperationError("Invalid reservation resources: Expecting resources to be"
                                 " allocated to a single role")
        return resources, source

    def validate_unreserve(self, unreserve: Unreserve) -> Resources:
        resources = self._operation_resources(list(unreserve.resources), "resources")
        for item in resources:
            one = Resources([item])
            top = item.key.reservations[-1] if item.key.reservations else None
            if top is None or top.type != DYNAMIC:
                raise OperationError(f"Resource {one} is not dynamically reserved")
            disk = as_disk_key(item.key.disk)
            if disk is not None and disk.persistence_id is not None:
                raise OperationError(
                    f"A dynamically reserved persistent volume {one} cannot be unreserved"
                    " directly. Please destroy the persistent volume first then unreserve the"
                    " resource")
        return resources

    def authorize_operation(
        self, principal: str | None, operation: OfferOperation, resources: Resources
    ) -> str | None:
        """Why `principal` may not do this (Mesos's wording), or None."""
        if operation.type == OfferOperationType.RESERVE:
            action, name = "reserve_resources", "RESERVE_RESOURCES"
        elif operation.type == OfferOperationType.UNRESERVE:
            action, name = "unreserve_resources", "UNRESERVE_RESOURCES"
        else:
            return None
        for item in resources:
            top = item.key.reservations[-1]
            obj = top.role if action == "reserve_resources" else top.principal
            if not self.authorize(action, principal, obj):
                wire = Resources([item]).unallocate().to_wire()[0]
                return (f"Principal '{principal or ''}' no authorized to perform action {name}"
                        f" on object {_json({'resource': wire})}")
        return None

    def _conversions(
        self,
        operation: OfferOperation,
        principal: str | None,
        framework: FrameworkRecord | None,
        agent: AgentRecord,
    ) -> list[Conversion]:
        """Validate and authorize; the conversions (tagged as given) or OperationError."""
        where = f"; on agent {describe_agent(agent)}"
        match operation.type:
            case OfferOperationType.RESERVE:
                if operation.reserve is None:
                    raise OperationError("Expecting 'reserve' to be present")
                reserve = operation.reserve
                resources, source = validated(
                    lambda: self.validate_reserve(reserve, principal, framework), where)
                denied = self.authorize_operation(principal, operation, resources)
                if denied:
                    raise OperationError(denied, 403)
                return conv.reserve(resources, source or None)
            case OfferOperationType.UNRESERVE:
                if operation.unreserve is None:
                    raise OperationError("Expecting 'unreserve' to be present")
                unreserve = operation.unreserve
                resources = validated(lambda: self.validate_unreserve(unreserve), where)
                denied = self.authorize_operation(principal, operation, resources)
                if denied:
                    raise OperationError(denied, 403)
                return conv.unreserve(resources)
            case _:
                return self.volume_conversions(operation, principal, framework, agent)

    def volume_conversions(
        self,
        operation: OfferOperation,
        principal: str | None,
        framework: FrameworkRecord | None,
        agent: AgentRecord,
    ) -> list[Conversion]:
        """CREATE / DESTROY: the persistent volume code overrides this."""
        raise OperationError(f"Offer operation {operation.type} is not supported by this master yet")

    # ================================================================= frameworks (ACCEPT)

    def accept_operation(
        self,
        framework: FrameworkRecord,
        agent: AgentRecord,
        role: str,
        available: Resources,
        operation: OfferOperation,
    ) -> Resources:
        """One RESERVE / UNRESERVE (/ CREATE / DESTROY) step of an ACCEPT: applied to what is
        left of the offers (`available`, tagged with `role`), which is returned updated; or
        dropped (OPERATION_ERROR when the operation has an id), leaving `available` as is."""
        if operation.id is not None and not all(
            c in agent.capabilities for c in FEEDBACK_CAPABILITIES
        ):
            self.drop_operation(
                framework, operation,
                f"Operation on agent default resources requested feedback, but agent {agent.id}"
                " does not have the required AGENT_OPERATION_FEEDBACK and RESOURCE_PROVIDER"
                " capabilities")
            return available
        if operation.type == OfferOperationType.RESERVE and operation.reserve is not None \
                and operation.reserve.source:
            self.drop_operation(
                framework, operation,
                "Reservation updates are not yet implemented for the scheduler API.")
            return available
        try:
            conversions = [
                Conversion(c.consumed if c.consumed.allocations() else c.consumed.allocate(role),
                           c.converted if c.converted.allocations() else c.converted.allocate(role))
                for c in self._conversions(
                    self._with_allocation(operation, role), framework.info.principal or None,
                    framework, agent)
            ]
            remaining = conv.apply(available, conversions)
        except OperationError as exc:
            self.drop_operation(framework, operation, exc.message)
            return available
        except (ConversionError, ValidationError) as exc:
            self.drop_operation(framework, operation, str(exc))
            return available
        log.info("applying %s operation for resources %s from framework %s to agent %s",
                 operation.type, conversions[0].converted if conversions else "[]", framework.id,
                 agent.id)
        for conversion in conversions:
            self.allocator.update_allocation(framework.id, agent.id, conversion.consumed,
                                             conversion.converted)
        self._apply(agent, framework, operation, conversions)
        return remaining

    @staticmethod
    def _with_allocation(operation: OfferOperation, role: str) -> OfferOperation:
        """Mesos's `injectAllocationInfo`: the offer's allocation role on resources that
        have none."""
        def inject(resources: list[Resource]) -> list[Resource]:
            return [r if r.allocation_info is not None
                    else msgspec.structs.replace(r, allocation_info=AllocationInfo(role=role))
                    for r in resources]

        return map_resources(operation, inject)

    def drop_operation(
        self, framework: FrameworkRecord, operation: OfferOperation, message: str
    ) -> None:
        """Mesos's `Master::drop(framework, operation, message)`: OPERATION_ERROR to the
        framework if it asked for feedback (no agent id, no uuid: not reliable)."""
        log.warning("dropping %s operation from framework %s: %s", operation.type, framework.id,
                    message)
        self.counters.inc(f"operations/{str(operation.type).lower()}/error")
        self.counters.inc("operations/error")
        if operation.id is not None:
            self.send_operation_update(framework, OperationStatus(
                operation_id=operation.id, state=OperationState.OPERATION_ERROR, message=message))

    def send_operation_update(self, framework: FrameworkRecord, status: OperationStatus) -> bool:
        return self.send(framework, Event(
            type=EventType.UPDATE_OPERATION_STATUS,
            update_operation_status=UpdateOperationStatus(status=status)))

    # ================================================================= operators

    def operator_operation(self, operation: OfferOperation, agent_id: str,
                           principal: str | None) -> None:
        """RESERVE_RESOURCES / UNRESERVE_RESOURCES (and the volume calls): 400 invalid,
        403 not authorized, 409 not available (after rescinding the offers that hold what is
        needed); nothing changes unless it succeeds."""
        agent = self.agents.get(agent_id)
        if agent is None:
            raise CallRefused(400, "No agent found with specified ID")
        try:
            conversions = self._conversions(operation, principal, None, agent)
        except OperationError as exc:
            if exc.status == 403:
                raise CallRefused(403, f"Forbidden: {exc.message}") from None
            prefix = (f"Invalid {operation.type} operation on agent {describe_agent(agent)}: "
                      if operation.type in _ON_AGENT
                      else f"Invalid {operation.type} operation: ")
            message = exc.message.removesuffix(f"; on agent {describe_agent(agent)}")
            raise CallRefused(400, prefix + message) from None
        except ValidationError as exc:
            raise CallRefused(400, str(exc)) from None
        plain = [c.unallocated() for c in conversions]
        required = conv.consumed(plain)
        # As Mesos: rescind the agent's offers, one at a time, until what they hold covers
        # what the operation consumes.
        recovered = Resources()
        for offer_id in sorted(agent.offers):
            offer = self.offers.get(offer_id)
            if offer is None:
                continue
            held = offer.resources.unallocate()
            if required - held == required:
                continue
            recovered = recovered + held
            required = required - held
            self.remove_offer(offer, rescind=True, refuse=self.refusal_seconds(5.0, declined=False))
            try:
                conv.apply(recovered, plain)
                break
            except ConversionError:
                continue
        try:
            self.allocator.update_available(agent.id, plain)
        except ConversionError as exc:
            raise CallRefused(409, str(exc)) from None
        log.info("applying %s operation for resources %s from an operator to agent %s",
                 operation.type, plain[0].converted if plain else "", agent.id)
        self._apply(agent, None, operation, plain)
        self.request_allocation()

    def reserve_resources(self, agent_id: str, source: list[Resource], resources: list[Resource],
                          principal: str | None) -> None:
        operation = OfferOperation(type=OfferOperationType.RESERVE, reserve=Reserve(
            source=source, resources=resources))
        self.operator_operation(operation, agent_id, principal)

    def unreserve_resources(self, agent_id: str, resources: list[Resource],
                            principal: str | None) -> None:
        operation = OfferOperation(type=OfferOperationType.UNRESERVE, unreserve=Unreserve(
            resources=resources))
        self.operator_operation(operation, agent_id, principal)

    # ================================================================= applying

    def _apply(
        self,
        agent: AgentRecord,
        framework: FrameworkRecord | None,
        operation: OfferOperation,
        conversions: list[Conversion],
    ) -> OperationRecord:
        """Speculatively apply to the master's view of the agent, record the operation
        OPERATION_PENDING and send it to the agent (Mesos's `Master::_apply`)."""
        plain = [c.unallocated() for c in conversions]
        before = agent.total
        agent.total = conv.apply(agent.total, plain)
        self.agents.remeasure(agent.id, agent, before)
        agent.checkpointed = conv.checkpointed_after(agent.checkpointed, plain)
        uuid = self.ids.uuid_bytes()
        stripped = self._stripped_info(operation, plain)
        record = OperationRecord(
            uuid=uuid,
            info=operation,
            agent_id=agent.id,
            framework_id=framework.id if framework is not None else None,
            latest_status=OperationStatus(
                operation_id=operation.id, state=OperationState.OPERATION_PENDING,
                agent_id=AgentID(value=agent.id)),
        )
        self._add_operation(record)
        self.counters.inc(f"operations/{str(operation.type).lower()}/pending")
        if not agent.connected or agent.stream is None:
            # As Mesos: the message is lost; when the agent re-registers its own report wins
            # and the operation is OPERATION_DROPPED (`agent_operations_rebuilt`).
            log.warning("agent %s is disconnected: operation %s not sent", agent.id, uuid.hex())
            return record
        self.outbox.send_agent(agent.stream, AgentEvent(
            type=AgentEventType.APPLY_OPERATION,
            apply_operation=AgentApplyOperation(
                framework_id=framework.info.id if framework is not None else None,
                operation_info=stripped, operation_uuid=UUID(value=uuid))))
        return record

    @staticmethod
    def _stripped_info(operation: OfferOperation, plain: list[Conversion]) -> OfferOperation:
        """The operation as the agent applies it: resources without allocation info."""
        def strip(resources: list[Resource]) -> list[Resource]:
            return [msgspec.structs.replace(r, allocation_info=None) for r in resources]

        return map_resources(operation, strip)

    def _add_operation(self, record: OperationRecord) -> None:
        agent = self.agents.get(record.agent_id)
        if agent is not None:
            agent.operations[record.uuid] = record
        if record.framework_id is not None and record.operation_id is not None:
            self.framework_operations.setdefault(record.framework_id, {})[record.operation_id] = record

    def _remove_operation(self, record: OperationRecord) -> None:
        agent = self.agents.get(record.agent_id)
        if agent is not None:
            agent.operations.pop(record.uuid, None)
        if record.framework_id is not None and record.operation_id is not None:
            mine = self.framework_operations.get(record.framework_id)
            if mine is not None and mine.get(record.operation_id) is record:
                del mine[record.operation_id]
                if not mine:
                    del self.framework_operations[record.framework_id]

    # ================================================================= feedback

    def operation_status_update(self, agent: AgentRecord, update: AgentUpdateOperationStatus) -> None:
        """An agent's UPDATE_OPERATION_STATUS (Mesos's `updateOperationStatus`)."""
        self.counters.inc("messages_operation_status_update")
        record = agent.operations.get(update.operation_uuid.value)
        if record is None:
            self.counters.inc("invalid_operation_status_updates")
            # Already terminal and acknowledged here (a duplicate): acknowledge again so the
            # agent stops resending.
            if update.status.uuid is not None:
                self._acknowledge_to_agent(agent, update.status.uuid.value, update.operation_uuid.value)
            return
        self.counters.inc("valid_operation_status_updates")
        status = update.status
        if record.info.id is not None:
            status.operation_id = record.info.id
        latest = update.latest_status or status
        if record.latest_status.state not in TERMINAL_OPERATION_STATES:
            record.latest_status = latest
        if not record.statuses or record.statuses[-1] != status:
            record.statuses.append(status)
        state = str(status.state).removeprefix("OPERATION_").lower()
        self.counters.inc(f"operations/{str(record.info.type).lower()}/{state}")
        framework_id = record.framework_id
        will_ack = (record.info.id is not None and framework_id is not None
                    and framework_id not in self.completed_frameworks)
        if will_ack:
            assert framework_id is not None
            framework = self.frameworks.get(framework_id)
            if framework is not None and framework.connected:
                self.send_operation_update(framework, status)
            if status.state in TERMINAL_OPERATION_STATES and status.uuid is None:
                self._remove_operation(record)
        elif status.uuid is not None:
            if status.state in TERMINAL_OPERATION_STATES:
                self._remove_operation(record)
            self._acknowledge_to_agent(agent, status.uuid.value, record.uuid)

    def _acknowledge_to_agent(self, agent: AgentRecord, status_uuid: bytes, operation_uuid: bytes) -> None:
        if agent.connected and agent.stream is not None:
            self.outbox.send_agent(agent.stream, AgentEvent(
                type=AgentEventType.ACKNOWLEDGE_OPERATION_STATUS,
                acknowledge_operation_status=AgentAcknowledgeOperationStatus(
                    status_uuid=UUID(value=status_uuid), operation_uuid=UUID(value=operation_uuid))))

    def acknowledge_operation_status(
        self, framework: FrameworkRecord, ack: AcknowledgeOperationStatus
    ) -> None:
        """ACKNOWLEDGE_OPERATION_STATUS (Mesos's `acknowledgeOperationStatus`)."""
        self.counters.inc("messages_operation_status_update_acknowledgement")
        if ack.agent_id is None:
            raise CallRefused(400, "Expecting 'agent_id' to be present")
        if len(ack.uuid_bytes) != 16:
            raise CallRefused(400, "Failed to parse status update UUID: "
                                   f"expected 16 bytes, not {len(ack.uuid_bytes)}")
        agent = self.agents.get(ack.agent_id.value)
        record = self.framework_operations.get(framework.id, {}).get(ack.operation_id.value)
        if agent is None or not agent.connected or record is None:
            log.warning("cannot acknowledge status of operation '%s' of framework %s on agent %s",
                        ack.operation_id.value, framework.id, ack.agent_id.value)
            self.counters.inc("invalid_operation_status_update_acknowledgements")
            return
        acknowledged = next((s for s in record.statuses
                             if s.uuid is not None and s.uuid.value == ack.uuid_bytes), None)
        if acknowledged is None:
            self.counters.inc("invalid_operation_status_update_acknowledgements")
            return
        if acknowledged.state in TERMINAL_OPERATION_STATES:
            self._remove_operation(record)
        self._acknowledge_to_agent(agent, ack.uuid_bytes, record.uuid)
        self.counters.inc("valid_operation_status_update_acknowledgements")

    def reconcile_operations(self, framework: FrameworkRecord, call: ReconcileOperations) -> None:
        """RECONCILE_OPERATIONS: one UPDATE_OPERATION_STATUS per listed operation (every
        known one when the list is empty), never reliable (no uuid)."""
        self.counters.inc("messages_reconcile_operations")

        def latest(record: OperationRecord) -> OperationStatus:
            status = record.statuses[-1] if record.statuses else record.latest_status
            return msgspec.structs.replace(status, uuid=None)

        known = self.framework_operations.get(framework.id, {})
        if not call.operations:
            for record in list(known.values()):
                self.send_operation_update(framework, latest(record))
        for wanted in call.operations:
            op_id = wanted.operation_id
            agent_id = wanted.agent_id.value if wanted.agent_id is not None else None
            found = known.get(op_id.value)
            if found is not None:
                self.send_operation_update(framework, latest(found))
                continue
            if agent_id is not None and agent_id in self.recovered_agents:
                state, message = (OperationState.OPERATION_RECOVERING,
                                  "Reconciliation: Agent is recovered but has not re-registered")
            elif agent_id is not None and agent_id in self.agents:
                state, message = (OperationState.OPERATION_UNKNOWN,
                                  "Reconciliation: Operation is unknown")
            elif agent_id is not None and agent_id in self.unreachable_agents:
                state, message = (OperationState.OPERATION_UNREACHABLE,
                                  "Reconciliation: Agent is unreachable")
            elif agent_id is not None and agent_id in self.gone_agents:
                state, message = (OperationState.OPERATION_GONE_BY_OPERATOR,
                                  "Reconciliation: Agent marked gone by operator")
            elif agent_id is not None:
                state, message = (OperationState.OPERATION_UNKNOWN,
                                  "Reconciliation: Both operation and agent are unknown")
            else:
                state, message = (OperationState.OPERATION_UNKNOWN,
                                  "Reconciliation: Operation is unknown and no 'agent_id' was"
                                  " provided")
            self.send_operation_update(framework, OperationStatus(
                operation_id=OperationID(value=op_id.value), state=state, message=message,
                agent_id=wanted.agent_id, resource_provider_id=wanted.resource_provider_id))

    def get_operations(self) -> list[OperationRecord]:
        """GET_OPERATIONS: every live operation, agent by agent."""
        return [record for agent in self.agents.values() for record in agent.operations.values()]

    # ================================================================= agents

    def agent_operations_rebuilt(self, agent: AgentRecord, previous: AgentRecord | None,
                                 sub: AgentSubscribe) -> None:
        """A (re-)registered agent reports its unacknowledged operations: they replace what
        this master knew of the agent; an operation the master sent that the agent does not
        report never reached it (OPERATION_DROPPED, as Mesos's `updateSlave`)."""
        reported: set[bytes] = set()
        for wire in sub.operations:
            uuid = wire.uuid.value
            reported.add(uuid)
            record = OperationRecord(
                uuid=uuid, info=wire.info, agent_id=agent.id,
                framework_id=wire.framework_id.value if wire.framework_id is not None else None,
                latest_status=wire.latest_status, statuses=list(wire.statuses))
            self._add_operation(record)
        if previous is None:
            return
        for uuid, old in list(previous.operations.items()):
            if uuid in reported:
                continue
            self._remove_operation(old)
            if old.latest_status.state in TERMINAL_OPERATION_STATES:
                continue
            framework = self.frameworks.get(old.framework_id or "")
            if framework is not None and old.info.id is not None:
                self.send_operation_update(framework, OperationStatus(
                    operation_id=old.info.id, state=OperationState.OPERATION_DROPPED,
                    message="Agent did not report the operation when it re-registered",
                    agent_id=AgentID(value=agent.id)))

    def agent_operations_removed(self, agent: AgentRecord, gone: bool) -> None:
        """The agent is removed (unreachable, or gone): its operations end for the master;
        frameworks that asked feedback hear OPERATION_UNREACHABLE or OPERATION_GONE_BY_OPERATOR."""
        state = (OperationState.OPERATION_GONE_BY_OPERATOR if gone
                 else OperationState.OPERATION_UNREACHABLE)
        for record in list(agent.operations.values()):
            self._remove_operation(record)
            if record.latest_status.state in TERMINAL_OPERATION_STATES or record.info.id is None:
                continue
            framework = self.frameworks.get(record.framework_id or "")
            if framework is not None:
                self.send_operation_update(framework, OperationStatus(
                    operation_id=record.info.id, state=state,
                    message="Agent marked gone by operator" if gone else "Agent is unreachable",
                    agent_id=AgentID(value=agent.id)))
