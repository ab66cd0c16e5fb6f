"""The master's compact task record (`mezzo.master.records.TaskRecord`): what it keeps as JSON
comes back as it went in, and tasks of one resource shape share one `Resources`."""

from __future__ import annotations

import msgspec
import pytest

from mezzo.api.codec import convert
from mezzo.api.common import TaskID, TaskInfo, TaskState, TaskStatus
from mezzo.master.records import TaskRecord
from mezzo.resources import Resources

INFO = {
    "name": "web server", "task_id": {"value": "t-1"}, "agent_id": {"value": "A-S1"},
    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}],
    "command": {"shell": True, "value": "sleep 30", "user": "alice"},
    "labels": {"labels": [{"key": "tier", "value": "web"}]},
    "kill_policy": {"grace_period": {"nanoseconds": 5000000000}},
    "data": "aGVsbG8=",
}


def record(info: dict[str, object] | None = None, resources: str = "cpus:1;mem:64") -> TaskRecord:
    return TaskRecord.create(
        info=convert(info or INFO, TaskInfo), framework_id="F", agent_id="A-S1",
        executor_id=None, role="*", resources=Resources.parse(resources).allocate("*"),
    )


def test_info_comes_back_without_data() -> None:
    task = record()
    info = task.info
    expected = convert(INFO, TaskInfo)
    assert info.name == "web server" and info.task_id.value == "t-1" and info.agent_id.value == "A-S1"
    assert info.command == expected.command and info.labels == expected.labels
    assert info.kill_policy == expected.kill_policy
    assert info.data is None  # not kept, as Mesos's master does not keep it
    assert Resources.from_wire(info.resources) == task.resources
    assert task.task_id == "t-1" and task.name == "web server"


def test_minimal_info() -> None:
    task = record({"name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "A-S1"}})
    assert task.info.name == "t" and task.info.command is None
    assert task.name is task.task_id  # one string when the name is the id


def test_statuses_round_trip_and_drop_data() -> None:
    task = record()
    running = TaskStatus(task_id=TaskID(value="t-1"), state=TaskState.TASK_RUNNING, uuid=b"\x01" * 16, timestamp=12.5,
                         data=b"payload", message="ok")
    task.add_status(running)
    assert task.status_count() == 1
    got = task.latest_status()
    assert got == msgspec.structs.replace(running, data=None)
    assert task.statuses == [got] and task.first_status() == got
    task.statuses = [running, running]
    assert task.status_count() == 2 and task.to_wire(None).statuses == [got, got]


def test_one_resources_per_shape() -> None:
    a, b = record(), record()
    assert a.resources is b.resources
    c = record(resources="cpus:2;mem:64")
    assert c.resources is not a.resources and c.resources != a.resources


def test_sum_resources_is_the_plain_sum() -> None:
    import functools
    import operator

    from mezzo.master.views import sum_resources

    shapes = [Resources.parse(t) for t in
              ("cpus:1;mem:64", "cpus:0.1;mem:32", "cpus:2;ports:[31000-31005]", "disk:5")]
    items = [shapes[i % 4] for i in range(37)] + [Resources.parse("cpus:1;mem:64")] * 3
    items += [Resources.parse("cpus:0.001")] * 999
    expected = functools.reduce(operator.add, items, Resources())
    assert sum_resources(items) == expected
    assert sum_resources([]) == Resources()


def test_resources_from_wire_is_remembered_per_shape_and_still_validates() -> None:
    """Re-registering agents report thousands of tasks of a few shapes: one conversion each."""
    from mezzo.api.common import Resource
    from mezzo.core.errors import ValidationError
    from mezzo.master.records import resources_from_wire

    first = Resources.parse("cpus:1;mem:2048").to_wire()
    again = Resources.parse("cpus:1;mem:2048").to_wire()
    assert resources_from_wire(first) is resources_from_wire(again)
    assert resources_from_wire(first) == Resources.parse("cpus:1;mem:2048")
    assert resources_from_wire(Resources.parse("cpus:2").to_wire()) == Resources.parse("cpus:2")
    bad = [convert({"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}, Resource)]
    for _ in range(2):  # refused each time, never remembered as valid
        with pytest.raises(ValidationError):
            resources_from_wire(bad)


def test_records_are_not_tracked_by_the_collector_and_close_no_cycle() -> None:
    """Issue 12: a full collection must not walk every task. A record is untracked
    (`gc=False`), and sound only because nothing it holds leads back to it: a framework's
    `TaskIndex` dropped with tasks in it is freed by reference counting alone."""
    import gc
    import weakref

    from mezzo.master.gauges import TaskIndex

    task = record()
    task.add_status(TaskStatus(task_id=TaskID(value="t-1"), state=TaskState.TASK_RUNNING))
    index = TaskIndex()
    index["t-1"] = task
    task.state = TaskState.TASK_RUNNING  # told to the index through its weak reference
    assert index.states[TaskState.TASK_RUNNING] == 1 and index.states[TaskState.TASK_STAGING] == 0
    assert not gc.is_tracked(task)
    gc.collect()
    assert not gc.is_tracked(task.status_json())
    alive = weakref.ref(index)
    gc.disable()
    try:
        del index
        assert alive() is None  # no cycle held it: freed without a collection
    finally:
        gc.enable()
    task.state = TaskState.TASK_FINISHED  # its index is gone: nothing to tell
    assert task.state == TaskState.TASK_FINISHED
