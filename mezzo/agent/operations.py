"""The agent's checkpointed resources and offer operations (issue 14 §2, §4), without I/O.

Owns what the master's APPLY_OPERATION events change on this agent: the *checkpointed
resources* (dynamic reservations, persistent volumes: Mesos's `checkpointed_resources`) and the
operations applied to them until the master acknowledges their terminal status. The agent's
total is its static `--resources` with the checkpointed ones carved out
(`mezzo.resources.conversions.apply_checkpointed`).

An APPLY_OPERATION is applied to the checkpointed resources, checkpointed (the resources
first, then the operation with its OPERATION_FINISHED status: a crash in between leaves the
operation to be re-sent by the master as unknown and dropped), and its status is sent to the
master as UPDATE_OPERATION_STATUS, resent with exponential backoff (10 s doubling to 10 min,
as task status updates) until an ACKNOWLEDGE_OPERATION_STATUS names it; a terminal status
acknowledged removes the operation. A restarted agent recovers both from the checkpoint and
reports them when it re-registers (`subscribe_fields`), so reservations survive agent restarts
and master failovers.
"""

from __future__ import annotations

from dataclasses import dataclass

from mezzo.api.common import (
    TERMINAL_OPERATION_STATES,
    UUID,
    AgentID,
    Operation,
    OperationState,
    OperationStatus,
    Resource,
)
from mezzo.api.internal import (
    AgentAcknowledgeOperationStatus,
    AgentApplyOperation,
    AgentCall,
    AgentCallType,
    AgentUpdateOperationStatus,
)
from mezzo.core.errors import ValidationError
from mezzo.resources import Resources
from mezzo.resources import conversions as conv

__all__ = ["AgentOperations", "OperationCheckpoint", "RemoveOperationCheckpoint", "ResourcesCheckpoint"]


@dataclass(frozen=True, slots=True)
class ResourcesCheckpoint:
    """Write the checkpointed resources (`meta/resources/resources.info`)."""

    resources: list[Resource]


@dataclass(frozen=True, slots=True)
class OperationCheckpoint:
    """Write one operation (`meta/slaves/<id>/operations/<uuid>/operation.info`)."""

    operation: Operation


@dataclass(frozen=True, slots=True)
class RemoveOperationCheckpoint:
    uuid: bytes


@dataclass
class _Pending:
    update: AgentUpdateOperationStatus
    next_retry: float
    interval: float


class AgentOperations:
    """The checkpointed resources and unacknowledged operations of one agent."""

    def __init__(self, static: Resources, *, initial: float = 10.0, maximum: float = 600.0) -> None:
        self.static = static
        self.checkpointed = Resources()
        self.total = static
        self.operations: dict[bytes, Operation] = {}
        self._pending: dict[bytes, _Pending] = {}
        self.initial = initial
        self.maximum = maximum

    # ------------------------------------------------------------------ recovery

    def recover(self, checkpointed: Resources, operations: list[Operation], now: float) -> None:
        """From the checkpoint. ConversionError if the static resources no longer hold the
        checkpointed ones (Mesos refuses to start the agent then, and so do we)."""
        self.total = conv.apply_checkpointed(self.static, checkpointed)
        self.checkpointed = checkpointed
        for operation in operations:
            uuid = operation.uuid.value
            self.operations[uuid] = operation
            if operation.statuses and operation.statuses[-1].uuid is not None:
                self._pending[uuid] = _Pending(self._update_of(operation), now, self.initial)

    # ------------------------------------------------------------------ the master's events

    def apply(
        self, event: AgentApplyOperation, agent_id: AgentID | None, status_uuid: bytes, now: float
    ) -> tuple[list[ResourcesCheckpoint | OperationCheckpoint], AgentCall]:
        """Apply an operation: the checkpoint records to write (in order) and the status call
        to send (its retries are this object's to schedule)."""
        records: list[ResourcesCheckpoint | OperationCheckpoint] = []
        info = event.operation_info
        try:
            plain = conv.of_operation(info)
            total = conv.apply(self.total, plain)
            checkpointed = conv.checkpointed_after(self.checkpointed, plain)
            state, message = OperationState.OPERATION_FINISHED, None
        except ValidationError as exc:
            state, message = OperationState.OPERATION_FAILED, str(exc)
        else:
            self.total, self.checkpointed = total, checkpointed
            records.append(ResourcesCheckpoint(checkpointed.to_wire()))
        status = OperationStatus(
            operation_id=info.id, state=state, message=message, uuid=UUID(value=status_uuid),
            agent_id=agent_id)
        operation = Operation(
            framework_id=event.framework_id, agent_id=agent_id, info=info, latest_status=status,
            statuses=[status], uuid=event.operation_uuid)
        uuid = event.operation_uuid.value
        self.operations[uuid] = operation
        records.append(OperationCheckpoint(operation))
        update = self._update_of(operation)
        self._pending[uuid] = _Pending(update, now + self.initial, self.initial)
        return records, self._call(update, agent_id)

    def acknowledge(self, ack: AgentAcknowledgeOperationStatus) -> RemoveOperationCheckpoint | None:
        """The master (or the framework, through it) acknowledged a status: stop resending
        it; a terminal one ends the operation (the record to remove it from the checkpoint)."""
        uuid = ack.operation_uuid.value
        pending = self._pending.get(uuid)
        if pending is None or pending.update.status.uuid is None \
                or pending.update.status.uuid.value != ack.status_uuid.value:
            return None
        del self._pending[uuid]
        if pending.update.status.state in TERMINAL_OPERATION_STATES:
            self.operations.pop(uuid, None)
            return RemoveOperationCheckpoint(uuid)
        return None

    # ------------------------------------------------------------------ retries

    def due(self, now: float, agent_id: AgentID | None) -> list[AgentCall]:
        """Status updates whose retry is due (each one's interval doubles, up to the max)."""
        out = []
        for pending in self._pending.values():
            if pending.next_retry <= now:
                pending.interval = min(pending.interval * 2, self.maximum)
                pending.next_retry = now + pending.interval
                out.append(self._call(pending.update, agent_id))
        return out

    def resend_all(self, now: float, agent_id: AgentID | None) -> list[AgentCall]:
        """After (re-)registering: every unacknowledged status, at once."""
        for pending in self._pending.values():
            pending.interval = self.initial
            pending.next_retry = now + self.initial
        return [self._call(p.update, agent_id) for p in self._pending.values()]

    def next_deadline(self) -> float | None:
        return min((p.next_retry for p in self._pending.values()), default=None)

    # ------------------------------------------------------------------ queries

    def subscribe_fields(self) -> tuple[list[Resource], list[Operation]]:
        """What a (re-)registering agent reports: checkpointed resources, operations."""
        return self.checkpointed.to_wire(), list(self.operations.values())

    @staticmethod
    def _update_of(operation: Operation) -> AgentUpdateOperationStatus:
        status = operation.statuses[-1] if operation.statuses else operation.latest_status
        return AgentUpdateOperationStatus(
            framework_id=operation.framework_id, status=status,
            latest_status=operation.latest_status, operation_uuid=operation.uuid)

    @staticmethod
    def _call(update: AgentUpdateOperationStatus, agent_id: AgentID | None) -> AgentCall:
        return AgentCall(type=AgentCallType.UPDATE_OPERATION_STATUS, agent_id=agent_id,
                         update_operation_status=update)
