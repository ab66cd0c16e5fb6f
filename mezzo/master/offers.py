"""Offers: turning allocations into OFFERS events, and the calls that answer them —
ACCEPT (LAUNCH, LAUNCH_GROUP here; RESERVE, UNRESERVE in `mezzo.master.operations`), DECLINE, REVIVE, SUPPRESS — plus offer timeouts (spec §5.3).

One offer = one agent + one role. Frameworks without RESERVATION_REFINEMENT get the
pre-refinement resource format (`"role": "*"`); only MULTI_ROLE frameworks see
`allocation_info`. An ACCEPT's unused remainder is declined with the call's filters.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from mezzo.api.codec import encode
from mezzo.api.common import (
    URL,
    Address,
    AgentID,
    AllocationInfo,
    ExecutorID,
    ExecutorInfo,
    ExecutorType,
    FrameworkID,
    LaunchGroup,
    Offer,
    OfferID,
    OfferOperation,
    OfferOperationType,
    Parameter,
    Reason,
    Resource,
    TaskInfo,
    TaskState,
    refuse_seconds,
)
from mezzo.api.internal import AgentEvent, AgentEventType, AgentRunTask, AgentRunTaskGroup
from mezzo.api.scheduler import Accept, Decline, Event, EventType, Offers
from mezzo.core.errors import ValidationError
from mezzo.master.base import MasterBase
from mezzo.master.container_validation import (
    container_problem,
    group_container_problem,
    task_container_problem,
)
from mezzo.master.launch_validation import (
    executor_problem,
    group_executor_problem,
    group_task_problem,
    launch_executor_problem,
    task_problem,
)
from mezzo.master.records import (
    AgentRecord,
    ExecutorRecord,
    FrameworkRecord,
    OfferRecord,
    TaskRecord,
)
from mezzo.resources import EMPTY, Resources, volumes
from mezzo.resources.memo import WireMemo
from mezzo.resources.wire import items_from_wire

_LAUNCHES = (OfferOperationType.LAUNCH, OfferOperationType.LAUNCH_GROUP)
# Operations on agent default resources (`mezzo.master.operations`); the volume operations
# join when they are built.
_OPERATIONS = frozenset({
    OfferOperationType.RESERVE, OfferOperationType.UNRESERVE, OfferOperationType.CREATE,
    OfferOperationType.DESTROY, OfferOperationType.GROW_VOLUME, OfferOperationType.SHRINK_VOLUME,
})
_BAD_ID = re.compile(r"[/\\\x00-\x1f\x7f]")


# A task's resources (allocated to its role) by (wire encoding, role).
_TASK_RESOURCES: WireMemo[Resources] = WireMemo()


def _parse_task_resources(task: TaskInfo, role: str) -> Resources:
    resources = Resources.from_wire(task.resources)
    volume_problem(task.resources, resources, "Task")
    for r_role in resources.allocations():
        if r_role != role:
            raise ValidationError(f"Task resources are allocated to role '{r_role}', not '{role}'")
    return resources.unallocate().allocate(role)


def id_problem(value: str, what: str) -> str | None:
    """Framework-chosen ids: non-empty, <= 255 chars, not . or .., no / \\ or controls."""
    if not value:
        return f"{what} must not be empty"
    if len(value) > 255:
        return f"{what} is longer than 255 characters"
    if value in (".", ".."):
        return f"{what} must not be '.' or '..'"
    if _BAD_ID.search(value):
        return f"{what} '{value}' contains '/', '\\' or control characters"
    return None


def volume_problem(wire: list[Resource], resources: Resources, who: str) -> None:
    """Mesos's checks of the disks a task or executor uses (ValidationError, its words)."""
    if all(r.disk is None for r in wire):
        return
    problem = volumes.disk_info_problem(resources)
    if problem is not None:
        raise ValidationError(f"{who} uses invalid resources: Invalid DiskInfo: {problem}")
    problem = volumes.unique_persistence_id_problem(items_from_wire(wire))
    if problem is not None:
        raise ValidationError(f"{who} uses duplicate persistence ID: {problem}")


