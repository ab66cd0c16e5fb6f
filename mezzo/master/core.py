"""`Master`: the decision core of the master, without sockets, on an injected clock.

It combines the handler families (frameworks, offers, tasks, agents, operator calls) and adds
the two entry points the shell uses for scheduler and agent calls:

- `scheduler_call(call, stream_id)` for every non-SUBSCRIBE scheduler call (SUBSCRIBE goes to
  `subscribe(call, stream)`), raising `CallRefused(status, message)` for the request-level
  refusals of spec §2.3 (400 unknown framework or stream id, 403 not subscribed); nothing
  changes when it raises;
- `agent_call(call)` for the agent protocol's POSTs (SUBSCRIBE goes to `agent_subscribe`);

and the timers: `tick()` runs whatever is due at `clock.now()` (heartbeats, failover
timeouts, offer timeouts, pings, re-registration deadlines, the batch allocation every
`allocation_interval` and the event-triggered one when `request_allocation` made it due), and
`next_deadline()` says when the next one is due, so the shell (or a test on a FakeClock)
knows when to call `tick()` again.
"""

from __future__ import annotations

from typing import Any

from mezzo.api.internal import AgentCall, AgentCallType
from mezzo.api.scheduler import Call, CallType
from mezzo.core.errors import CallRefused, ValidationError
from mezzo.master import views
from mezzo.master.agents import AgentCalls
from mezzo.master.events import Viewer
from mezzo.master.frameworks import FrameworkCalls
from mezzo.master.offers import OfferCalls
from mezzo.master.operator_calls import OperatorCalls
from mezzo.master.records import FrameworkRecord
from mezzo.master.tasks import TaskCalls
from mezzo.master.volumes import VolumeCalls

__all__ = ["CallRefused", "Master"]


