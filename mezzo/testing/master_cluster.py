"""An in-process cluster around the master core, on a FakeClock, with no sockets.

`MasterCluster` builds a `Master` with a seeded IdSource, the real allocator and an outbox that
delivers each event to the stream object it names. `ScriptedScheduler` and `ScriptedAgent` are
the two kinds of client: they send real wire records (scheduler `Call`s, `AgentCall`s) and
collect what their stream received, with "next / drop the next event of type X" helpers:

    cluster = MasterCluster()
    agent = cluster.add_agent("cpus:4;mem:4096")
    sched = cluster.add_scheduler()          # subscribed
    cluster.allocate()
    offer = sched.next_event("OFFERS").offers.offers[0]
    sched.launch(offer, [task_info(...)])
    run = agent.next_event("RUN_TASK")
    agent.update(run.run_task.task.task_id.value, "TASK_RUNNING", framework_id=sched.framework_id)
    sched.next_event("UPDATE")

Time moves only with `cluster.advance(seconds)`, which runs every timer due in between.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mezzo.api.codec import convert
from mezzo.api.common import (
    AgentID,
    AgentInfo,
    Attribute,
    CommandInfo,
    ExecutorInfo,
    FrameworkCapability,
    FrameworkCapabilityType,
    FrameworkID,
    FrameworkInfo,
    MasterInfo,
    Offer,
    OfferOperation,
    OfferOperationType,
    Reason,
    Source,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mezzo.api.internal import (
    AgentCall,
    AgentCallType,
    AgentEvent,
    AgentStatusUpdate,
    AgentSubscribe,
)
from mezzo.api.scheduler import Call, CallType, Event, Subscribe
from mezzo.core.clock import FakeClock
from mezzo.core.ids import IdSource
from mezzo.master.allocator import AllocatorOptions, create_allocator
from mezzo.master.base import MasterOptions
from mezzo.master.core import Master
from mezzo.master.registry import Registrar, RegistryOperation
from mezzo.resources import Resources
from mezzo.store.memory import MemoryStore


@dataclass(eq=False)
class FakeStream:
    """What one subscription stream received; `closed` once the master ended it."""

    events: list[Any] = field(default_factory=list)
    closed: bool = False

    def types(self) -> list[str]:
        return [str(e.type) for e in self.events]

    def push(self, event: Any) -> None:
        """The master sent `event` on this stream (a subclass may deliver it on)."""
        if not self.closed:
            self.events.append(event)

    def end(self) -> None:
        """The master closed this stream."""
        self.closed = True


class ClusterOutbox:
    def __init__(self, registrar: Registrar) -> None:
        self.registrar = registrar
        self.operations: list[RegistryOperation] = []
        # Registry operations are applied at once unless a test holds them (to see what the
        # core does while a write is outstanding), then `release_registry` applies them.
        self.hold_registry = False
        self.held: list[RegistryOperation] = []
        self.applied: Callable[[RegistryOperation], None] = lambda operation: None

    def send_framework(self, stream: FakeStream, event: Event) -> None:
        if not stream.closed:
            stream.events.append(event)

    def close_framework(self, stream: FakeStream) -> None:
        stream.closed = True

    def send_agent(self, stream: FakeStream, event: AgentEvent) -> None:
        stream.push(event)

    def close_agent(self, stream: FakeStream) -> None:
        stream.end()

    def registry(self, operation: RegistryOperation) -> None:
        self.operations.append(operation)
        if self.hold_registry:
            self.held.append(operation)
        else:
            self.registrar.apply(operation)
            self.applied(operation)

    def release_registry(self, count: int | None = None) -> None:
        """Apply held operations (the oldest `count`, or all), in order, as the shell's
        registry worker would, and tell the core."""
        while self.held and (count is None or count > 0):
            operation = self.held.pop(0)
            self.registrar.apply(operation)
            self.applied(operation)
            count = None if count is None else count - 1

    def send_operator(self, streams: list[FakeStream], event: Any) -> None:
        for stream in streams:
            if not stream.closed:
                stream.events.append(event)

    def close_operator(self, stream: FakeStream) -> None:
        stream.closed = True


class _Client:
    stream: FakeStream
    _cursor: int = 0

    def pending(self) -> list[Any]:
        return self.stream.events[self._cursor :]

    def next_event(self, type_: str | None = None) -> Any:
        """Return the next unread event (of `type_`, skipping others); AssertionError if none."""
        while self._cursor < len(self.stream.events):
            event = self.stream.events[self._cursor]
            self._cursor += 1
            if type_ is None or str(event.type) == type_:
                return event
        raise AssertionError(f"no {type_ or 'event'} pending; stream has {self.stream.types()}")

    def drop_next(self, type_: str) -> Any:
        """Remove the next unread event of `type_` as if it were lost in transit."""
        for i in range(self._cursor, len(self.stream.events)):
            if str(self.stream.events[i].type) == type_:
                return self.stream.events.pop(i)
        raise AssertionError(f"no {type_} pending")

    def types_pending(self) -> list[str]:
        """The types of the unread events (marks nothing read)."""
        return [str(e.type) for e in self.pending()]

    def all_of(self, type_: str) -> list[Any]:
        """Every unread event of `type_` (marks everything read)."""
        found = [e for e in self.pending() if str(e.type) == type_]
        self._cursor = len(self.stream.events)
        return found


class ScriptedScheduler(_Client):
    def __init__(self, cluster: MasterCluster, info: FrameworkInfo) -> None:
        self.cluster = cluster
        self.info = info
        self.framework_id: str | None = None
        self.stream_id: str | None = None
        self.stream = FakeStream()
        self._cursor = 0

    def subscribe(
        self,
        suppressed_roles: list[str] | None = None,
        offer_constraints: dict[str, Any] | None = None,
    ) -> Any:
        self.stream = FakeStream()
        self._cursor = 0
        if self.framework_id is not None:
            self.info.id = FrameworkID(value=self.framework_id)
        call = Call(
            type=CallType.SUBSCRIBE,
            framework_id=self.info.id,
            subscribe=Subscribe(
                framework_info=self.info,
                suppressed_roles=suppressed_roles or [],
                offer_constraints=offer_constraints,
            ),
        )
        result = self.cluster.master.subscribe(call, self.stream)
        if result.framework_id is not None:
            self.framework_id = result.framework_id
            self.stream_id = result.stream_id
        return result

    def disconnect(self) -> None:
        """The scheduler's connection breaks (no TEARDOWN)."""
        assert self.framework_id is not None
        self.stream.closed = True
        self.cluster.master.framework_disconnected(self.framework_id, self.stream)

    def call(self, type_: str, payload: dict[str, Any] | None = None, stream_id: str | None = "") -> int:
        """Send a call; `payload` is the JSON of `<type lowercased>`. Returns the HTTP status."""
        body: dict[str, Any] = {"type": type_, "framework_id": {"value": self.framework_id}}
        if payload is not None:
            body[type_.lower()] = payload
        call = convert(body, Call)
        return self.cluster.master.scheduler_call(call, self.stream_id if stream_id == "" else stream_id)

    def launch(self, offer: Offer | list[Offer], tasks: list[TaskInfo], refuse_seconds: float | None = None) -> int:
        offers = offer if isinstance(offer, list) else [offer]
        from mezzo.api.codec import to_builtins

        op = OfferOperation(type=OfferOperationType.LAUNCH, launch={"task_infos": tasks})  # type: ignore[arg-type]
        payload: dict[str, Any] = {
            "offer_ids": [to_builtins(o.id) for o in offers],
            "operations": [to_builtins(op)],
        }
        if refuse_seconds is not None:
            payload["filters"] = {"refuse_seconds": refuse_seconds}
        return self.call("ACCEPT", payload)

    def launch_group(
        self, offer: Offer | list[Offer], executor: ExecutorInfo, tasks: list[TaskInfo]
    ) -> int:
        """ACCEPT with one LAUNCH_GROUP of `tasks` under `executor`."""
        from mezzo.api.codec import to_builtins

        offers = offer if isinstance(offer, list) else [offer]
        op = {
            "type": "LAUNCH_GROUP",
            "launch_group": {
                "executor": to_builtins(executor),
                "task_group": {"tasks": [to_builtins(t) for t in tasks]},
            },
        }
        return self.call(
            "ACCEPT", {"offer_ids": [to_builtins(o.id) for o in offers], "operations": [op]}
        )

    def acknowledge(self, status: TaskStatus) -> int:
        from mezzo.api.codec import to_builtins

        return self.call(
            "ACKNOWLEDGE",
            {"agent_id": to_builtins(status.agent_id), "task_id": to_builtins(status.task_id),
             "uuid": to_builtins(status.uuid)},
        )