# The wire resources of recent offer shapes: agents alike, or left alike by the tasks on
# them, are offered the same resources, whose records are made once (a fresh framework at
# 9,000 free agents gets 9,000 offers in one allocation run, and making each offer's records
# was a third of that run). Offers share the list of records (read-only: views and events
# encode them), as they share the empty lists of executor ids and URL query: every list an
# outstanding offer held of its own was one more object for each full garbage collection to
# walk (issue 12: thousands of outstanding offers at 9,000 agents).
_OFFER_WIRE: dict[tuple[object, bool, bool], list[Resource]] = {}
_MAX_OFFER_WIRE = 4096


def _offer_wire(resources: Resources, refinement: bool, multi: bool) -> list[Resource]:
    shape = resources.shape()
    if shape is None:
        return resources.to_wire(refinement=refinement, with_allocation=multi)
    key = (shape, refinement, multi)
    wire = _OFFER_WIRE.get(key)
    if wire is None:
        if len(_OFFER_WIRE) >= _MAX_OFFER_WIRE:
            _OFFER_WIRE.clear()
        wire = _OFFER_WIRE[key] = resources.to_wire(refinement=refinement, with_allocation=multi)
    return wire


_NO_EXECUTOR_IDS: list[ExecutorID] = []  # shared by offers (never changed)
_NO_QUERY: list[Parameter] = []  # likewise


