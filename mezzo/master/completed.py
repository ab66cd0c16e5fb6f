"""The tasks a framework keeps after they ended: Mesos's `completed_tasks`, up to
`--max_completed_tasks_per_framework` per framework (1,000 by default), which the documents
(`/master/state`, GET_STATE, GET_TASKS, the operator stream's SUBSCRIBED) list with the live ones.

A completed task never changes, so it is not kept as its `TaskRecord` but as what the documents
show of it, rendered once when it completes (`views.completed_task`):

- its operator API `Task` entry as JSON, in three parts around its resources, the middle one
  the JSON of its shared resource shape (one `bytes` for all the tasks of a shape): a document
  joins the parts instead of encoding the task;
- for its `/master/state` entry, which shows its statuses in another shape, the fields of that
  entry (the entry's statuses are decoded from the kept JSON as a document is made);
- the few attributes the other readers use (ids, state, user: `/master/state-summary`, the
  authorization filters, `/master/tasks`).

At 9,000 agents a document held 200,000 completed tasks (200 frameworks) beside 72,000 running
ones; each cost ~2.5 µs per document to render, and is now a join (GET_STATE) or a decode of
its statuses and an encode (`/master/state`). The object is no bigger than the record it
replaces (issue 12: ≤ 2 KB per task, the completed ones counted against the running: a
`/master/state` entry kept beside the `Task` one would add ~0.2 KB), and it is not tracked by
the garbage collector (it holds only strings, bytes, an enum and shared immutable values: no cycle
can go through it).
"""

from __future__ import annotations

from typing import Any

import msgspec

from mezzo.api.common import TaskState, TaskStatus
from mezzo.resources import Resources


class CompletedTask(msgspec.Struct, frozen=True, gc=False):
    """A completed task, as its framework keeps it (see the module's docstring)."""

    task_id: str
    name: str
    framework_id: str
    executor_id: str | None
    agent_id: str
    state: TaskState
    user: str | None
    role: str
    resources: Resources  # shared per shape (`mezzo.master.records.shared_resources`)
    # The kept `TaskInfo` fields a `/master/state` entry copies (`views._InfoExtras`, shared
    # per distinct info).
    extras: Any
    # The operator API `Task` entry: wire_head + wire_resources + wire_tail.
    wire_head: bytes
    wire_resources: bytes  # shared per resource shape
    wire_tail: bytes

    def wire_entry(self) -> bytes:
        """The JSON of the task's operator API `Task` (what `TaskRecord.to_wire` encoded)."""
        return b"".join((self.wire_head, self.wire_resources, self.wire_tail))

    @property
    def statuses(self) -> list[TaskStatus]:
        """The task's status updates (without `data`), oldest first, as
        `TaskRecord.statuses`."""
        return _STATUSES.decode(self.wire_entry()).statuses

    def first_status(self) -> TaskStatus | None:
        statuses = self.statuses
        return statuses[0] if statuses else None

    def latest_status(self) -> TaskStatus | None:
        statuses = self.statuses
        return statuses[-1] if statuses else None


class _Statuses(msgspec.Struct):
    statuses: list[TaskStatus] = []


_STATUSES = msgspec.json.Decoder(_Statuses)
