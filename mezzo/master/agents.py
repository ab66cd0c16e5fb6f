"""Agent lifecycle: registration and re-registration (rebuilding frameworks' tasks), health
checks by ping, disconnection, unreachable and gone agents (spec §5.7, mezzo.api.internal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mezzo.api.common import (
    AgentID,
    AgentInfo,
    FrameworkID,
    FrameworkInfo,
    Reason,
    TaskID,
    TaskState,
    is_terminal,
)
from mezzo.api.internal import (
    AgentEvent,
    AgentEventType,
    AgentPing,
    AgentReconcileTasks,
    AgentShutdown,
    AgentShutdownFramework,
    AgentSubscribe,
    AgentSubscribed,
)
from mezzo.api.scheduler import Event, EventType, Failure
from mezzo.core.errors import ValidationError
from mezzo.master.base import MasterBase, log
from mezzo.master.offer_policy import agent_traits
from mezzo.master.records import (
    AgentRecord,
    ExecutorRecord,
    FrameworkRecord,
    RegisteringAgent,
    TaskRecord,
    allocated_from_wire,
    framework_roles,
    resources_from_wire,
    share_agent_info,
)
from mezzo.master.registry import (
    AdmitAgent,
    MarkGone,
    MarkReachable,
    MarkUnreachable,
    RegistryOperation,
)
from mezzo.resources import Resources
from mezzo.resources.conversions import apply_checkpointed


@dataclass(frozen=True, slots=True)
class AgentSubscribeResult:
    agent_id: str | None
    error: str | None = None


class AgentCalls(MasterBase):
    if TYPE_CHECKING:
        # `mezzo.master.operations.OperationCalls`; `Master` composes them.
        def agent_operations_rebuilt(self, agent: AgentRecord, previous: AgentRecord | None,
                                     sub: AgentSubscribe) -> None: ...
        def agent_operations_removed(self, agent: AgentRecord, gone: bool) -> None: ...

    # ------------------------------------------------------------------ SUBSCRIBE

    def agent_subscribe(self, sub: AgentSubscribe, stream: object) -> AgentSubscribeResult:
        """Register or re-register an agent. When the registry must change first (a new
        agent, or one coming back from unreachable, or with changed info), the agent waits in
        `registering` until the shell reports the operation applied (`registry_applied`); only
        then is it registered and hears SUBSCRIBED, so an admission is durable before the
        agent acts on it (Mesos's `slaves.registering`)."""
        info = sub.agent_info
        if not info.hostname:
            return self._refuse_agent(stream, "AgentInfo.hostname must be set")
        try:
            # The static resources with the checkpointed (dynamically reserved, persistent)
            # ones carved out: what a restarted agent or a new master must agree on.
            total = apply_checkpointed(
                resources_from_wire(info.resources), resources_from_wire(sub.checkpointed_resources)
            )
        except ValidationError as exc:  # invalid resources: refuse with the reason
            return self._refuse_agent(stream, f"Invalid agent resources: {exc}")
        operation: AdmitAgent | MarkReachable | None = None
        if info.id is None:
            agent_id = self.ids.agent_id()
            info.id = AgentID(value=agent_id)
            operation = AdmitAgent(info=info)
            self.counters.inc("slave_registrations")
            reregistered = False
            previously_unreachable = False
        else:
            agent_id = info.id.value
            if agent_id in self.gone_agents:
                self.outbox.send_agent(
                    stream,
                    AgentEvent(type=AgentEventType.SHUTDOWN, shutdown=AgentShutdown(message="Agent has been marked gone")),
                )
                self.outbox.close_agent(stream)
                return AgentSubscribeResult(None, "Agent has been marked gone")
            reregistered = True
            previously_unreachable = agent_id in self.unreachable_agents
            self.counters.inc("slave_reregistrations")
            # The agent stays recovered or unreachable until it is registered (after its
            # registry write, `_register_agent`), as Mesos keeps it in `slaves.recovered` /
            # `slaves.unreachable` while it re-registers: meanwhile a reconciliation of its
            # tasks gets no answer, or TASK_UNREACHABLE, never a false TASK_UNKNOWN.
            if agent_id in self.recovered_agents:
                admitted = self.recovered_agents[agent_id]
                if admitted != info:
                    # As Mesos, the registry is written only when the agent's info changed:
                    # after a failover every agent re-registers at once, and with a
                    # ZooKeeper registry an unneeded write per agent would slow that down.
                    operation = MarkReachable(info=info)
            elif previously_unreachable:
                operation = MarkReachable(info=info)
            elif agent_id not in self.agents and agent_id not in self.registering:
                # Unknown to this master and its registry: re-admit it (as Mesos does).
                previously_unreachable = True
                operation = MarkReachable(info=info)
            if agent_id in self.registering:
                # Subscribed again while its registry operation is being written: the newer
                # stream takes the older one's place and waits for the same operation.
                pending = self.registering[agent_id]
                self.outbox.close_agent(pending.stream)
                pending.sub, pending.stream, pending.total = sub, stream, total
                return AgentSubscribeResult(agent_id)
        pending = RegisteringAgent(
            sub=sub, stream=stream, total=total, operation=operation,
            reregistered=reregistered, previously_unreachable=previously_unreachable,
        )
        if operation is None:
            self._register_agent(pending)
        else:
            self.registering[agent_id] = pending
            self.outbox.registry(operation)
        return AgentSubscribeResult(agent_id)

    def registry_applied(self, operation: RegistryOperation) -> None:
        """The shell has applied `operation` to the registry: an agent waiting for it in
        `registering` is registered now."""
        if isinstance(operation, AdmitAgent | MarkReachable) and operation.info.id is not None:
            pending = self.registering.get(operation.info.id.value)
            if pending is not None and pending.operation is operation:
                del self.registering[operation.info.id.value]
                self._register_agent(pending)

    def _register_agent(self, pending: RegisteringAgent) -> None:
        sub, stream, total = pending.sub, pending.stream, pending.total
        reregistered, previously_unreachable = pending.reregistered, pending.previously_unreachable
        info = share_agent_info(sub.agent_info)
        assert info.id is not None
        agent_id = info.id.value
        now = self.now()
        self.recovered_agents.pop(agent_id, None)
        self.unreachable_agents.pop(agent_id, None)
        unreported: list[TaskRecord] = []
        existing = self.agents.get(agent_id)
        if reregistered:
            known = list(existing.tasks.values()) if existing is not None else []
            if previously_unreachable:
                known += [t for f in self.frameworks.values() for t in f.unreachable_tasks.values()
                          if t.agent_id == agent_id]
            unreported = self._unreported_tasks(known, sub)
            if existing is not None:
                self._drop_agent_state(existing, replacing=True)

        agent = AgentRecord(
            id=agent_id,
            info=info,
            total=total,
            registered_time=now,
            stream=stream,
            version=sub.version,
            capabilities=tuple(sub.capabilities),
            pid=sub.pid or f"slave(1)@{info.hostname}:{info.port or 5051}",
            next_ping=now + self.options.agent_ping_timeout,
        )
        if reregistered:
            agent.reregistered_time = now
        agent.checkpointed = resources_from_wire(sub.checkpointed_resources)
        self.agents[agent_id] = agent
        self.agent_operations_rebuilt(agent, existing if reregistered else None, sub)
        self.events.agent_added(agent)
        self.ping_timers.set(agent_id, agent.next_ping)
        self.reregister_timers.discard(agent_id)
        used = self._rebuild_from_agent(agent, sub, previously_unreachable) if reregistered else {}
        self._keep_unreported(agent, unreported, used)
        self.allocator.add_agent(agent_id, total, used, traits=agent_traits(info))
        self.outbox.send_agent(
            stream,
            AgentEvent(
                type=AgentEventType.SUBSCRIBED,
                subscribed=AgentSubscribed(
                    agent_id=AgentID(value=agent_id),
                    master_info=self.info,
                    ping_interval_seconds=self.options.agent_ping_timeout,
                ),
            ),
        )
        self._reconcile_with_agent(agent, unreported)
        if reregistered:
            self._shut_down_completed_frameworks(agent, sub)
        self.request_allocation()
        log.info("agent %s (%s) %s", agent_id, info.hostname, "re-registered" if reregistered else "registered")

    def _refuse_agent(self, stream: object, message: str) -> AgentSubscribeResult:
        from mezzo.api.internal import AgentError

        self.outbox.send_agent(stream, AgentEvent(type=AgentEventType.ERROR, error=AgentError(message=message)))
        self.outbox.close_agent(stream)
        return AgentSubscribeResult(None, message)

    def _rebuild_from_agent(
        self, agent: AgentRecord, sub: AgentSubscribe, came_back: bool
    ) -> dict[str, Resources]:
        """Re-create frameworks, executors and tasks the agent reports; returns what each
        framework uses there (for the allocator)."""
        now = self.now()
        infos = {f.id.value: f for f in sub.frameworks if f.id is not None}
        used: dict[str, Resources] = {}
        for executor in sub.executors:
            framework = self._framework_for(executor.framework_id.value, infos, now)
            if framework is None:
                continue
            _, resources = allocated_from_wire(executor.executor_info.resources,
                                               framework.roles[0] if framework.roles else "*",
                                               reported_role=False)
            framework.executors.setdefault(agent.id, {})[executor.executor_info.executor_id.value] = (
                ExecutorRecord.of(executor.executor_info, resources)
            )
            if resources:  # a command executor holds none of its own
                held = used.get(framework.id)
                used[framework.id] = resources if held is None else held + resources
        for reported in sub.tasks:
            framework = self._framework_for(reported.framework_id.value, infos, now)
            if framework is None:
                continue
            task_id = reported.task_id.value
            task = framework.tasks.get(task_id) or framework.unreachable_tasks.pop(task_id, None)
            role, resources = allocated_from_wire(
                reported.resources, framework.roles[0] if framework.roles else "*")
            added = task is None
            previous_state = None if task is None else task.state
            if task is None:
                from mezzo.api.common import TaskInfo

                task = TaskRecord.create(
                    info=TaskInfo(
                        name=reported.name, task_id=reported.task_id,
                        agent_id=AgentID(value=agent.id), resources=reported.resources,
                    ),
                    framework_id=framework.id,
                    agent_id=agent.id,
                    executor_id=reported.executor_id.value if reported.executor_id else None,
                    role=role,
                    resources=resources,
                    user=framework.info.user,
                )
            task.agent_id = agent.id
            task.state = reported.state
            task.unreachable_time = None
            if reported.statuses:
                task.statuses = list(reported.statuses)
            task.status_update_state = reported.status_update_state
            task.status_update_uuid = reported.status_update_uuid
            task.recovered = is_terminal(reported.state)
            framework.tasks[task_id] = task
            agent.tasks[(framework.id, task_id)] = task
            if added:
                self.events.task_added(task)
            elif previous_state != task.state:
                self.events.task_updated(task)
            if not task.recovered:
                held = used.get(framework.id)
                used[framework.id] = resources if held is None else held + resources
            if came_back:
                self.send_update(
                    framework,
                    self.master_status(
                        framework, task_id, task.state, Reason.REASON_AGENT_REREGISTERED,
                        "Unreachable agent re-reregistered",
                        agent_id=agent.id, executor_id=task.executor_id,
                    ),
                )
        return used

    # ------------------------------------------------------------------ tasks the agent omits

    def _unreported_tasks(self, known: list[TaskRecord], sub: AgentSubscribe) -> list[TaskRecord]:
        """Tasks this master knows on the agent that its re-registration does not report.

        Their LAUNCH may have been lost (sent on a stream that broke while the agent was
        re-registering), or the agent forgot them after their terminal update was
        acknowledged. The second kind is completed here (the framework has its terminal
        update); the first is returned, to be reconciled through the agent."""
        reported = {(t.framework_id.value, t.task_id.value) for t in sub.tasks}
        unreported: list[TaskRecord] = []
        for task in known:
            if (task.framework_id, task.task_id) in reported or task.framework_id not in self.frameworks:
                continue
            if task.status_update_state is not None and is_terminal(task.status_update_state):
                self.complete_task(task)
            else:
                unreported.append(task)
        return unreported

    def _keep_unreported(
        self, agent: AgentRecord, tasks: list[TaskRecord], used: dict[str, Resources]
    ) -> None:
        """Keep the unreported tasks on the re-registered agent until it answers for them;
        those still holding resources keep holding them (the answer releases them)."""
        for task in tasks:
            framework = self.frameworks[task.framework_id]
            if framework.unreachable_tasks.pop(task.task_id, None) is not None:
                task.unreachable_time = None
            framework.tasks[task.task_id] = task
            agent.tasks[(task.framework_id, task.task_id)] = task
            if not task.recovered:
                used[task.framework_id] = used.get(task.framework_id, Resources()) + task.resources

    def _reconcile_with_agent(self, agent: AgentRecord, tasks: list[TaskRecord]) -> None:
        """Ask the agent about the tasks it did not report, as Mesos's reconcileKnownSlave:
        the agent answers each one it does not know with a reliable terminal update
        (TASK_DROPPED for PARTITION_AWARE frameworks, else TASK_LOST; REASON_RECONCILIATION),
        which reaches the framework on its stream, and is retried until acknowledged. A
        task the agent does know (its launch raced the re-registration) gets no answer and
        carries on."""
        per_framework: dict[str, list[TaskID]] = {}
        for task in tasks:
            per_framework.setdefault(task.framework_id, []).append(task.info.task_id)
        for framework_id, task_ids in per_framework.items():
            log.warning("agent %s did not report %d task(s) of framework %s: reconciling",
                        agent.id, len(task_ids), framework_id)
            self.outbox.send_agent(
                agent.stream,
                AgentEvent(
                    type=AgentEventType.RECONCILE_TASKS,
                    reconcile_tasks=AgentReconcileTasks(
                        framework_id=FrameworkID(value=framework_id), task_ids=task_ids,
                        framework=self.frameworks[framework_id].info,
                    ),
                ),
            )

    def _shut_down_completed_frameworks(self, agent: AgentRecord, sub: AgentSubscribe) -> None:
        """A framework removed while the agent was away still runs there: shut it down
        (as Mesos does on re-registration), so that nothing runs for a removed framework."""
        reported = {f.id.value for f in sub.frameworks if f.id is not None}
        reported |= {t.framework_id.value for t in sub.tasks}
        reported |= {e.framework_id.value for e in sub.executors}
        for framework_id in sorted(reported & self.completed_frameworks.keys()):
            log.info("agent %s runs removed framework %s: shutting it down", agent.id, framework_id)
            self.outbox.send_agent(
                agent.stream,
                AgentEvent(
                    type=AgentEventType.SHUTDOWN_FRAMEWORK,
                    shutdown_framework=AgentShutdownFramework(framework_id=FrameworkID(value=framework_id)),
                ),
            )

    def _framework_for(
        self, framework_id: str, infos: dict[str, FrameworkInfo], now: float
    ) -> FrameworkRecord | None:
        framework = self.frameworks.get(framework_id)
        if framework is not None:
            return framework
        if framework_id in self.completed_frameworks:
            return None
        info = infos.get(framework_id)
        if info is None:
            return None
        # A framework this master has not seen (e.g. after a master failover): recovered,
        # disconnected, until its scheduler re-subscribes.
        framework = FrameworkRecord(
            id=framework_id, info=info, roles=framework_roles(info), registered_time=now,
            recovered=True,
        )
        self.frameworks[framework_id] = framework
        self.allocator.add_framework(framework_id, framework.roles, active=False, now=now)
        self.events.framework_added(framework)
        return framework

    # ------------------------------------------------------------------ health

    def pong(self, agent: AgentRecord) -> None:
        agent.pong_pending = False
        agent.missed_pings = 0

    def ping_agents(self, now: float) -> None:
        timeout = self.options.agent_ping_timeout
        for agent_id in self.ping_timers.pop_due(now):
            agent = self.agents.get(agent_id)
            if agent is None or not agent.connected:
                continue
            if now < agent.next_ping:  # not due after all: keep its timer
                self.ping_timers.set(agent_id, agent.next_ping)
                continue
            if agent.pong_pending:
                agent.missed_pings += 1
                if agent.missed_pings >= self.options.max_agent_ping_timeouts:
                    log.warning("agent %s missed %d pings: unreachable", agent.id, agent.missed_pings)
                    self.mark_unreachable(agent)
                    continue
            agent.ping_id += 1
            agent.pong_pending = True
            agent.next_ping = now + timeout
            self.ping_timers.set(agent_id, agent.next_ping)
            self.outbox.send_agent(
                agent.stream, AgentEvent(type=AgentEventType.PING, ping=AgentPing(ping_id=agent.ping_id))
            )

    def expire_reregistrations(self, now: float) -> None:
        for agent_id in self.reregister_timers.pop_due(now):
            agent = self.agents.get(agent_id)
            if agent is None or agent.connected or agent.reregister_deadline is None:
                continue
            if now < agent.reregister_deadline:
                self.reregister_timers.set(agent_id, agent.reregister_deadline)
                continue
            self.mark_unreachable(agent)
        if self.recovery_deadline is not None and now >= self.recovery_deadline:
            self.recovery_deadline = None
            for agent_id, info in list(self.recovered_agents.items()):
                if agent_id in self.registering:
                    continue  # back in time; its registry write is under way
                del self.recovered_agents[agent_id]
                assert isinstance(info, AgentInfo)
                self.unreachable_agents[agent_id] = (info, now)
                self.outbox.registry(MarkUnreachable(info=info, time=now))
                self.counters.inc("slave_removals")
                # This master never learned the agent's tasks: as Mesos (sendSlaveLost), every
                # framework hears that the agent is lost, and reconciles to learn the rest.
                for framework in self.frameworks.values():
                    self.send(framework, Event(type=EventType.FAILURE,
                                               failure=Failure(agent_id=AgentID(value=agent_id))))

    # ------------------------------------------------------------------ disconnection / loss

    def agent_disconnected(self, agent_id: str, stream: object) -> None:
        pending = self.registering.get(agent_id)
        if pending is not None and pending.stream is stream:
            # Gone before its registration was written: it is admitted once written (and, as
            # any admitted agent that does not come back, later marked unreachable).
            del self.registering[agent_id]
            return
        agent = self.agents.get(agent_id)
        if agent is None or agent.stream is not stream:
            return
        now = self.now()
        agent.connected = False
        agent.active = False
        agent.stream = None
        agent.reregister_deadline = now + self.options.agent_reregister_timeout
        self.ping_timers.discard(agent.id)
        self.reregister_timers.set(agent.id, agent.reregister_deadline)
        self.allocator.deactivate_agent(agent.id)
        self.rescind_offers(agent.offers)
        for (framework_id, _), task in list(agent.tasks.items()):
            framework = self.frameworks.get(framework_id)
            if framework is None or framework.checkpoint or task.recovered:
                continue
            self.send_update(
                framework,
                self.master_status(
                    framework, task.task_id, TaskState.TASK_LOST, Reason.REASON_AGENT_DISCONNECTED,
                    "Agent disconnected", agent_id=agent.id, executor_id=task.executor_id,
                ),
            )
            self.update_task_state(task, TaskState.TASK_LOST)
            self.complete_task(task)
        log.info("agent %s disconnected", agent.id)

    def mark_unreachable(self, agent: AgentRecord) -> None:
        now = self.now()
        if agent.stream is not None:
            # The agent may only be partitioned: ending its stream makes it re-register as
            # soon as it can reach us again (its tasks then come back, spec §5.7).
            self.outbox.close_agent(agent.stream)
        self.outbox.registry(MarkUnreachable(info=agent.info, time=now))
        self.unreachable_agents[agent.id] = (agent.info, now)
        self.counters.inc("slave_removals")
        self._remove_agent(agent, pa_state=TaskState.TASK_UNREACHABLE,
                           reason=Reason.REASON_AGENT_REMOVED, message="Agent is unreachable",
                           unreachable_time=now)

    def mark_gone(self, agent_id: str) -> bool:
        """Operator MARK_AGENT_GONE; False if the agent is unknown."""
        now = self.now()
        agent = self.agents.get(agent_id)
        if agent is None and agent_id not in self.unreachable_agents and agent_id not in self.recovered_agents:
            return agent_id in self.gone_agents
        self.outbox.registry(MarkGone(agent_id=agent_id, time=now))
        self.gone_agents[agent_id] = now
        self.unreachable_agents.pop(agent_id, None)
        self.recovered_agents.pop(agent_id, None)
        for framework in self.frameworks.values():
            for task in [t for t in framework.unreachable_tasks.values() if t.agent_id == agent_id]:
                self._end_task(framework, task, TaskState.TASK_GONE_BY_OPERATOR,
                               Reason.REASON_AGENT_REMOVED_BY_OPERATOR, "Agent marked gone", None)
        if agent is not None:
            if agent.connected:
                self.outbox.send_agent(agent.stream, AgentEvent(type=AgentEventType.SHUTDOWN,
                                                                shutdown=AgentShutdown(message="Agent marked gone")))
                self.outbox.close_agent(agent.stream)
            self._remove_agent(agent, pa_state=TaskState.TASK_GONE_BY_OPERATOR,
                               reason=Reason.REASON_AGENT_REMOVED_BY_OPERATOR,
                               message="Agent marked gone by operator", unreachable_time=None)
        return True

    def _remove_agent(
        self, agent: AgentRecord, *, pa_state: TaskState, reason: Reason, message: str,
        unreachable_time: float | None,
    ) -> None:
        self._drop_agent_state(agent, replacing=False)
        self.agent_operations_removed(agent, gone=pa_state == TaskState.TASK_GONE_BY_OPERATOR)
        for (framework_id, _), task in list(agent.tasks.items()):
            framework = self.frameworks.get(framework_id)
            if framework is None:
                continue
            self._end_task(framework, task, pa_state, reason, message, unreachable_time)
        for framework in self.frameworks.values():
            framework.executors.pop(agent.id, None)
            self.send(framework, Event(type=EventType.FAILURE, failure=Failure(agent_id=AgentID(value=agent.id))))
        del self.agents[agent.id]
        self.events.agent_removed(agent.id)
        self.ping_timers.discard(agent.id)
        self.reregister_timers.discard(agent.id)
        self.request_allocation()

    def _end_task(
        self, framework: FrameworkRecord, task: TaskRecord, pa_state: TaskState, reason: Reason,
        message: str, unreachable_time: float | None,
    ) -> None:
        state = self.lost_state(framework, pa_state)
        if task.status_update_state is not None and is_terminal(task.status_update_state):
            # The framework already has this task's terminal update.
            self.complete_task(task)
            return
        status = self.master_status(
            framework, task.task_id, state, reason, message, agent_id=task.agent_id,
            executor_id=task.executor_id,
            unreachable_time=unreachable_time if state == TaskState.TASK_UNREACHABLE else None,
        )
        task.add_status(status)
        self.send_update(framework, status)
        if state == TaskState.TASK_UNREACHABLE:
            task.state = state
            task.unreachable_time = unreachable_time
            framework.tasks.pop(task.task_id, None)
            framework.unreachable_tasks[task.task_id] = task
            # The allocator forgets the agent, and with it these resources.
            task.recovered = True
            self.events.task_updated(task)
        else:
            # The allocator already released the agent's resources with remove_agent.
            task.recovered = True
            task.state = state
            self.events.task_updated(task)
            self.counters.inc(f"tasks_{state.removeprefix('TASK_').lower()}")
            self.complete_task(task)

    def _drop_agent_state(self, agent: AgentRecord, *, replacing: bool) -> None:
        """Forget the agent in the allocator and its offers (before re-adding or removing)."""
        self.rescind_offers(agent.offers)
        self.allocator.remove_agent(agent.id)
        if replacing:
            if agent.stream is not None:
                self.outbox.close_agent(agent.stream)
            for framework in self.frameworks.values():
                framework.executors.pop(agent.id, None)
            # The framework's task records stay: the re-registration re-links the ones the
            # agent reports and those it omits (`_keep_unreported`).
            agent.tasks.clear()