class OfferCalls(MasterBase):
    if TYPE_CHECKING:
        # `mezzo.master.operations.OperationCalls`; `Master` composes them.
        def accept_operation(self, framework: FrameworkRecord, agent: AgentRecord, role: str,
                             available: Resources, operation: OfferOperation) -> Resources: ...
        def drop_operation(self, framework: FrameworkRecord, operation: OfferOperation,
                           message: str) -> None: ...

    # ------------------------------------------------------------------ allocation

    def allocate(self) -> int:
        """Run one allocation cycle and send the resulting offers; returns how many.

        A run at or after `next_batch_allocation` is the batch run (the next one is due one
        interval later); any other run is event-triggered and leaves the batch schedule alone.
        Either run covers every pending trigger."""
        now = self.now()
        if now >= self.next_batch_allocation:
            self.batch_allocation_runs += 1
            self.next_batch_allocation = now + self.options.allocation_interval
        else:
            self.event_allocation_runs += 1
        self.allocation_pending = False
        self.allocation_due = None
        self.last_allocation = now
        per_framework: dict[str, list[Offer]] = {}
        count = 0
        started = time.perf_counter()  # measures CPU time only; decides nothing
        allocations = self.allocator.allocate(now)
        self.allocation_timer.observe(time.perf_counter() - started)
        for allocation in allocations:
            framework = self.frameworks.get(allocation.framework_id)
            agent = self.agents.get(allocation.agent_id)
            tagged = allocation.resources.allocate(allocation.role)
            if framework is None or not framework.connected or agent is None:
                # Raced with a disconnection: hand the resources straight back.
                self.allocator.recover_resources(
                    allocation.framework_id, allocation.agent_id, tagged, None, now
                )
                continue
            offer = self._make_offer(framework, agent, allocation.role, tagged, now)
            framework.counters["offers/sent"] += 1
            per_framework.setdefault(framework.id, []).append(offer.wire)
            count += 1
        for framework_id, offers in per_framework.items():
            self.send(
                self.frameworks[framework_id],
                Event(type=EventType.OFFERS, offers=Offers(offers=offers)),
            )
        return count

    def _make_offer(
        self,
        framework: FrameworkRecord,
        agent: AgentRecord,
        role: str,
        resources: Resources,
        now: float,
    ) -> OfferRecord:
        offer_id = self.ids.offer_id()
        multi = framework.multi_role
        executors = framework.executors.get(agent.id)
        wire = Offer(
            id=OfferID(value=offer_id),
            framework_id=framework.info.id or FrameworkID(value=framework.id),
            agent_id=agent.info.id or AgentID(value=agent.id),
            hostname=agent.hostname,
            url=URL(
                scheme=self.options.agent_scheme,
                address=Address(hostname=agent.hostname, port=agent.info.port or 5051),
                path="/slave(1)",
                query=_NO_QUERY,
            ),
            domain=agent.info.domain,
            resources=_offer_wire(resources, framework.refinement, multi),
            attributes=agent.info.attributes,
            executor_ids=[ExecutorID(value=e) for e in executors] if executors else _NO_EXECUTOR_IDS,
            allocation_info=AllocationInfo(role=role) if multi else None,
        )
        timeout = self.options.offer_timeout
        record = OfferRecord(
            id=offer_id,
            framework_id=framework.id,
            agent_id=agent.id,
            role=role,
            resources=resources,
            wire=wire,
            expires_at=None if timeout is None else now + timeout,
            created_at=now,
        )
        self.offers[offer_id] = record
        framework.offers[offer_id] = None
        agent.offers[offer_id] = None
        return record

    def expire_offers(self, now: float) -> None:
        if self.options.offer_timeout is None:
            return
        expired = [o.id for o in self.offers.values() if o.expires_at is not None and now >= o.expires_at]
        self.rescind_offers(expired)

    # ------------------------------------------------------------------ DECLINE / REVIVE / SUPPRESS

    def decline(self, framework: FrameworkRecord, call: Decline) -> None:
        """Declined resources go back without triggering an allocation run: the decliner is
        filtered at least until the next batch run; others get them at the next run of any
        kind (`refusal_seconds`)."""
        self.counters.inc("messages_decline_offers")
        refuse = self.refusal_seconds(refuse_seconds(call.filters), declined=True)
        for offer_id in call.offer_ids:
            offer = self.offers.get(offer_id.value)
            if offer is not None and offer.framework_id == framework.id:
                framework.counters["offers/declined"] += 1
                self.remove_offer(offer, rescind=False, refuse=refuse, reallocate=False)

    def revive(self, framework: FrameworkRecord, roles: list[str]) -> None:
        self.counters.inc("messages_revive_offers")
        self.allocator.revive(framework.id, roles or None)
        framework.suppressed_roles -= set(roles or framework.roles)
        self.request_allocation()

    def suppress(self, framework: FrameworkRecord, roles: list[str]) -> None:
        self.counters.inc("messages_suppress_offers")
        self.allocator.suppress(framework.id, roles or None)
        framework.suppressed_roles |= set(roles or framework.roles)

    # ------------------------------------------------------------------ ACCEPT

    def check_accept(self, call: Accept) -> None:
        """Request-level refusal (400) before anything changes: operations not built yet."""
        for op in call.operations:
            if op.type not in _LAUNCHES and op.type not in _OPERATIONS:
                raise ValidationError(
                    f"Offer operation {op.type} is not supported by this master yet "
                    "(only LAUNCH, LAUNCH_GROUP, RESERVE, UNRESERVE, CREATE, DESTROY, "
                    "GROW_VOLUME and SHRINK_VOLUME)"
                )
            payload = str(op.type).lower()
            if op.type in _OPERATIONS and getattr(op, payload) is None:
                raise ValidationError(f"Expecting '{payload}' to be present")
            if op.type == OfferOperationType.LAUNCH and op.launch is None:
                raise ValidationError("Expecting 'launch' to be present")
            if op.type == OfferOperationType.LAUNCH_GROUP and op.launch_group is None:
                raise ValidationError("Expecting 'launch_group' to be present")

    def accept(self, framework: FrameworkRecord, call: Accept) -> None:
        self.counters.inc("messages_launch_tasks")
        offers, problem = self._take_offers(framework, call)
        if problem is not None:
            self._refuse_launches(framework, call, problem)
            for offer in offers:
                self.remove_offer(offer, rescind=False)
            return
        now = self.now()
        for offer in offers:
            framework.counters["offers/accepted"] += 1
            self.offer_accept_timer.observe(now - offer.created_at)
        agent = self.agents[offers[0].agent_id]
        role = offers[0].role
        available = offers[0].resources
        for offer in offers[1:]:
            available = available + offer.resources
        for offer in offers:
            self.offers.pop(offer.id, None)
            framework.offers.pop(offer.id, None)
            agent.offers.pop(offer.id, None)
        # Shared volumes offered: every task of the call may use them, however many copies
        # were offered (Mesos's `remainingSharedResources`); CREATE/DESTROY change them.
        shared = available.shared()
        for op in call.operations:
            if op.type == OfferOperationType.LAUNCH:
                assert op.launch is not None
                if op.id is not None:
                    for task in op.launch.task_infos:
                        self._task_error(framework, task, Reason.REASON_TASK_INVALID,
                                         "The `id` field cannot be set on LAUNCH operations")
                    continue
                for task in op.launch.task_infos:
                    available = self._launch(framework, agent, role, available, task, shared)
            elif op.type == OfferOperationType.LAUNCH_GROUP and op.id is not None:
                assert op.launch_group is not None
                for task in op.launch_group.task_group.tasks:
                    self._task_error(framework, task, Reason.REASON_TASK_GROUP_INVALID,
                                     "The `id` field cannot be set on LAUNCH_GROUP operations")
            elif op.type in _OPERATIONS:
                available = self.accept_operation(framework, agent, role, available, op)
                shared = available.shared()
            elif op.type == OfferOperationType.LAUNCH_GROUP:
                assert op.launch_group is not None
                available = self._launch_group(
                    framework, agent, role, available, op.launch_group, shared)
        if available:
            refuse = self.refusal_seconds(refuse_seconds(call.filters), declined=False)
            self.allocator.recover_resources(framework.id, agent.id, available, refuse, self.now())
        self.request_allocation()

    def _take_offers(
        self, framework: FrameworkRecord, call: Accept
    ) -> tuple[list[OfferRecord], str | None]:
        """The valid offers named by the call, and the first problem found (if any)."""
        found: list[OfferRecord] = []
        problem: str | None = None
        seen: set[str] = set()
        if not call.offer_ids:
            return found, "No offers specified"
        for offer_id in call.offer_ids:
            value = offer_id.value
            if value in seen:
                problem = problem or f"Duplicate offer {value} in ACCEPT"
                continue
            seen.add(value)
            offer = self.offers.get(value)
            if offer is None:
                problem = problem or f"Offer {value} is no longer valid"
                continue
            if offer.framework_id != framework.id:
                problem = problem or f"Offer {value} has invalid framework"
                continue
            if found and (offer.agent_id != found[0].agent_id or offer.role != found[0].role):
                problem = problem or "Aggregated offers must belong to one agent and one role"
            found.append(offer)
        return found, problem

    def _refuse_launches(self, framework: FrameworkRecord, call: Accept, problem: str) -> None:
        state = self.lost_state(framework, TaskState.TASK_DROPPED)
        for op in call.operations:
            if op.type not in _LAUNCHES:
                self.drop_operation(framework, op, f"Operation attempted with invalid offers: {problem}")
                continue
            tasks: list[TaskInfo] = []
            if op.type == OfferOperationType.LAUNCH and op.launch is not None:
                tasks = op.launch.task_infos
            elif op.type == OfferOperationType.LAUNCH_GROUP and op.launch_group is not None:
                tasks = op.launch_group.task_group.tasks
            for task in tasks:
                self.counters.inc("invalid_offers_tasks")
                self.send_update(
                    framework,
                    self.master_status(
                        framework, task.task_id.value, state, Reason.REASON_INVALID_OFFERS,
                        f"Task launched with invalid offers: {problem}",
                        agent_id=task.agent_id.value,
                    ),
                )

    def _task_error(
        self, framework: FrameworkRecord, task: TaskInfo, reason: Reason, message: str
    ) -> None:
        self.counters.inc("tasks_error")
        self.send_update(
            framework,
            self.master_status(
                framework, task.task_id.value, TaskState.TASK_ERROR, reason, message,
                agent_id=task.agent_id.value,
            ),
        )

    def _task_resources(self, task: TaskInfo, role: str) -> Resources:
        if not task.resources:
            raise ValidationError("Task uses no resources")
        # Memoized by the wire encoding and role: tasks come in few shapes (resources/memo.py).
        key = (encode(task.resources), role)
        return _TASK_RESOURCES.get(key, lambda: _parse_task_resources(task, role))

    def _validate_task(
        self, framework: FrameworkRecord, agent: AgentRecord, task: TaskInfo
    ) -> str | None:
        problem = id_problem(task.task_id.value, "Task ID")
        if problem:
            return problem
        if task.task_id.value in framework.tasks or task.task_id.value in framework.unreachable_tasks:
            return f"Task has duplicate ID: {task.task_id.value}"
        if task.agent_id.value != agent.id:
            return f"Task uses invalid agent: {task.agent_id.value}"
        if (task.executor is None) == (task.command is None):
            return "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
        return task_problem(task) or task_container_problem(task)

    def _executor_charge(
        self,
        framework: FrameworkRecord,
        agent: AgentRecord,
        executor: ExecutorInfo,
        role: str,
    ) -> tuple[Resources | None, str | None]:
        """Resources a new executor needs (None if it already runs), or a problem."""
        problem = id_problem(executor.executor_id.value, "Executor ID")
        if problem:
            return None, problem
        if executor.framework_id is None:
            executor.framework_id = FrameworkID(value=framework.id)
        elif executor.framework_id.value != framework.id:
            return None, "ExecutorInfo has an invalid FrameworkID"
        running = framework.executors.get(agent.id, {}).get(executor.executor_id.value)
        if running is not None:
            # The kept JSON first (the common case, the same info sent again), decoding the
            # kept info only when the bytes differ (e.g. the same fields in another order).
            if running.info_json != encode(executor) and running.info != executor:
                return None, (
                    f"ExecutorInfo is not compatible with the running executor "
                    f"'{executor.executor_id.value}'"
                )
            return None, None
        if not executor.resources:
            return Resources(), None
        resources = Resources.from_wire(executor.resources)
        volume_problem(executor.resources, resources, "Executor")
        return resources.unallocate().allocate(role), None

    def _launch(
        self,
        framework: FrameworkRecord,
        agent: AgentRecord,
        role: str,
        available: Resources,
        task: TaskInfo,
        shared: Resources = EMPTY,
    ) -> Resources:
        refusal = self._run_task_refusal(framework, task)
        if refusal is not None:
            self._task_error(framework, task, Reason.REASON_TASK_UNAUTHORIZED, refusal)
            return available
        problem = self._validate_task(framework, agent, task)
        executor_resources: Resources | None = None
        try:
            resources = self._task_resources(task, role)
            if problem is None and task.executor is not None:
                if task.executor.type is None:
                    task.executor.type = ExecutorType.CUSTOM if task.executor.command else None
                problem = launch_executor_problem(task.executor)
                if problem is None:
                    executor_resources, problem = self._executor_charge(
                        framework, agent, task.executor, role
                    )
        except ValidationError as exc:
            problem = problem or str(exc)
        if problem is not None:
            self._task_error(framework, task, Reason.REASON_TASK_INVALID, problem)
            return available
        needed = resources + executor_resources if executor_resources else resources
        pool = available.non_shared() + shared if shared else available
        if not pool.contains(needed):
            self._task_error(
                framework, task, Reason.REASON_TASK_INVALID,
                f"Task uses more resources {needed} than available {pool}",
            )
            return available
        available = self._consume(framework, agent, available, needed)
        if task.executor is not None and executor_resources is not None:
            framework.executors.setdefault(agent.id, {})[task.executor.executor_id.value] = (
                ExecutorRecord.of(task.executor, executor_resources)
            )
        self._record_task(framework, agent, role, task, resources)
        self.outbox.send_agent(
            agent.stream,
            AgentEvent(
                type=AgentEventType.RUN_TASK,
                run_task=AgentRunTask(framework_info=framework.info, task=task, executor_info=task.executor),
            ),
        )
        return available

    def _consume(
        self, framework: FrameworkRecord, agent: AgentRecord, available: Resources,
        needed: Resources,
    ) -> Resources:
        """What is left after a launch takes `needed`. A shared volume used by more tasks
        than copies are left is booked once more per extra task (Mesos's additional shared
        resources), so that each task's end gives back exactly one copy."""
        additional = needed.shared() - available.shared()
        if additional:
            self.allocator.update_allocation(framework.id, agent.id, EMPTY, additional)
        return available - needed

    def _run_task_refusal(self, framework: FrameworkRecord, task: TaskInfo) -> str | None:
        """run_tasks (Mesos's RUN_TASK): may the framework's principal launch `task` under
        its user (the command's, else the executor's, else the framework's)? The message is
        Mesos's."""
        command_user = task.command.user if task.command is not None else None
        executor_command = task.executor.command if task.executor is not None else None
        user = command_user or (executor_command.user if executor_command else None) or framework.info.user
        if self.authorize("run_tasks", framework.info.principal or None, user or None):
            return None
        fid = framework.info.id.value if framework.info.id is not None else ""
        return f"Not authorized to launch task {task.task_id.value} of framework {fid} under user '{user or ''}'"

    def _launch_group(
        self,
        framework: FrameworkRecord,
        agent: AgentRecord,
        role: str,
        available: Resources,
        group: LaunchGroup,
        shared: Resources = EMPTY,
    ) -> Resources:
        """All of the group or none: one invalid task refuses every task (TASK_ERROR,
        REASON_TASK_GROUP_INVALID, the first problem as Mesos words it)."""
        executor: ExecutorInfo = group.executor
        tasks = group.task_group.tasks
        # The master fills an absent framework id (spec §3.7; Mesos does for LAUNCH only and
        # refuses LAUNCH_GROUP with "'ExecutorInfo.framework_id' must be set").
        for info in [executor, *(t.executor for t in tasks if t.executor is not None)]:
            if info.framework_id is None:
                info.framework_id = FrameworkID(value=framework.id)
        for task in tasks:
            # As Mesos: every task names its executor (the operator API and web UI read it).
            if task.executor is None:
                task.executor = executor
        # Authorization first, as Mesos: one task refused refuses the group.
        for task in tasks:
            refusal = self._run_task_refusal(framework, task)
            if refusal is not None:
                unauthorized = (
                    f"Task '{task.task_id.value}' is not authorized to"
                    + refusal.removeprefix("Not authorized to")
                )
                for t in tasks:
                    self._task_error(framework, t, Reason.REASON_TASK_GROUP_UNAUTHORIZED, unauthorized)
                return available
        problem, per_task, executor_resources = self._check_group(
            framework, agent, role, available.non_shared() + shared if shared else available,
            executor, tasks,
        )
        if problem is not None:
            for task in tasks:
                self._task_error(framework, task, Reason.REASON_TASK_GROUP_INVALID, problem)
            return available
        needed = executor_resources or Resources()
        for res in per_task:
            needed = needed + res
        available = self._consume(framework, agent, available, needed)
        if executor_resources is not None:
            framework.executors.setdefault(agent.id, {})[executor.executor_id.value] = (
                ExecutorRecord.of(executor, executor_resources)
            )
        for task, res in zip(tasks, per_task, strict=True):
            self._record_task(framework, agent, role, task, res)
        self.outbox.send_agent(
            agent.stream,
            AgentEvent(
                type=AgentEventType.RUN_TASK_GROUP,
                run_task_group=AgentRunTaskGroup(
                    framework_info=framework.info, executor_info=executor, task_group=group.task_group
                ),
            ),
        )
        return available

    def _check_group(
        self,
        framework: FrameworkRecord,
        agent: AgentRecord,
        role: str,
        available: Resources,
        executor: ExecutorInfo,
        tasks: list[TaskInfo],
    ) -> tuple[str | None, list[Resources], Resources | None]:
        """Mesos's `task::group::validate`: (the first problem, or None; each task's resources;
        the new executor's resources, None if it runs already)."""
        if not tasks:
            return "Task group is empty", [], None
        per_task: list[Resources] = []
        seen: set[str] = set()
        for task in tasks:
            problem = self._group_task_problem(framework, agent, task, seen)
            if problem is None:
                try:
                    per_task.append(self._task_resources(task, role))
                except ValidationError as exc:
                    problem = str(exc)
            if problem is not None:
                return f"Task '{task.task_id.value}' is invalid: {problem}", [], None
            seen.add(task.task_id.value)
        problem = executor_problem(executor)
        fw_id = executor.framework_id
        if problem is None and fw_id is not None and fw_id.value != framework.id:
            problem = (
                f"ExecutorInfo has an invalid FrameworkID (Actual: {fw_id.value} vs Expected: "
                f"{framework.id})"
            )
        executor_resources: Resources | None = None
        try:
            if problem is None:
                executor_resources, problem = self._executor_charge(framework, agent, executor, role)
            problem = problem or group_executor_problem(executor, tasks)
        except ValidationError as exc:
            problem = f"Executor uses invalid resources: {exc}"
        problem = problem or group_container_problem(executor, tasks)
        if problem is not None:
            return problem, [], None
        total = executor_resources or Resources()
        for res in per_task:
            total = total + res
        if not available.contains(total):
            return (
                f"Total resources {total} required by task group and its executor are more "
                f"than available {available}",
                [], None,
            )
        return None, per_task, executor_resources

    def _group_task_problem(
        self, framework: FrameworkRecord, agent: AgentRecord, task: TaskInfo, seen: set[str]
    ) -> str | None:
        task_id = task.task_id.value
        problem = id_problem(task_id, "Task ID")
        if problem:
            return problem
        if task_id in framework.tasks or task_id in seen:
            return f"Task has duplicate ID: {task_id}"
        if task_id in framework.unreachable_tasks:
            return f"Task reuses the ID of an unreachable task: {task_id}"
        if task.agent_id.value != agent.id:
            return f"Task uses invalid agent {task.agent_id.value} while agent {agent.id} is expected"
        problem = group_task_problem(task)
        if problem is None and task.container is not None:
            problem = container_problem(task.container)
            if problem:
                problem = f"Task's `ContainerInfo` is invalid: {problem}"
        return problem

    def _record_task(
        self,
        framework: FrameworkRecord,
        agent: AgentRecord,
        role: str,
        task: TaskInfo,
        resources: Resources,
    ) -> TaskRecord:
        record = TaskRecord.create(
            info=task,
            framework_id=framework.id,
            agent_id=agent.id,
            executor_id=task.executor.executor_id.value if task.executor else None,
            role=role,
            resources=resources,
            user=(task.command.user if task.command and task.command.user else framework.info.user),
        )
        framework.tasks[record.task_id] = record
        agent.tasks[(framework.id, record.task_id)] = record
        self.events.task_added(record)
        return record