class Master(FrameworkCalls, OfferCalls, TaskCalls, AgentCalls, OperatorCalls, VolumeCalls):
    # ------------------------------------------------------------------ scheduler calls

    def lookup_framework(self, call: Call, stream_id: str | None) -> FrameworkRecord:
        assert call.framework_id is not None
        framework = self.frameworks.get(call.framework_id.value)
        if framework is None:
            raise CallRefused(400, "Framework cannot be found")
        if not framework.connected:
            raise CallRefused(403, "Framework is not subscribed")
        if stream_id is None:
            raise CallRefused(400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header")
        if stream_id != framework.stream_id:
            raise CallRefused(
                400,
                f"The stream ID '{stream_id}' included in this request didn't match the stream ID "
                f"currently associated with framework ID {framework.id}",
            )
        return framework

    def scheduler_call(self, call: Call, stream_id: str | None) -> int:
        """Handle a checked non-SUBSCRIBE call; returns the HTTP status to answer (202/200)."""
        framework = self.lookup_framework(call, stream_id)
        framework.counters["calls"] += 1
        framework.counters[f"calls/{str(call.type).lower()}"] += 1
        match call.type:
            case CallType.TEARDOWN:
                self.teardown(framework)
            case CallType.ACCEPT:
                assert call.accept is not None
                try:
                    self.check_accept(call.accept)
                except ValidationError as exc:  # anything else is a bug: a logged 500
                    raise CallRefused(400, str(exc)) from None
                self.accept(framework, call.accept)
            case CallType.DECLINE:
                assert call.decline is not None
                self.decline(framework, call.decline)
            case CallType.REVIVE:
                self.revive(framework, call.revive.roles if call.revive else [])
            case CallType.SUPPRESS:
                self.suppress(framework, call.suppress.roles if call.suppress else [])
            case CallType.KILL:
                assert call.kill is not None
                self.kill(framework, call.kill)
            case CallType.SHUTDOWN:
                assert call.shutdown is not None
                self.shutdown_executor(framework, call.shutdown)
            case CallType.ACKNOWLEDGE:
                assert call.acknowledge is not None
                self.acknowledge(framework, call.acknowledge)
            case CallType.RECONCILE:
                assert call.reconcile is not None
                self.reconcile(framework, call.reconcile)
            case CallType.MESSAGE:
                assert call.message is not None
                self.message(framework, call.message)
            case CallType.REQUEST:
                self.counters.inc("messages_resource_request")  # ignored, as Mesos' allocator does
            case CallType.UPDATE_FRAMEWORK:
                try:
                    self.update_framework(framework, call)
                except ValidationError as exc:  # anything else is a bug: a logged 500
                    raise CallRefused(400, str(exc)) from None
                return 200
            case CallType.ACKNOWLEDGE_OPERATION_STATUS:
                if call.acknowledge_operation_status is None:
                    raise CallRefused(400, "Expecting 'acknowledge_operation_status' to be present")
                self.acknowledge_operation_status(framework, call.acknowledge_operation_status)
            case CallType.RECONCILE_OPERATIONS:
                if call.reconcile_operations is None:
                    raise CallRefused(400, "Expecting 'reconcile_operations' to be present")
                self.reconcile_operations(framework, call.reconcile_operations)
            case CallType.ACCEPT_INVERSE_OFFERS | CallType.DECLINE_INVERSE_OFFERS:
                # No maintenance yet: no inverse offer is outstanding, nothing to act on.
                pass
            case _:
                raise CallRefused(501, f"Call type {call.type} is not implemented")
        return 202

    # ------------------------------------------------------------------ agent calls

    def agent_call(self, call: AgentCall) -> None:
        """Handle a non-SUBSCRIBE agent call; raises CallRefused for unknown agents."""
        if call.agent_id is None:
            raise CallRefused(400, "Expecting 'agent_id' to be present")
        agent = self.agents.get(call.agent_id.value)
        if agent is None or not agent.connected:
            raise CallRefused(403, "Agent is not subscribed")
        match call.type:
            case AgentCallType.STATUS_UPDATE:
                if call.status_update is None and not call.status_updates:
                    raise CallRefused(400, "Expecting 'status_update' to be present")
                if call.status_update is not None:
                    self.status_update(agent, call.status_update)
                for update in call.status_updates:
                    self.status_update(agent, update)
            case AgentCallType.PONG:
                self.pong(agent)
            case AgentCallType.FRAMEWORK_MESSAGE:
                if call.framework_message is None:
                    raise CallRefused(400, "Expecting 'framework_message' to be present")
                self.framework_message(agent, call.framework_message)
            case AgentCallType.EXECUTOR_EXITED:
                if call.executor_exited is None:
                    raise CallRefused(400, "Expecting 'executor_exited' to be present")
                self.executor_exited(agent, call.executor_exited)
            case AgentCallType.UPDATE_OPERATION_STATUS:
                if call.update_operation_status is None:
                    raise CallRefused(400, "Expecting 'update_operation_status' to be present")
                self.operation_status_update(agent, call.update_operation_status)
            case AgentCallType.UNREGISTER:
                self.mark_unreachable(agent)
            case _:
                raise CallRefused(501, f"Agent call type {call.type} is not implemented")

    # ------------------------------------------------------------------ operator events

    def operator_subscribe(self, stream: object, view: Any = None,
                           viewer: Viewer | None = None, *, send_state: bool = True) -> None:
        """An operator SUBSCRIBE: SUBSCRIBED with the state, then the live events. With a
        `viewer` (the authorizer bound to the subscriber's principal), both are filtered:
        `view` is the master as that principal may view it (what GET_STATE shows it).
        `send_state=False`: the caller sends SUBSCRIBED itself, before any other event reaches
        the stream (the HTTP shell makes it in slices: `views.subscribed_pieces`)."""
        state = views.get_state(self if view is None else view) if send_state else None
        self.events.subscribe(stream, state, self.now(), viewer)

    def operator_unsubscribed(self, stream: object) -> None:
        """An operator event stream ended (the client went away, or it fell behind)."""
        self.events.unsubscribe(stream)

    # ------------------------------------------------------------------ timers

    def tick(self) -> None:
        """Run every timer that is due at `clock.now()`."""
        now = self.now()
        self.send_heartbeats(now)
        self.expire_failover_timeouts(now)
        self.expire_offers(now)
        self.ping_agents(now)
        self.expire_reregistrations(now)
        self.events.tick(now)
        if now >= self.next_batch_allocation or (
            self.allocation_due is not None and now >= self.allocation_due
        ):
            self.allocate()

    def next_deadline(self) -> float:
        """The earliest time at which `tick()` has something to do."""
        deadlines = [self.next_batch_allocation]
        if self.allocation_due is not None:
            deadlines.append(self.allocation_due)
        # Per-agent and per-framework timers live in heaps (`mezzo.master.timers`): O(1)
        # here rather than a scan of every agent and framework.
        for timers in (self.ping_timers, self.reregister_timers, self.heartbeat_timers,
                       self.failover_timers):
            earliest = timers.earliest()
            if earliest is not None:
                deadlines.append(earliest)
        if self.recovery_deadline is not None:
            deadlines.append(self.recovery_deadline)
        operator_heartbeat = self.events.next_deadline()
        if operator_heartbeat is not None:
            deadlines.append(operator_heartbeat)
        if self.options.offer_timeout is not None:
            deadlines.extend(o.expires_at for o in self.offers.values() if o.expires_at is not None)
        return min(deadlines)