class ScriptedAgent(_Client):
    def __init__(self, cluster: MasterCluster, info: AgentInfo) -> None:
        self.cluster = cluster
        self.info = info
        self.agent_id: str | None = None
        self.stream = FakeStream()
        self._cursor = 0
        self.uuids = (i.to_bytes(16, "big") for i in itertools.count(1))

    def subscribe(self, **report: Any) -> Any:
        """(Re-)register; `report` holds the re-registration lists of AgentSubscribe."""
        self.stream = FakeStream()
        self._cursor = 0
        if self.agent_id is not None:
            self.info.id = AgentID(value=self.agent_id)
        result = self.cluster.master.agent_subscribe(AgentSubscribe(agent_info=self.info, **report), self.stream)
        if result.agent_id is not None:
            self.agent_id = result.agent_id
        return result

    def disconnect(self) -> None:
        assert self.agent_id is not None
        self.stream.closed = True
        self.cluster.master.agent_disconnected(self.agent_id, self.stream)

    def call(self, call: AgentCall) -> None:
        call.agent_id = AgentID(value=self.agent_id or "")
        self.cluster.master.agent_call(call)

    def update(self, task_id: str, state: str, *, framework_id: str, reliable: bool = True,
               latest_state: str | None = None, source: str = "SOURCE_EXECUTOR",
               reason: str | None = None) -> TaskStatus:
        status = TaskStatus(
            task_id=TaskID(value=task_id),
            state=TaskState(state),
            source=Source(source),
            reason=Reason(reason) if reason else None,
            uuid=next(self.uuids) if reliable else None,
            agent_id=AgentID(value=self.agent_id or ""),
            timestamp=self.cluster.clock.now(),
        )
        self.call(AgentCall(
            type=AgentCallType.STATUS_UPDATE,
            status_update=AgentStatusUpdate(
                framework_id=FrameworkID(value=framework_id), status=status,
                latest_state=TaskState(latest_state) if latest_state else None,
            ),
        ))
        return status

    def pong(self) -> None:
        self.call(AgentCall(type=AgentCallType.PONG))


