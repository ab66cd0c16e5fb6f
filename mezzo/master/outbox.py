"""The Outbox: the only way effects leave the master's decision core.

The core never touches sockets or storage. It calls an `Outbox` to send an event on a
framework's or an agent's stream, to close a stream (optionally after a final ERROR event),
and to apply a named registry operation. Streams are opaque handles the shell passed in when
the subscription arrived; the core only stores and hands them back.

`RecordingOutbox` keeps everything in lists (registry operations are recorded, not applied
or reported): tests assert on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from mezzo.api import operator as op
from mezzo.api.internal import AgentEvent
from mezzo.api.scheduler import Event
from mezzo.master.registry import RegistryOperation


class Outbox(Protocol):
    def send_framework(self, stream: Any, event: Event) -> None:
        """Queue one event on a framework's subscription stream."""

    def close_framework(self, stream: Any) -> None:
        """End a framework's subscription stream (after the events already queued)."""

    def send_agent(self, stream: Any, event: AgentEvent) -> None:
        """Queue one event on an agent's stream."""

    def close_agent(self, stream: Any) -> None:
        """End an agent's stream."""

    def registry(self, operation: RegistryOperation) -> None:
        """Apply a registry operation, in order with the earlier ones, and then report it
        with `Master.registry_applied(operation)` (from within this call when the registry
        is synchronous; the HTTP shell applies them on a worker thread and reports later)."""

    def send_operator(self, streams: list[Any], event: op.Event) -> None:
        """Queue one operator event on each of these operator event streams."""

    def close_operator(self, stream: Any) -> None:
        """End an operator event stream."""


@dataclass
class RecordingOutbox:
    """An Outbox that records every effect (for tests and the in-process cluster)."""

    framework_events: list[tuple[Any, Event]] = field(default_factory=list)
    agent_events: list[tuple[Any, AgentEvent]] = field(default_factory=list)
    closed: list[Any] = field(default_factory=list)
    operations: list[RegistryOperation] = field(default_factory=list)
    operator_events: list[tuple[Any, op.Event]] = field(default_factory=list)

    def send_framework(self, stream: Any, event: Event) -> None:
        self.framework_events.append((stream, event))

    def close_framework(self, stream: Any) -> None:
        self.closed.append(stream)

    def send_agent(self, stream: Any, event: AgentEvent) -> None:
        self.agent_events.append((stream, event))

    def close_agent(self, stream: Any) -> None:
        self.closed.append(stream)

    def registry(self, operation: RegistryOperation) -> None:
        self.operations.append(operation)

    def send_operator(self, streams: list[Any], event: op.Event) -> None:
        self.operator_events.extend((stream, event) for stream in streams)

    def close_operator(self, stream: Any) -> None:
        self.closed.append(stream)
