"""The status update manager: reliable, ordered delivery of task status updates to the master.

A pure decision core (no I/O, time passed in), after Mesos's `TaskStatusUpdateManager`:

- one stream per task; updates are delivered strictly in order and only the head of a stream
  is in flight: it is (re)sent until the master relays the scheduler's acknowledgement for its
  uuid, then the next one becomes the head and is sent;
- resends back off exponentially: `initial` (Mesos: 10 s), doubling, at most `maximum` (10 min);
- an update whose uuid the stream has already seen is a duplicate and is ignored;
- a stream whose terminal update is acknowledged is finished and forgotten.

The shell calls `update`, `acknowledge`, `due(now)` (from a timer armed at `next_deadline()`)
and `resend_all` (after (re)connecting to a master); every call returns the `Forward`s to send.
Checkpointing is the shell's: it appends each accepted update and acknowledgement to the
task's `task.updates` log and replays them with `recover_stream` after a restart.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from mezzo.api.common import FrameworkID, TaskID, TaskState, TaskStatus, is_terminal


@dataclass(frozen=True)
class Forward:
    """Send this update to the master (as an AgentStatusUpdate)."""

    framework_id: FrameworkID
    status: TaskStatus
    latest_state: TaskState


@dataclass
class _Stream:
    framework_id: FrameworkID
    task_id: TaskID
    pending: deque[TaskStatus] = field(default_factory=deque)
    seen: set[bytes] = field(default_factory=set)
    latest_state: TaskState | None = None
    terminated: bool = False  # the terminal update was acknowledged
    next_retry: float | None = None
    interval: float = 0.0


class StatusUpdateManager:
    """Per-task update streams (see the module docstring)."""

    def __init__(self, initial: float = 10.0, maximum: float = 600.0) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("retry intervals need 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self._streams: dict[TaskID, _Stream] = {}
        # The streams with unacknowledged updates (what `due` and `next_deadline` look at, so
        # their cost does not grow with the number of quiet tasks).
        self._in_flight: dict[TaskID, _Stream] = {}
        self.connected = False  # the shell says whether a master is there to send to

    # --- inputs -------------------------------------------------------------------------

    def update(
        self, framework_id: FrameworkID, status: TaskStatus, now: float
    ) -> tuple[bool, list[Forward]]:
        """Accept a new update (with a uuid). Returns (new, what to send now): `new` is False
        for a duplicate. Raises ValueError for an update the stream cannot take (no uuid, or
        one after the task's terminal update)."""
        if status.uuid is None:
            raise ValueError("a reliable status update needs a uuid")
        stream = self._streams.get(status.task_id)
        if stream is None:
            stream = self._streams[status.task_id] = _Stream(framework_id, status.task_id)
        if status.uuid in stream.seen:
            return False, []
        if stream.terminated or (
            stream.latest_state is not None and is_terminal(stream.latest_state)
        ):
            raise ValueError(f"task {status.task_id} already has a terminal update")
        stream.seen.add(status.uuid)
        stream.pending.append(status)
        stream.latest_state = status.state
        self._in_flight[stream.task_id] = stream
        if len(stream.pending) == 1:
            return True, self._send_head(stream, now)
        return True, []

    def acknowledge(
        self, task_id: TaskID, uuid: bytes, now: float
    ) -> tuple[TaskStatus | None, list[Forward]]:
        """The scheduler acknowledged `uuid`. Returns (the acknowledged update, updates to send
        now); (None, []) for an acknowledgement that does not match the head (a stale
        duplicate), which is ignored."""
        stream = self._streams.get(task_id)
        if stream is None or not stream.pending or stream.pending[0].uuid != uuid:
            return None, []
        acked = stream.pending.popleft()
        if is_terminal(acked.state):
            stream.terminated = True
            stream.pending.clear()
            del self._streams[task_id]
            self._in_flight.pop(task_id, None)
            return acked, []
        stream.next_retry = None
        if stream.pending:
            return acked, self._send_head(stream, now)
        self._in_flight.pop(task_id, None)
        return acked, []

    def due(self, now: float) -> list[Forward]:
        """Heads whose retry time has come."""
        out: list[Forward] = []
        if not self.connected:
            return out
        for stream in self._in_flight.values():
            if stream.pending and stream.next_retry is not None and stream.next_retry <= now:
                stream.interval = min(stream.interval * 2, self.maximum)
                stream.next_retry = now + stream.interval
                out.append(self._forward(stream))
        return out

    def resend_all(self, now: float) -> list[Forward]:
        """After (re)connecting: send every head again, restarting its backoff."""
        out = []
        for stream in self._in_flight.values():
            if stream.pending:
                out.extend(self._send_head(stream, now))
        return out

    def recover_stream(
        self, framework_id: FrameworkID, records: list[tuple[str, TaskStatus | bytes]]
    ) -> None:
        """Rebuild a stream from its checkpoint log: ("update", status) and ("ack", uuid)."""
        for kind, value in records:
            if kind == "update":
                assert isinstance(value, TaskStatus)
                stream = self._streams.get(value.task_id)
                if stream is None:
                    stream = self._streams[value.task_id] = _Stream(framework_id, value.task_id)
                if value.uuid in stream.seen or value.uuid is None:
                    continue
                stream.seen.add(value.uuid)
                stream.pending.append(value)
                stream.latest_state = value.state
                self._in_flight[stream.task_id] = stream
            else:
                assert isinstance(value, bytes)
                for stream in list(self._in_flight.values()):
                    if stream.pending and stream.pending[0].uuid == value:
                        acked = stream.pending.popleft()
                        if is_terminal(acked.state):
                            del self._streams[stream.task_id]
                        if is_terminal(acked.state) or not stream.pending:
                            del self._in_flight[stream.task_id]
                        break

    def forget_framework(self, framework_id: FrameworkID) -> None:
        """Drop every stream of a framework that was shut down (Mesos cleans them up too)."""
        for task_id in [t for t, s in self._streams.items() if s.framework_id == framework_id]:
            del self._streams[task_id]
            self._in_flight.pop(task_id, None)

    # --- queries ------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When `due` next has something to send; None while disconnected (`resend_all`
        sends everything on reconnection)."""
        if not self.connected:
            return None
        deadlines = [s.next_retry for s in self._in_flight.values() if s.pending and s.next_retry]
        return min(deadlines) if deadlines else None

    def pending(self, task_id: TaskID) -> list[TaskStatus]:
        """Unacknowledged updates of a task, oldest (in flight) first."""
        stream = self._streams.get(task_id)
        return list(stream.pending) if stream else []

    def head(self, task_id: TaskID) -> TaskStatus | None:
        stream = self._streams.get(task_id)
        return stream.pending[0] if stream and stream.pending else None

    def has_stream(self, task_id: TaskID) -> bool:
        return task_id in self._streams

    def __len__(self) -> int:
        return len(self._streams)

    # --- internals ----------------------------------------------------------------------

    def _send_head(self, stream: _Stream, now: float) -> list[Forward]:
        stream.interval = self.initial
        stream.next_retry = now + self.initial
        if not self.connected:
            return []
        return [self._forward(stream)]

    @staticmethod
    def _forward(stream: _Stream) -> Forward:
        assert stream.latest_state is not None
        return Forward(stream.framework_id, stream.pending[0], stream.latest_state)
