"""Framework lifecycle calls: SUBSCRIBE, TEARDOWN, UPDATE_FRAMEWORK; disconnection,
failover and the failover timeout; framework removal (spec §5.1, §5.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mezzo.api.common import (
    FrameworkCapabilityType,
    FrameworkID,
    FrameworkInfo,
    Reason,
    TaskState,
)
from mezzo.api.internal import (
    AgentEvent,
    AgentEventType,
    AgentShutdownFramework,
    AgentUpdateFramework,
)
from mezzo.api.scheduler import (
    HEARTBEAT_INTERVAL_SECONDS,
    Call,
    Event,
    EventType,
    Subscribe,
    Subscribed,
    UpdateFramework,
)
from mezzo.core.errors import ValidationError
from mezzo.master.allocator import FrameworkPolicy
from mezzo.master.base import MasterBase, log
from mezzo.master.offer_policy import framework_policy
from mezzo.master.records import FrameworkRecord, framework_roles, has_capability
from mezzo.resources import role_error

_HEARTBEAT = Event(type=EventType.HEARTBEAT)


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """Outcome of a SUBSCRIBE: the stream id to return, or the refusal sent as ERROR."""

    framework_id: str | None
    stream_id: str | None
    error: str | None = None


class FrameworkCalls(MasterBase):
    # ------------------------------------------------------------------ validation

    def _validate_framework_info(
        self, info: FrameworkInfo, suppressed_roles: list[str], existing: FrameworkRecord | None
    ) -> str | None:
        """Semantic checks (spec §5.1.2); a message means refuse with ERROR."""
        multi = has_capability(info, FrameworkCapabilityType.MULTI_ROLE)
        if multi and info.role not in (None, "*") and info.roles:
            return "'FrameworkInfo.role' must not be set when MULTI_ROLE is enabled"
        if not multi and info.roles:
            return "'FrameworkInfo.roles' requires the MULTI_ROLE capability"
        roles = framework_roles(info)
        if len(set(roles)) != len(roles):
            return "'FrameworkInfo.roles' contains duplicate entries"
        for role in roles:
            problem = role_error(role)
            if problem is not None:
                return f"Role '{role}' is invalid: {problem}"
            allowed = self.options.roles
            if allowed is not None and role != "*" and role not in allowed:
                return f"Role '{role}' is not present in the master's --roles"
        for role in suppressed_roles:
            if role not in roles:
                return f"Suppressed role '{role}' is not contained in the list of roles"
        timeout = info.failover_timeout
        if timeout is not None and (math.isnan(timeout) or timeout < 0 or math.isinf(timeout)):
            return f"Invalid 'FrameworkInfo.failover_timeout': {timeout}"
        if info.user == "root" and not self.options.root_submissions:
            return "User 'root' is not allowed to run frameworks without --root_submissions set"
        if existing is not None and existing.info.principal != info.principal:
            return (
                f"Changing framework's principal is not allowed: current "
                f"'{existing.info.principal}', new '{info.principal}'"
            )
        return None

    # ------------------------------------------------------------------ SUBSCRIBE

    def subscribe(self, call: Call, stream: object) -> SubscribeResult:
        """Handle a (re-)SUBSCRIBE arriving on the new `stream` (spec §5.1)."""
        assert call.subscribe is not None
        sub: Subscribe = call.subscribe
        info = sub.framework_info
        framework_id = info.id.value if info.id is not None else None
        if framework_id is not None and framework_id in self.completed_frameworks:
            self.send_error_and_close(stream, "Framework has been removed")
            return SubscribeResult(None, None, "Framework has been removed")
        existing = self.frameworks.get(framework_id) if framework_id else None
        problem = self._validate_framework_info(info, sub.suppressed_roles, existing)
        policy: FrameworkPolicy | None = None
        if problem is None:
            try:
                policy = framework_policy(info, framework_roles(info), sub.offer_constraints)
            except ValueError as exc:
                problem = str(exc)
        if problem is not None:
            self.send_error_and_close(stream, problem)
            return SubscribeResult(None, None, problem)
        assert policy is not None

        now = self.now()
        stream_id = self.ids.uuid()
        if existing is None:
            new_id = framework_id or self.ids.framework_id()
            info.id = FrameworkID(value=new_id)
            framework = FrameworkRecord(
                id=new_id, info=info, roles=framework_roles(info), registered_time=now
            )
            if framework_id is not None:
                framework.reregistered_time = now  # re-subscribe after a master failover
            self.frameworks[new_id] = framework
            self.allocator.add_framework(
                new_id, framework.roles, suppressed_roles=sub.suppressed_roles, now=now,
                policy=policy,
            )
            self.counters.inc(
                "messages_register_framework" if framework_id is None
                else "messages_reregister_framework"
            )
        else:
            framework = existing
            self.counters.inc("messages_reregister_framework")
            self._failover(framework, info, sub.suppressed_roles, policy)
            framework.reregistered_time = now
        framework.suppressed_roles = set(sub.suppressed_roles)
        framework.offer_constraints = sub.offer_constraints
        framework.counters["calls"] += 1
        framework.counters["calls/subscribe"] += 1
        framework.stream = stream
        framework.stream_id = stream_id
        framework.connected = True
        framework.active = True
        framework.recovered = False
        framework.failover_deadline = None
        framework.unregistered_time = None
        framework.next_heartbeat = now + self.options.heartbeat_interval
        self.heartbeat_timers.set(framework.id, framework.next_heartbeat)
        self.failover_timers.discard(framework.id)
        self.allocator.activate_framework(framework.id)
        self.send(
            framework,
            Event(
                type=EventType.SUBSCRIBED,
                subscribed=Subscribed(
                    framework_id=FrameworkID(value=framework.id),
                    heartbeat_interval_seconds=HEARTBEAT_INTERVAL_SECONDS,
                    master_info=self.info,
                ),
            ),
        )
        self.send(framework, _HEARTBEAT)
        self.request_allocation()
        if existing is None:
            self.events.framework_added(framework)
        else:
            self.events.framework_updated(framework)
        log.info("framework %s (%s) subscribed", framework.id, info.name)
        return SubscribeResult(framework.id, stream_id)

    def _failover(
        self,
        framework: FrameworkRecord,
        info: FrameworkInfo,
        suppressed: list[str],
        policy: FrameworkPolicy,
    ) -> None:
        """A new subscription replaces the old one: the old stream gets ERROR and closes,
        outstanding offers go back without filters, mutable fields are updated."""
        if framework.connected and framework.stream is not None:
            self.send_error_and_close(framework.stream, "Framework failed over")
        framework.stream = None
        framework.connected = False
        for offer_id in list(framework.offers):
            offer = self.offers.get(offer_id)
            if offer is not None:
                self.remove_offer(offer, rescind=False)
        self._apply_framework_info(framework, info, suppressed, policy)

    def _apply_framework_info(
        self,
        framework: FrameworkRecord,
        info: FrameworkInfo,
        suppressed: list[str],
        policy: FrameworkPolicy,
    ) -> None:
        # `user` and `checkpoint` cannot change after the first subscription.
        info.user = framework.info.user
        info.checkpoint = framework.info.checkpoint
        info.id = FrameworkID(value=framework.id)
        old_roles = set(framework.roles)
        framework.info = info
        framework.roles = framework_roles(info)
        # Offer constraints, offer_filters and GPU_RESOURCES apply from the next allocation.
        self.allocator.update_framework(framework.id, framework.roles, suppressed, policy=policy)
        removed = old_roles - set(framework.roles)
        if removed:
            self.rescind_offers(
                [o for o in framework.offers if self.offers[o].role in removed]
            )
        for agent_id in framework.executors:
            agent = self.agents.get(agent_id)
            if agent is not None and agent.connected:
                self.outbox.send_agent(
                    agent.stream,
                    AgentEvent(
                        type=AgentEventType.UPDATE_FRAMEWORK,
                        update_framework=AgentUpdateFramework(framework_info=info),
                    ),
                )

    # ------------------------------------------------------------------ UPDATE_FRAMEWORK

    def update_framework(self, framework: FrameworkRecord, call: Call) -> None:
        """Raises ValidationError (400) for changes Mesos refuses."""
        assert call.update_framework is not None
        upd: UpdateFramework = call.update_framework
        info = upd.framework_info
        if info.user != framework.info.user:
            raise ValidationError("Updating 'FrameworkInfo.user' is unsupported")
        if bool(info.checkpoint) != bool(framework.info.checkpoint):
            raise ValidationError("Updating 'FrameworkInfo.checkpoint' is unsupported")
        problem = self._validate_framework_info(info, upd.suppressed_roles, framework)
        if problem is not None:
            raise ValidationError(problem)
        try:
            policy = framework_policy(info, framework_roles(info), upd.offer_constraints)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        self._apply_framework_info(framework, info, upd.suppressed_roles, policy)
        framework.suppressed_roles = set(upd.suppressed_roles)
        framework.offer_constraints = upd.offer_constraints
        self.request_allocation()
        self.events.framework_updated(framework)

    # ------------------------------------------------------------------ disconnection

    def framework_disconnected(self, framework_id: str, stream: object) -> None:
        """The subscription stream `stream` ended (client went away)."""
        framework = self.frameworks.get(framework_id)
        if framework is None or framework.stream is not stream:
            return  # an old stream of a framework that failed over or was removed
        now = self.now()
        framework.stream = None
        framework.stream_id = None
        framework.connected = False
        framework.active = False
        framework.unregistered_time = now
        self.allocator.deactivate_framework(framework.id)
        self.rescind_offers(framework.offers)
        timeout = framework.info.failover_timeout or 0.0
        framework.failover_deadline = now + timeout
        self.heartbeat_timers.discard(framework.id)
        self.failover_timers.set(framework.id, framework.failover_deadline)
        log.info("framework %s disconnected; failover timeout %ss", framework.id, timeout)
        if timeout <= 0:
            self.remove_framework(framework)
        else:
            self.events.framework_updated(framework)

    def expire_failover_timeouts(self, now: float) -> None:
        for framework_id in self.failover_timers.pop_due(now):
            framework = self.frameworks.get(framework_id)
            if framework is None or framework.connected or framework.failover_deadline is None:
                continue
            if now < framework.failover_deadline:
                self.failover_timers.set(framework_id, framework.failover_deadline)
                continue
            log.info("framework %s failover timeout expired", framework.id)
            self.remove_framework(framework)

    def send_heartbeats(self, now: float) -> None:
        interval = self.options.heartbeat_interval
        for framework_id in self.heartbeat_timers.pop_due(now):
            framework = self.frameworks.get(framework_id)
            if framework is None or not framework.connected:
                continue
            if now >= framework.next_heartbeat:
                framework.next_heartbeat = now + interval
                self.send(framework, _HEARTBEAT)
            self.heartbeat_timers.set(framework_id, framework.next_heartbeat)

    # ------------------------------------------------------------------ removal

    def teardown(self, framework: FrameworkRecord) -> None:
        self.counters.inc("messages_unregister_framework")
        self.remove_framework(framework)

    def remove_framework(self, framework: FrameworkRecord) -> None:
        """Executors shut down, tasks recorded TASK_KILLED/REASON_FRAMEWORK_REMOVED (not
        sent), stream closed without ERROR, framework moved to the completed list."""
        now = self.now()
        if framework.stream is not None:
            self.outbox.close_framework(framework.stream)
        framework.stream = None
        framework.connected = False
        framework.active = False
        framework.failover_deadline = None
        self.heartbeat_timers.discard(framework.id)
        self.failover_timers.discard(framework.id)
        framework.unregistered_time = framework.unregistered_time or now
        for offer_id in list(framework.offers):
            offer = self.offers.get(offer_id)
            if offer is not None:
                self.remove_offer(offer, rescind=False)
        agents = {t.agent_id for t in framework.tasks.values()} | set(framework.executors)
        for agent_id in agents:
            agent = self.agents.get(agent_id)
            if agent is not None and agent.connected:
                self.outbox.send_agent(
                    agent.stream,
                    AgentEvent(
                        type=AgentEventType.SHUTDOWN_FRAMEWORK,
                        shutdown_framework=AgentShutdownFramework(
                            framework_id=FrameworkID(value=framework.id)
                        ),
                    ),
                )
        for task in [*framework.tasks.values(), *framework.unreachable_tasks.values()]:
            if task.state not in (TaskState.TASK_FINISHED, TaskState.TASK_FAILED) and not task.recovered:
                status = self.master_status(
                    framework, task.task_id, TaskState.TASK_KILLED,
                    Reason.REASON_FRAMEWORK_REMOVED, "Framework removed",
                    agent_id=task.agent_id, executor_id=task.executor_id,
                )
                task.add_status(status)
                self.update_task_state(task, TaskState.TASK_KILLED)
            self.complete_task(task)
        framework.executors.clear()
        self.allocator.remove_framework(framework.id)
        del self.frameworks[framework.id]
        self.completed_frameworks[framework.id] = framework
        while len(self.completed_frameworks) > self.options.max_completed_frameworks:
            self.completed_frameworks.popitem(last=False)
        self.request_allocation()
        self.events.framework_removed(framework)
        log.info("framework %s removed", framework.id)
