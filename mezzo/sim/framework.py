"""The simulated framework scheduler: the v1 scheduler API as typed calls and events.

`SimFramework` subscribes, acknowledges every reliable update at once (as the mezzo SDK and
pymesos do), and turns events into hooks (`on_subscribed`, `on_offers`, `on_update`,
`on_rescind`) that the workload frameworks (`mezzo.sim.frameworks`) implement with mezzo's
framework decision cores. Calls go to the simulated master (`MasterNode`) and arrive there
after the configured latency; the framework's own thinking is free (it is another process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mezzo.api.common import (
    AgentID,
    CommandInfo,
    Filters,
    FrameworkID,
    FrameworkInfo,
    Launch,
    Offer,
    OfferOperation,
    OfferOperationType,
    Resource,
    TaskID,
    TaskInfo,
    TaskStatus,
)
from mezzo.api.scheduler import (
    Accept,
    Acknowledge,
    Call,
    CallType,
    Decline,
    Event,
    EventType,
    Kill,
    Revive,
    Subscribe,
    Suppress,
)
from mezzo.resources import Resources
from mezzo.sim.engine import Engine
from mezzo.sim.master_node import Link

if TYPE_CHECKING:
    from mezzo.sim.master_node import MasterNode

_WIRE: dict[str, list[Resource]] = {}


def wire(resources: str) -> list[Resource]:
    """The wire form of a resource string (cached: simulated tasks reuse a few shapes)."""
    found = _WIRE.get(resources)
    if found is None:
        found = _WIRE[resources] = Resources.parse(resources).to_wire()
    return found


def scalars(offer: Offer) -> dict[str, float]:
    """The scalar quantities on offer (cpus, mem, ...)."""
    out: dict[str, float] = {}
    for r in offer.resources:
        if r.scalar is not None:
            out[r.name] = out.get(r.name, 0.0) + r.scalar.value
    return out


def slots(offer: Offer, cpus: float, mem: float) -> int:
    """How many tasks of (cpus, mem) fit in the offer."""
    q = scalars(offer)
    by_cpu = int(q.get("cpus", 0.0) / cpus + 1e-9) if cpus > 0 else 1 << 30
    by_mem = int(q.get("mem", 0.0) / mem + 1e-9) if mem > 0 else 1 << 30
    return min(by_cpu, by_mem)


class SimFramework:
    def __init__(self, engine: Engine, name: str, *, role: str = "*",
                 failover_timeout: float | None = None) -> None:
        self.engine = engine
        self.name = name
        self.info = FrameworkInfo(user="sim", name=name, role=role, failover_timeout=failover_timeout)
        self.master: MasterNode | None = None
        self.link: Link | None = None
        self.framework_id: str | None = None
        self.stream_id: str | None = None
        self.subscribed_at: float | None = None
        self.started_at: float | None = None
        self._task_seq = 0

    # ------------------------------------------------------------------ connection

    def connect(self, master: MasterNode) -> None:
        """(Re-)subscribe with `master` (with our id once we have one: a failover)."""
        self.master = master
        self.link = Link(self)
        if self.started_at is None:
            self.started_at = self.engine.now
        if self.framework_id is not None:
            self.info.id = FrameworkID(value=self.framework_id)
        master.scheduler_subscribe(
            Call(type=CallType.SUBSCRIBE, framework_id=self.info.id,
                 subscribe=Subscribe(framework_info=self.info)),
            self.link,
        )

    def master_lost(self) -> None:
        if self.link is not None:
            self.link.closed = True
        self.link = None
        self.stream_id = None

    def stream_closed(self, link: Link) -> None:
        if link is self.link:
            self.stream_id = None

    @property
    def connected(self) -> bool:
        return self.stream_id is not None

    # ------------------------------------------------------------------ events

    def receive(self, event: Event) -> None:
        kind = event.type
        if kind == EventType.OFFERS:
            assert event.offers is not None
            self.on_offers(event.offers.offers)
        elif kind == EventType.UPDATE:
            assert event.update is not None
            status = event.update.status
            if status.uuid is not None and status.agent_id is not None:
                self.call(CallType.ACKNOWLEDGE, acknowledge=Acknowledge(
                    agent_id=status.agent_id, task_id=status.task_id, uuid=status.uuid))
            self.on_update(status)
        elif kind == EventType.SUBSCRIBED:
            assert event.subscribed is not None
            self.framework_id = event.subscribed.framework_id.value
            self.subscribed_at = self.engine.now
            # The stream id is what the shell returns in the Mesos-Stream-Id header; the
            # simulated master leaves it on the link (see `MasterNode`).
            self.stream_id = self.link.stream_id if self.link else None
            self.on_subscribed()
        elif kind == EventType.RESCIND:
            assert event.rescind is not None
            self.on_rescind(event.rescind.offer_id.value)
        elif kind == EventType.ERROR:
            self.on_error(event.error.message if event.error else "")

    # Hooks for the workload frameworks.
    def on_subscribed(self) -> None:
        pass

    def on_offers(self, offers: list[Offer]) -> None:
        self.decline([o.id.value for o in offers], refuse=5.0)

    def on_update(self, status: TaskStatus) -> None:
        pass

    def on_rescind(self, offer_id: str) -> None:
        pass

    def on_error(self, message: str) -> None:
        pass

    # ------------------------------------------------------------------ calls

    def call(self, type_: CallType, **payload: Any) -> None:
        if self.master is None or self.stream_id is None or self.framework_id is None:
            return  # not connected: the call is lost, as on a broken connection
        self.master.scheduler_call(
            Call(type=type_, framework_id=FrameworkID(value=self.framework_id), **payload),
            self.stream_id,
        )

    def task(self, offer: Offer, resources: str, duration: float | None,
             name: str | None = None) -> TaskInfo:
        """A command task running `sleep <duration>` (forever when None) on the offer's agent."""
        self._task_seq += 1
        task_id = name or f"{self.name}-{self._task_seq}"
        return TaskInfo(
            name=task_id,
            task_id=TaskID(value=task_id),
            agent_id=AgentID(value=offer.agent_id.value),
            resources=wire(resources),
            command=CommandInfo(value=f"sleep {duration!r}" if duration is not None else "sleep forever"),
        )

    def launch(self, offer_ids: list[str], tasks: list[TaskInfo], refuse: float | None = None) -> None:
        from mezzo.api.common import OfferID

        self.call(CallType.ACCEPT, accept=Accept(
            offer_ids=[OfferID(value=o) for o in offer_ids],
            operations=[OfferOperation(type=OfferOperationType.LAUNCH, launch=Launch(task_infos=tasks))],
            filters=Filters(refuse_seconds=refuse) if refuse is not None else None,
        ))

    def decline(self, offer_ids: list[str], refuse: float | None = None) -> None:
        from mezzo.api.common import OfferID

        if offer_ids:
            self.call(CallType.DECLINE, decline=Decline(
                offer_ids=[OfferID(value=o) for o in offer_ids],
                filters=Filters(refuse_seconds=refuse) if refuse is not None else None,
            ))

    def kill(self, task_id: str, agent_id: str) -> None:
        self.call(CallType.KILL, kill=Kill(task_id=TaskID(value=task_id), agent_id=AgentID(value=agent_id)))

    def suppress(self) -> None:
        self.call(CallType.SUPPRESS, suppress=Suppress())

    def revive(self) -> None:
        self.call(CallType.REVIVE, revive=Revive())

    def teardown(self) -> None:
        self.call(CallType.TEARDOWN)