def framework_info(name: str = "test", *, capabilities: list[str] = (), **fields: Any) -> FrameworkInfo:  # type: ignore[assignment]
    return FrameworkInfo(
        user=fields.pop("user", "tester"), name=name,
        capabilities=[FrameworkCapability(type=FrameworkCapabilityType(c)) for c in capabilities],
        **fields,
    )


def task_info(task_id: str, offer: Offer, resources: str = "cpus:0.1;mem:32", command: str = "true") -> TaskInfo:
    return TaskInfo(
        name=task_id, task_id=TaskID(value=task_id), agent_id=offer.agent_id,
        resources=Resources.parse(resources).to_wire(),
        command=CommandInfo(value=command),
    )


class MasterCluster:
    def __init__(self, options: MasterOptions | None = None, *, store: MemoryStore | None = None,
                 allocator: str = "hierarchical", clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.store = store or MemoryStore()
        self.registrar = Registrar(self.store)
        self.outbox = ClusterOutbox(self.registrar)
        self.ids = IdSource(master_id="M", seed=0)
        self.master = Master(
            clock=self.clock,
            ids=self.ids,
            allocator=create_allocator(allocator, AllocatorOptions()),
            outbox=self.outbox,
            master_info=MasterInfo(id="M", hostname="localhost", port=5050, version="1.11.0"),
            options=options or MasterOptions(),
        )
        self.outbox.applied = self.master.registry_applied
        self.master.recover(self.registrar.recover())
        self._hosts = itertools.count()

    def add_agent(self, resources: str = "cpus:4;mem:4096;disk:10000;ports:[31000-32000]",
                  hostname: str | None = None,
                  attributes: dict[str, str] | None = None) -> ScriptedAgent:
        """`attributes`: TEXT attributes name -> value."""
        info = AgentInfo(
            hostname=hostname or f"host{next(self._hosts)}",
            resources=[*Resources.parse(resources).to_wire()],
            attributes=[
                convert({"name": k, "type": "TEXT", "text": {"value": v}}, Attribute)
                for k, v in (attributes or {}).items()
            ],
        )
        agent = ScriptedAgent(self, info)
        agent.subscribe()
        return agent

    def add_scheduler(self, info: FrameworkInfo | None = None, subscribe: bool = True) -> ScriptedScheduler:
        sched = ScriptedScheduler(self, info or framework_info())
        if subscribe:
            sched.subscribe()
        return sched

    def allocate(self) -> int:
        return self.master.allocate()

    def advance(self, seconds: float) -> None:
        """Move the clock, stopping at each deadline on the way to run the due timers."""
        target = self.clock.now() + seconds
        while True:
            deadline = self.master.next_deadline()
            if deadline > target:
                break
            if deadline > self.clock.now():
                self.clock.set(deadline)
            self.master.tick()
            if self.master.next_deadline() <= self.clock.now():
                # Only a pending allocation can be due again right away; run it and go on.
                self.master.tick()
                if self.master.next_deadline() <= self.clock.now():
                    break
        self.clock.set(target)
        self.master.tick()
