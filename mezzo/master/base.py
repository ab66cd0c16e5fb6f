"""The master core's state and the helpers every handler family shares.

`MasterBase` owns the lifecycle collections (each with a comment saying when entries enter and
leave), the injected collaborators (clock, id source, allocator, outbox) and the operations
several call families need: sending a status update to a framework, rescinding or recovering
an offer, ending a task, counting messages. The handler families (`frameworks`, `offers`,
`tasks`, `agents`) derive from it; `mezzo.master.core.Master` combines them.

Rules: no socket, no wall clock, no random numbers here. `now` is `self.clock.now()`, ids come
from `self.ids`, effects leave through `self.outbox`.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from mezzo.api.common import (
    AgentID,
    ExecutorID,
    MasterInfo,
    OfferID,
    Reason,
    Source,
    TaskState,
    TaskStatus,
    is_terminal,
)
from mezzo.api.scheduler import Error, Event, EventType, Rescind, Update
from mezzo.core.clock import Clock
from mezzo.core.ids import IdSource
from mezzo.core.metrics import DaemonMetrics
from mezzo.master.allocator import Allocator
from mezzo.master.events import DEFAULT_MAX_SUBSCRIBERS, OperatorEvents
from mezzo.master.gauges import TalliedDict
from mezzo.master.leadership import Phase
from mezzo.master.outbox import Outbox
from mezzo.master.quota import to_quota
from mezzo.master.records import (
    AgentRecord,
    FrameworkRecord,
    OfferRecord,
    OperationRecord,
    RegisteringAgent,
    TaskRecord,
    time_info,
)
from mezzo.master.registry import RegistryState, UpdateWeights
from mezzo.master.timers import DeadlineQueue
from mezzo.master.views import completed_task

log = logging.getLogger("mezzo.master")

HEARTBEAT_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class MasterOptions:
    """What the core is configured with (built from flags by `mezzo.master.flags`)."""

    allocation_interval: float = 1.0
    # At most one event-triggered allocation run per window: triggers arriving within a window
    # of the last run wait for its end and make one run together (--allocation_coalesce_window).
    allocation_coalesce_window: float = 0.005
    offer_timeout: float | None = None
    agent_ping_timeout: float = 15.0
    max_agent_ping_timeouts: int = 5
    agent_reregister_timeout: float = 600.0
    roles: frozenset[str] | None = None  # --roles whitelist; None = any role
    # --weights: used (and stored in the registry) unless the registry holds weights already.
    weights: Mapping[str, float] = field(default_factory=dict)
    root_submissions: bool = True
    max_completed_frameworks: int = 50
    max_completed_tasks_per_framework: int = 1000
    max_unreachable_tasks_per_framework: int = 1000
    heartbeat_interval: float = HEARTBEAT_SECONDS
    max_operator_event_stream_subscribers: int = DEFAULT_MAX_SUBSCRIBERS
    # The scheme of the agents' URL in offers: "https" in a TLS cluster (Mesos's TODO:
    # "Set https if only https is supported").
    agent_scheme: str = "http"


@dataclass
class Counters:
    """Monotonic counters behind /metrics/snapshot (`master/<name>`)."""

    values: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def inc(self, name: str, by: int = 1) -> None:
        self.values[name] += by


class MasterBase:
    def __init__(
        self,
        *,
        clock: Clock,
        ids: IdSource,
        allocator: Allocator,
        outbox: Outbox,
        master_info: MasterInfo,
        options: MasterOptions | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.clock = clock
        self.ids = ids
        self.allocator = allocator
        self.outbox = outbox
        self.info = master_info
        self.options = options or MasterOptions()
        # Called when an allocation is requested, so that the shell runs it at `allocation_due`
        # (which `next_deadline()` also reports); a no-op on a FakeClock.
        self._wake = wake or (lambda: None)
        self.start_time = clock.now()
        self.elected_time: float | None = self.start_time
        self.counters = Counters()
        # Latencies for /metrics/snapshot and /metrics (measurements, never decision inputs).
        self.metrics = DaemonMetrics()
        self.allocation_timer = self.metrics.timer(
            "allocator/mesos/allocation_run_ms", "allocation_run", "Time one allocation run takes")
        self.offer_accept_timer = self.metrics.timer(
            "master/offer_accept_latency_ms", "offer_accept_latency",
            "Time from sending an offer to its ACCEPT")
        self.update_round_trip_timer = self.metrics.timer(
            "master/status_update_round_trip_ms", "status_update_round_trip",
            "Time from forwarding a status update to the scheduler until it is acknowledged")
        # Role weights (roles not named weigh 1): --weights until the registry is recovered,
        # then the registry's; changed by UPDATE_WEIGHTS, which stores them there too.
        self.weights: dict[str, float] = dict(self.options.weights)
        # Role -> {"guarantees": {...}, "limits": {...}}: operator-set quotas (registry).
        self.quota_config: dict[str, dict[str, dict[str, float]]] = {}
        # The operator event stream's subscribers; the handler families call its hooks.
        self.events = OperatorEvents(
            outbox, heartbeat_interval=self.options.heartbeat_interval,
            max_subscribers=self.options.max_operator_event_stream_subscribers,
            version=master_info.version or "",
        )

        # -- allocation runs ---------------------------------------------------------------
        # Batch runs happen every --allocation_interval, whatever else runs in between.
        self.next_batch_allocation = self.start_time
        # Event-triggered runs: the first trigger (`request_allocation`) sets `allocation_due`
        # (now, or one coalescing window after the last run); later triggers join that run.
        self.allocation_pending = False
        self.allocation_due: float | None = None
        self.last_allocation: float | None = None
        self.batch_allocation_runs = 0
        self.event_allocation_runs = 0

        # -- frameworks ------------------------------------------------------------------
        # Enter on SUBSCRIBE (or when an agent reports a framework we do not know: then
        # `recovered`); connected ones have a stream. Leave on TEARDOWN, failover timeout,
        # operator teardown -> `completed_frameworks`.
        self.frameworks: dict[str, FrameworkRecord] = {}
        self.events.framework_user = self._framework_user
        # Per-framework timers (`mezzo.master.timers`): the next HEARTBEAT of each connected
        # framework, the failover deadline of each disconnected one.
        self.heartbeat_timers = DeadlineQueue()
        self.failover_timers = DeadlineQueue()
        # Removed frameworks, newest last, at most --max_completed_frameworks. A SUBSCRIBE
        # with one of these ids is refused ("Framework has been removed").
        self.completed_frameworks: OrderedDict[str, FrameworkRecord] = OrderedDict()

        # -- agents ----------------------------------------------------------------------
        # Enter on a SUBSCRIBE that needs a registry write first (admission, re-admission,
        # changed info); leave when the shell reports that operation applied (-> `agents`,
        # SUBSCRIBED sent) or when the agent's stream ends first.
        self.registering: dict[str, RegisteringAgent] = {}
        # Enter on agent SUBSCRIBE (registration or re-registration); leave when marked
        # unreachable or gone. Sums their totals as they come and go (`mezzo.master.gauges`).
        self.agents: TalliedDict[AgentRecord] = TalliedDict(lambda agent: agent.total)
        # Admitted in the registry but not (yet) re-registered with this master; leave on
        # re-registration or when --agent_reregister_timeout expires (-> unreachable).
        self.recovered_agents: dict[str, object] = {}
        self.recovery_deadline: float | None = None
        # Per-agent timers (`mezzo.master.timers`): the next PING of each connected agent,
        # the re-registration deadline of each disconnected one.
        self.ping_timers = DeadlineQueue()
        self.reregister_timers = DeadlineQueue()
        # Marked unreachable (id -> (AgentInfo, time)); leave if the agent comes back.
        self.unreachable_agents: dict[str, tuple[object, float]] = {}
        # Marked gone by an operator (id -> time); terminal: such an agent is shut down.
        self.gone_agents: dict[str, float] = {}

        # -- operations (RESERVE, UNRESERVE, ...; `mezzo.master.operations`) ---------------
        # Each agent record holds its operations by uuid; this indexes those with an id by
        # framework id and operation id. Enter when applied (or reported by a re-registering
        # agent); leave when a terminal status is acknowledged or the agent is removed.
        self.framework_operations: dict[str, dict[str, OperationRecord]] = {}
        # The authorizer's decision (action, principal, object) -> allowed; the shell installs
        # the master's ACLs (`mezzo.master.authorization`); everything is allowed by default.
        self.authorize: Callable[[str, str | None, str | None], bool] = lambda *_: True

        # -- offers ----------------------------------------------------------------------
        # Enter at allocation; leave on ACCEPT/DECLINE, rescind, or when their framework or
        # agent goes. Sums their resources as they come and go.
        self.offers: TalliedDict[OfferRecord] = TalliedDict(lambda offer: offer.resources)

        # -- leadership (`mezzo.master.leadership`: STANDBY → RECOVERING → LEADING → FENCED) --
        # Changed only by `elected`, `recover` and `fence`.
        self.phase = Phase.STANDBY
        self.fenced_reason: str | None = None
        # Called with the new phase after each change (the shell releases the calls it held
        # during recovery on LEADING and closes every stream on FENCED).
        self.on_phase: Callable[[Phase], None] = lambda phase: None

    def _framework_user(self, framework_id: str) -> str | None:
        """A framework's user (operator events are filtered by it); None if unknown."""
        framework = self.frameworks.get(framework_id) or self.completed_frameworks.get(framework_id)
        return (framework.info.user or None) if framework is not None else None

    # ------------------------------------------------------------------ recovery

    @property
    def recovered(self) -> bool:
        """Whether this master leads with its registry recovered (phase LEADING)."""
        return self.phase is Phase.LEADING

    def elected(self) -> None:
        """Won the election: recover the registry next (STANDBY -> RECOVERING)."""
        if self.phase is Phase.STANDBY:
            self.elected_time = self.now()
            self._set_phase(Phase.RECOVERING)

    def fence(self, reason: str) -> bool:
        """Leadership is lost for good (any phase -> FENCED); False if it already was."""
        if self.phase is Phase.FENCED:
            return False
        self.fenced_reason = reason
        self._set_phase(Phase.FENCED)
        return True

    def _set_phase(self, phase: Phase) -> None:
        log.info("master %s: %s -> %s", self.info.id, self.phase, phase)
        self.phase = phase
        self.on_phase(phase)

    def recover(self, state: RegistryState) -> None:
        """Load the registry: admitted agents wait --agent_reregister_timeout to come back.
        The master then leads (STANDBY, as a standalone master, or RECOVERING -> LEADING)."""
        if self.phase is Phase.FENCED:
            return
        now = self.clock.now()
        for agent_id, info in state.admitted.items():
            self.recovered_agents[agent_id] = info
        for agent_id, (info, when) in state.unreachable.items():
            self.unreachable_agents[agent_id] = (info, when)
        self.gone_agents.update(state.gone)
        # As in Mesos: weights in the registry win over --weights; without any there, the
        # flag's weights are stored so that the next leader has them too.
        if state.weights:
            if self.weights and self.weights != state.weights:
                log.warning("ignoring --weights %s: using the weights in the registry", self.weights)
            self.set_weights(state.weights)
        elif self.weights:
            self.outbox.registry(UpdateWeights(weights=dict(self.weights)))
        if state.quotas:
            self.set_quotas(state.quotas)
        if self.recovered_agents:
            self.recovery_deadline = now + self.options.agent_reregister_timeout
        self._set_phase(Phase.LEADING)

    # ------------------------------------------------------------------ helpers

    def now(self) -> float:
        return self.clock.now()

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Make `weights` the role weights, here and in the allocator (a role that loses its
        weight goes back to 1)."""
        dropped = {role: 1.0 for role in self.weights if role not in weights}
        self.weights = dict(weights)
        self.allocator.update_weights({**dropped, **self.weights})

    def set_quotas(self, quotas: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
        """Make `quotas` (role -> {"guarantees", "limits"}) the quotas, here and in the
        allocator (a role left out loses its quota)."""
        for role in self.quota_config:
            if role not in quotas:
                self.allocator.update_quota(role, None)
        self.quota_config = {
            role: {"guarantees": dict(q.get("guarantees", {})), "limits": dict(q.get("limits", {}))}
            for role, q in quotas.items()
        }
        for role, q in self.quota_config.items():
            self.allocator.update_quota(role, to_quota(q))

    def request_allocation(self) -> None:
        """Something changed what can be offered (an agent or framework came, resources were
        freed, a framework revived): run an allocation soon. At once if no run happened within
        the last coalescing window, else when that window ends; every trigger until the run
        starts joins it, so there is at most one event-triggered run per window however many
        events arrive. A decline is not such a change (see `refusal_seconds`)."""
        if not self.allocation_pending:
            self.allocation_pending = True
            now = self.now()
            last = self.last_allocation
            window_end = now if last is None else last + self.options.allocation_coalesce_window
            self.allocation_due = max(now, window_end)
            self._wake()

    def refusal_seconds(self, refuse: float, *, declined: bool) -> float:
        """How long the allocator's refuse filter of recovered resources lasts.

        As in Mesos, a filter lasts at least until the next batch allocation (Mesos: the
        allocation interval, MESOS-4302): otherwise an event-triggered run could hand the same
        resources straight back. A DECLINE gets that minimum even with `refuse_seconds: 0`
        (Mesos installs no filter then and relies on not allocating on declines; here events
        of other frameworks run allocations too), so a framework declining everything sees the
        resources again once per batch, not once per round trip. An ACCEPT's unused remainder
        with `refuse_seconds: 0` stays unfiltered (a launching framework gets it back at once).
        """
        if refuse <= 0 and not declined:
            return refuse
        now = self.now()
        until = self.next_batch_allocation
        seconds = until - now
        if seconds <= refuse:
            return refuse
        # The allocator adds `seconds` to `now`: make sure the filter ends at the batch run,
        # not one rounding step after it.
        while now + seconds > until:
            seconds = math.nextafter(seconds, 0.0)
        return seconds

    def send(self, framework: FrameworkRecord, event: Event) -> bool:
        """Send an event to a connected framework; dropped (False) otherwise."""
        if not framework.connected or framework.stream is None:
            self.counters.inc("dropped_messages")
            return False
        self.outbox.send_framework(framework.stream, event)
        framework.counters["events"] += 1
        framework.counters[f"events/{str(event.type).lower()}"] += 1
        return True

    def send_error_and_close(self, stream: object, message: str) -> None:
        self.outbox.send_framework(stream, Event(type=EventType.ERROR, error=Error(message=message)))
        self.outbox.close_framework(stream)

    def master_status(
        self,
        framework: FrameworkRecord,
        task_id: str,
        state: TaskState,
        reason: Reason,
        message: str,
        *,
        agent_id: str | None = None,
        executor_id: str | None = None,
        unreachable_time: float | None = None,
    ) -> TaskStatus:
        """A master-generated status (no uuid: sent once, never acknowledged)."""
        from mezzo.api.common import TaskID

        return TaskStatus(
            task_id=TaskID(value=task_id),
            state=state,
            message=message,
            source=Source.SOURCE_MASTER,
            reason=reason,
            agent_id=AgentID(value=agent_id) if agent_id else None,
            executor_id=ExecutorID(value=executor_id) if executor_id else None,
            timestamp=self.now(),
            unreachable_time=time_info(unreachable_time),
        )

    def send_update(self, framework: FrameworkRecord, status: TaskStatus) -> bool:
        return self.send(framework, Event(type=EventType.UPDATE, update=Update(status=status)))

    def lost_state(self, framework: FrameworkRecord, pa_state: TaskState) -> TaskState:
        """What a non-PARTITION_AWARE framework sees instead of the five PA states."""
        return pa_state if framework.partition_aware else TaskState.TASK_LOST

    # ------------------------------------------------------------------ offers

    def remove_offer(
        self,
        offer: OfferRecord,
        *,
        rescind: bool,
        refuse: float | None = None,
        reallocate: bool = True,
    ) -> None:
        """Drop an outstanding offer; its resources go back to the allocator (and, unless
        `reallocate` is False, to the next allocation run, which may offer them elsewhere)."""
        self.offers.pop(offer.id, None)
        framework = self.frameworks.get(offer.framework_id)
        agent = self.agents.get(offer.agent_id)
        if agent is not None:
            agent.offers.pop(offer.id, None)
        if framework is not None:
            framework.offers.pop(offer.id, None)
            if rescind:
                framework.counters["offers/rescinded"] += 1
                self.send(
                    framework,
                    Event(type=EventType.RESCIND, rescind=Rescind(offer_id=OfferID(value=offer.id))),
                )
        self.allocator.recover_resources(
            offer.framework_id, offer.agent_id, offer.resources, refuse, self.now()
        )
        if reallocate:
            self.request_allocation()

    def rescind_offers(self, offer_ids: Iterable[str]) -> None:
        for offer_id in list(offer_ids):
            offer = self.offers.get(offer_id)
            if offer is not None:
                self.remove_offer(offer, rescind=True)

    # ------------------------------------------------------------------ tasks

    def update_task_state(self, task: TaskRecord, state: TaskState) -> None:
        """Set the latest state; the first time it is terminal, recover the resources."""
        changed = task.state != state
        task.state = state
        if changed:
            self.events.task_updated(task)
        if is_terminal(state) and not task.recovered:
            task.recovered = True
            self.counters.inc(f"tasks_{state.removeprefix('TASK_').lower()}")
            framework = self.frameworks.get(task.framework_id)
            if framework is not None:
                framework.counters[f"tasks/terminal/{state.lower()}"] += 1
            self.allocator.recover_resources(
                task.framework_id, task.agent_id, task.resources, None, self.now()
            )
            self.request_allocation()

    def complete_task(self, task: TaskRecord) -> None:
        """Move a task out of the live collections into its framework's completed list."""
        framework = self.frameworks.get(task.framework_id) or self.completed_frameworks.get(
            task.framework_id
        )
        agent = self.agents.get(task.agent_id)
        if agent is not None:
            agent.tasks.pop((task.framework_id, task.task_id), None)
        if framework is None:
            return
        if framework.tasks.get(task.task_id) is task:
            del framework.tasks[task.task_id]
        framework.unreachable_tasks.pop(task.task_id, None)
        if self.options.max_completed_tasks_per_framework <= 0:
            return
        # Kept as what the documents show of it (`mezzo.master.completed`), not as the record.
        framework.completed_tasks.append(completed_task(task))
        while len(framework.completed_tasks) > self.options.max_completed_tasks_per_framework:
            framework.completed_tasks.popleft()
