"""The master's gauges kept as its state changes, so that `/metrics/snapshot` does not walk
every agent, task and offer on the event loop (issue 12: 0.23 s per snapshot at 9,000 agents
and 23,000 tasks, a monitoring poll starving the master).

- `TalliedDict`: a dict of records that keeps a `ScalarTally` of one `Resources` of each value
  (the master's `agents` by their totals, its `offers` by their resources). Entries come and
  go through the ordinary dict operations; a value whose measured resources change in place
  says so with `remeasure` (an agent's total after RESERVE or CREATE).
- `TaskIndex`: a framework's `tasks` (task id -> `TaskRecord`), with the number of its tasks in
  each state and a `ScalarTally` of the resources of those not `recovered` (still allocated).
  A task in an index tells it when its `state` or `recovered` changes (`TaskRecord`'s
  setters), so the counts follow every change wherever the core makes it.

Both are exact (integer counts and fixed-point sums): a snapshot reads the same values as a
walk over the collections would give (tests/test_master_gauges.py checks it against such a
walk after each step of many scenarios).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from mezzo.api.common import TaskState
from mezzo.resources import Resources
from mezzo.resources.tally import ScalarTally

V = TypeVar("V")
_MISSING: Any = object()


class TalliedDict(dict[str, V], Generic[V]):
    """A dict whose values' `measure(value)` resources are summed in `tally`."""

    def __init__(self, measure: Callable[[V], Resources]) -> None:
        super().__init__()
        self.measure = measure
        self.tally = ScalarTally()

    def __setitem__(self, key: str, value: V) -> None:
        old = dict.get(self, key, _MISSING)
        if old is not _MISSING:
            self.tally.remove(self.measure(old))
        dict.__setitem__(self, key, value)
        self.tally.add(self.measure(value))

    def __delitem__(self, key: str) -> None:
        value = dict.pop(self, key)
        self.tally.remove(self.measure(value))

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        value = dict.pop(self, key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise KeyError(key)
            return default
        self.tally.remove(self.measure(value))
        return value

    def popitem(self) -> tuple[str, V]:
        key, value = dict.popitem(self)
        self.tally.remove(self.measure(value))
        return key, value

    def clear(self) -> None:
        dict.clear(self)
        self.tally = ScalarTally()

    def setdefault(self, key: str, default: Any = None) -> V:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def remeasure(self, key: str, value: V, old: Resources) -> None:
        """`value`'s measured resources were `old` and changed in place (nothing if `value`
        is not this dict's entry for `key`)."""
        if dict.get(self, key) is value:
            self.tally.remove(old)
            self.tally.add(self.measure(value))


class TaskIndex(dict[str, Any]):
    """A framework's tasks by id, with `states` (state -> count) and `allocated` (the tally of
    the resources of the tasks not yet recovered). Holds `TaskRecord`s; a record sits in one
    index at a time (its `_index`: this index's weak reference `ref`, so that records, which
    the garbage collector does not track, never close a cycle with their index)."""

    def __init__(self, tasks: Iterable[tuple[str, Any]] = ()) -> None:
        super().__init__()
        # One weak reference shared by every record in the index.
        self.ref = weakref.ref(self)
        self.states: dict[TaskState, int] = {}
        self.allocated = ScalarTally()
        for key, task in tasks:
            self[key] = task

    # -- what a task in the index reports (before the change is made)

    def moved(self, task: Any, state: TaskState, recovered: bool) -> None:
        """`task` goes from its current state and `recovered` to these."""
        old_state, old_recovered = task._state, task._recovered
        if state != old_state:
            states = self.states
            states[old_state] -= 1
            states[state] = states.get(state, 0) + 1
        if recovered != old_recovered:
            self.allocated.add(task.resources, -1 if recovered else 1)

    def _enter(self, task: Any) -> None:
        task._index = self.ref
        self.states[task._state] = self.states.get(task._state, 0) + 1
        if not task._recovered:
            self.allocated.add(task.resources)

    def _leave(self, task: Any) -> None:
        if task._index is self.ref:
            task._index = None
        self.states[task._state] -= 1
        if not task._recovered:
            self.allocated.remove(task.resources)

    # -- the dict's mutations

    def __setitem__(self, key: str, task: Any) -> None:
        old = dict.get(self, key)
        if old is task:
            return
        if old is not None:
            self._leave(old)
        dict.__setitem__(self, key, task)
        self._enter(task)

    def __delitem__(self, key: str) -> None:
        self._leave(dict.pop(self, key))

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        task = dict.pop(self, key, _MISSING)
        if task is _MISSING:
            if default is _MISSING:
                raise KeyError(key)
            return default
        self._leave(task)
        return task

    def popitem(self) -> tuple[str, Any]:
        key, task = dict.popitem(self)
        self._leave(task)
        return key, task

    def clear(self) -> None:
        for task in dict.values(self):
            if task._index is self.ref:
                task._index = None
        dict.clear(self)
        self.states = {}
        self.allocated = ScalarTally()

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, task in dict(*args, **kwargs).items():
            self[key] = task


def task_counts(tasks: dict[str, Any]) -> tuple[dict[TaskState, int], ScalarTally]:
    """(count per state, tally of the unrecovered tasks' resources) of a framework's `tasks`:
    the index's own when it is one, else counted (a filtered copy made for a view)."""
    if isinstance(tasks, TaskIndex):
        return tasks.states, tasks.allocated
    states: dict[TaskState, int] = {}
    for task in tasks.values():
        states[task.state] = states.get(task.state, 0) + 1
    return states, ScalarTally.of(t.resources for t in tasks.values() if not t.recovered)
