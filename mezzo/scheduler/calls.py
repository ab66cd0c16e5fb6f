"""Typed methods for every scheduler call (spec §4.1), shared by the asyncio client.

`SchedulerCalls` builds the `Call` payloads from friendly arguments (ids may be given as
strings, offers as `Offer` records, decline filters as `refuse_seconds=`) and hands them to
`_send`, which the client implements (framework id, stream id, HTTP). SUBSCRIBE is not here:
the client sends it itself. ACKNOWLEDGE is defined on the client (it also serves implicit
acknowledgements).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from mezzo.api.common import (
    AgentID,
    Create,
    Destroy,
    DiskInfo,
    DurationInfo,
    ExecutorID,
    ExecutorInfo,
    Filters,
    FrameworkInfo,
    KillPolicy,
    Launch,
    LaunchGroup,
    Offer,
    OfferID,
    OfferOperation,
    OfferOperationType,
    OperationID,
    OperationStatus,
    Persistence,
    Request,
    Reserve,
    Resource,
    SharedInfo,
    TaskGroupInfo,
    TaskID,
    TaskInfo,
    TaskStatus,
    Unreserve,
    Volume,
)
from mezzo.api.scheduler import (
    Accept,
    AcceptInverseOffers,
    AcknowledgeOperationStatus,
    CallMessage,
    CallRequest,
    CallType,
    Decline,
    DeclineInverseOffers,
    Kill,
    Reconcile,
    ReconcileOperation,
    ReconcileOperations,
    ReconcileTask,
    Revive,
    Shutdown,
    Suppress,
    UpdateFramework,
)

OfferRef = Offer | OfferID | str
TaskRef = TaskID | str
AgentRef = AgentID | str
ExecutorRef = ExecutorID | str


def offer_id(ref: OfferRef) -> OfferID:
    if isinstance(ref, Offer):
        return ref.id
    return ref if isinstance(ref, OfferID) else OfferID(value=ref)


def offer_ids(refs: OfferRef | Iterable[OfferRef]) -> list[OfferID]:
    """One offer reference or several, as a list of OfferIDs."""
    if isinstance(refs, Offer | OfferID | str):
        return [offer_id(refs)]
    return [offer_id(r) for r in refs]


def task_id(ref: TaskRef) -> TaskID:
    return ref if isinstance(ref, TaskID) else TaskID(value=ref)


def agent_id(ref: AgentRef) -> AgentID:
    return ref if isinstance(ref, AgentID) else AgentID(value=ref)


def executor_id(ref: ExecutorRef) -> ExecutorID:
    return ref if isinstance(ref, ExecutorID) else ExecutorID(value=ref)


def make_filters(filters: Filters | None, refuse_seconds: float | None) -> Filters | None:
    if refuse_seconds is not None:
        return Filters(refuse_seconds=refuse_seconds)
    return filters


def launch_operation(tasks: Sequence[TaskInfo]) -> OfferOperation:
    return OfferOperation(type=OfferOperationType.LAUNCH, launch=Launch(task_infos=list(tasks)))


def reserve_operation(resources: Sequence[Resource], operation_id: str | None = None) -> OfferOperation:
    """RESERVE: `resources` carry the new DYNAMIC reservation on top of their `reservations`
    (role = the offer's allocation role); with `operation_id` the master sends
    UPDATE_OPERATION_STATUS events for it (acknowledge them with
    `acknowledge_operation_status`)."""
    return OfferOperation(type=OfferOperationType.RESERVE, reserve=Reserve(resources=list(resources)),
                          id=OperationID(value=operation_id) if operation_id else None)


def unreserve_operation(resources: Sequence[Resource], operation_id: str | None = None) -> OfferOperation:
    """UNRESERVE: pop the top (dynamic) reservation of each of `resources`."""
    return OfferOperation(type=OfferOperationType.UNRESERVE,
                          unreserve=Unreserve(resources=list(resources)),
                          id=OperationID(value=operation_id) if operation_id else None)


def volume(disk: Resource, persistence_id: str, container_path: str, *,
           principal: str | None = None, shared: bool = False) -> Resource:
    """A persistent volume made of `disk` (a reserved `disk` resource from an offer, allocation
    info kept): `disk.persistence` = `persistence_id` (and the framework's `principal`, which
    the master requires when the framework has one), mounted RW at `container_path` of the
    sandbox; `shared` needs the SHARED_RESOURCES capability."""
    source = disk.disk.source if disk.disk is not None else None
    info = DiskInfo(persistence=Persistence(id=persistence_id, principal=principal),
                    volume=Volume(container_path=container_path, mode="RW"), source=source)
    return msgspec.structs.replace(disk, disk=info, shared=SharedInfo() if shared else None)


def create_operation(volumes: Sequence[Resource], operation_id: str | None = None) -> OfferOperation:
    """CREATE: turn reserved disk of the offer into persistent volumes (see `volume`)."""
    return OfferOperation(type=OfferOperationType.CREATE, create=Create(volumes=list(volumes)),
                          id=OperationID(value=operation_id) if operation_id else None)


def destroy_operation(volumes: Sequence[Resource], operation_id: str | None = None) -> OfferOperation:
    """DESTROY: the volumes (as offered) become reserved disk again; their data is deleted."""
    return OfferOperation(type=OfferOperationType.DESTROY, destroy=Destroy(volumes=list(volumes)),
                          id=OperationID(value=operation_id) if operation_id else None)


class SchedulerCalls:
    """Mixin: typed call methods over `_send(call_type, **payload)`."""

    async def _send(self, call_type: CallType, **payload: Any) -> bytes:
        raise NotImplementedError

    async def accept(
        self,
        offers: OfferRef | Iterable[OfferRef],
        operations: Sequence[OfferOperation],
        filters: Filters | None = None,
        *,
        refuse_seconds: float | None = None,
    ) -> None:
        """Accept offers (all of one agent) with operations applied in order; what the
        operations do not use is declined with `filters` (default 5 s)."""
        await self._send(
            CallType.ACCEPT,
            accept=Accept(
                offer_ids=offer_ids(offers),
                operations=list(operations),
                filters=make_filters(filters, refuse_seconds),
            ),
        )

    async def launch(
        self,
        offers: OfferRef | Iterable[OfferRef],
        tasks: Sequence[TaskInfo],
        filters: Filters | None = None,
        *,
        refuse_seconds: float | None = None,
    ) -> None:
        """ACCEPT with one LAUNCH of `tasks` (command or custom-executor tasks)."""
        await self.accept(offers, [launch_operation(tasks)], filters, refuse_seconds=refuse_seconds)

    async def launch_group(
        self,
        offers: OfferRef | Iterable[OfferRef],
        executor: ExecutorInfo,
        tasks: Sequence[TaskInfo],
        filters: Filters | None = None,
        *,
        refuse_seconds: float | None = None,
    ) -> None:
        """ACCEPT with one LAUNCH_GROUP: `tasks` start together under `executor`."""
        op = OfferOperation(
            type=OfferOperationType.LAUNCH_GROUP,
            launch_group=LaunchGroup(
                executor=executor, task_group=TaskGroupInfo(tasks=list(tasks))
            ),
        )
        await self.accept(offers, [op], filters, refuse_seconds=refuse_seconds)

    async def decline(
        self,
        offers: OfferRef | Iterable[OfferRef],
        filters: Filters | None = None,
        *,
        refuse_seconds: float | None = None,
    ) -> None:
        """Return offers; the master will not re-offer those resources to this framework for
        `refuse_seconds` (default 5 s)."""
        await self._send(
            CallType.DECLINE,
            decline=Decline(
                offer_ids=offer_ids(offers), filters=make_filters(filters, refuse_seconds)
            ),
        )

    async def accept_inverse_offers(
        self, inverse_offers: OfferRef | Iterable[OfferRef], filters: Filters | None = None
    ) -> None:
        await self._send(
            CallType.ACCEPT_INVERSE_OFFERS,
            accept_inverse_offers=AcceptInverseOffers(
                inverse_offer_ids=offer_ids(inverse_offers), filters=filters
            ),
        )

    async def decline_inverse_offers(
        self, inverse_offers: OfferRef | Iterable[OfferRef], filters: Filters | None = None
    ) -> None:
        await self._send(
            CallType.DECLINE_INVERSE_OFFERS,
            decline_inverse_offers=DeclineInverseOffers(
                inverse_offer_ids=offer_ids(inverse_offers), filters=filters
            ),
        )

    async def revive(self, roles: Iterable[str] = ()) -> None:
        """Clear decline filters and un-suppress `roles` (all subscribed roles if empty)."""
        await self._send(CallType.REVIVE, revive=Revive(roles=list(roles)))

    async def suppress(self, roles: Iterable[str] = ()) -> None:
        """Stop receiving offers for `roles` (all if empty) until `revive`."""
        await self._send(CallType.SUPPRESS, suppress=Suppress(roles=list(roles)))

    async def kill(
        self,
        task: TaskRef,
        agent: AgentRef | None = None,
        *,
        grace_period: float | None = None,
    ) -> None:
        """Kill a task; `grace_period` seconds between SIGTERM and SIGKILL (agent default 3 s)."""
        policy = None
        if grace_period is not None:
            policy = KillPolicy(grace_period=DurationInfo.from_seconds(grace_period))
        await self._send(
            CallType.KILL,
            kill=Kill(
                task_id=task_id(task),
                agent_id=None if agent is None else agent_id(agent),
                kill_policy=policy,
            ),
        )

    async def shutdown(self, executor: ExecutorRef, agent: AgentRef) -> None:
        """Shut down a custom executor (and with it its tasks)."""
        await self._send(
            CallType.SHUTDOWN,
            shutdown=Shutdown(executor_id=executor_id(executor), agent_id=agent_id(agent)),
        )

    async def acknowledge_operation_status(self, status: OperationStatus) -> None:
        if status.uuid is None or status.operation_id is None:
            raise ValueError("only operation updates with a uuid and an id are acknowledged")
        await self._send(
            CallType.ACKNOWLEDGE_OPERATION_STATUS,
            acknowledge_operation_status=AcknowledgeOperationStatus(
                agent_id=status.agent_id,
                resource_provider_id=status.resource_provider_id,
                uuid=status.uuid.value,
                operation_id=status.operation_id,
            ),
        )

    async def reconcile(
        self, tasks: Iterable[TaskStatus | TaskRef | tuple[TaskRef, AgentRef | None]] = ()
    ) -> None:
        """Ask for the latest state of `tasks` (empty: of every task the master knows for this
        framework). Answers arrive as status updates with reason REASON_RECONCILIATION."""
        entries: list[ReconcileTask] = []
        for t in tasks:
            if isinstance(t, TaskStatus):
                entries.append(ReconcileTask(task_id=t.task_id, agent_id=t.agent_id))
            elif isinstance(t, tuple):
                tid, aid = t
                entries.append(
                    ReconcileTask(
                        task_id=task_id(tid), agent_id=None if aid is None else agent_id(aid)
                    )
                )
            else:
                entries.append(ReconcileTask(task_id=task_id(t)))
        await self._send(CallType.RECONCILE, reconcile=Reconcile(tasks=entries))

    async def reconcile_operations(
        self, operations: Iterable[OperationID | tuple[OperationID, AgentRef | None]] = ()
    ) -> None:
        entries: list[ReconcileOperation] = []
        for op in operations:
            if isinstance(op, tuple):
                oid, aid = op
                entries.append(
                    ReconcileOperation(
                        operation_id=oid, agent_id=None if aid is None else agent_id(aid)
                    )
                )
            else:
                entries.append(ReconcileOperation(operation_id=op))
        await self._send(
            CallType.RECONCILE_OPERATIONS,
            reconcile_operations=ReconcileOperations(operations=entries),
        )

    async def message(self, agent: AgentRef, executor: ExecutorRef, data: bytes) -> None:
        """Send bytes to one of this framework's executors (best effort)."""
        await self._send(
            CallType.MESSAGE,
            message=CallMessage(
                agent_id=agent_id(agent), executor_id=executor_id(executor), data=data
            ),
        )

    async def request(self, requests: Sequence[Request]) -> None:
        """Hint the allocator (ignored by the default allocator, as in Mesos)."""
        await self._send(CallType.REQUEST, request=CallRequest(requests=list(requests)))

    async def update_framework(
        self, framework_info: FrameworkInfo, suppressed_roles: Iterable[str] = ()
    ) -> None:
        """Change name, roles, capabilities, failover timeout, … of the running framework."""
        info = framework_info
        if info.id is None:
            info.id = getattr(self, "framework_id", None)
        await self._send(
            CallType.UPDATE_FRAMEWORK,
            update_framework=UpdateFramework(
                framework_info=info, suppressed_roles=list(suppressed_roles)
            ),
        )
        self._framework_updated(info)

    def _framework_updated(self, info: FrameworkInfo) -> None:
        """Hook: the client keeps the new info for re-subscription."""

    async def teardown(self) -> None:
        """Remove the framework: its tasks are killed and its executors shut down."""
        await self._send(CallType.TEARDOWN)
