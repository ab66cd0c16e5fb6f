"""The status update manager core (no I/O): order, one in flight, backoff, acks, duplicates,
recovery from the checkpoint log; plus flag parsing and resource discovery."""

from __future__ import annotations

import pytest

from mezzo.agent.flags import AgentFlags, discover_resources, parse_attributes
from mezzo.agent.updates import StatusUpdateManager
from mezzo.api.common import FrameworkID, TaskID, TaskState, TaskStatus, ValueType
from mezzo.core.errors import ConfigError

FW = FrameworkID(value="f1")


def status(task: str, state: TaskState, n: int) -> TaskStatus:
    return TaskStatus(task_id=TaskID(value=task), state=state, uuid=bytes([n]) * 16)


def manager(**kw: float) -> StatusUpdateManager:
    m = StatusUpdateManager(initial=kw.get("initial", 10.0), maximum=kw.get("maximum", 600.0))
    m.connected = True
    return m


def test_only_the_head_is_in_flight_and_acks_release_the_next() -> None:
    m = manager()
    new, out = m.update(FW, status("t", TaskState.TASK_STARTING, 1), now=0)
    assert new and [f.status.state for f in out] == [TaskState.TASK_STARTING]
    new, out = m.update(FW, status("t", TaskState.TASK_RUNNING, 2), now=0)
    assert new and out == []  # queued behind the head
    acked, out = m.acknowledge(TaskID(value="t"), bytes([1]) * 16, now=1)
    assert acked is not None and acked.state == TaskState.TASK_STARTING
    assert [f.status.state for f in out] == [TaskState.TASK_RUNNING]
    # The forward reports the latest state, which may be ahead of the update in flight.
    m.update(FW, status("t", TaskState.TASK_FINISHED, 3), now=1)
    assert m.head(TaskID(value="t")).state == TaskState.TASK_RUNNING
    acked, out = m.acknowledge(TaskID(value="t"), bytes([2]) * 16, now=2)
    assert out[0].status.state == TaskState.TASK_FINISHED
    assert out[0].latest_state == TaskState.TASK_FINISHED
    acked, out = m.acknowledge(TaskID(value="t"), bytes([3]) * 16, now=3)
    assert acked is not None and not m.has_stream(TaskID(value="t"))


def test_duplicates_and_stale_acks_are_ignored() -> None:
    m = manager()
    m.update(FW, status("t", TaskState.TASK_RUNNING, 1), now=0)
    assert m.update(FW, status("t", TaskState.TASK_RUNNING, 1), now=0) == (False, [])
    assert m.acknowledge(TaskID(value="t"), bytes([9]) * 16, now=0) == (None, [])
    assert m.acknowledge(TaskID(value="other"), bytes([1]) * 16, now=0) == (None, [])


def test_no_update_after_the_terminal_one() -> None:
    m = manager()
    m.update(FW, status("t", TaskState.TASK_FAILED, 1), now=0)
    with pytest.raises(ValueError):
        m.update(FW, status("t", TaskState.TASK_RUNNING, 2), now=0)


def test_resend_backs_off_exponentially_up_to_the_maximum() -> None:
    m = manager(initial=10.0, maximum=40.0)
    m.update(FW, status("t", TaskState.TASK_RUNNING, 1), now=0)
    sent_at = []
    now = 0.0
    while now < 200:
        deadline = m.next_deadline()
        assert deadline is not None
        now = deadline
        if m.due(now):
            sent_at.append(now)
    assert sent_at[:5] == [10, 30, 70, 110, 150]  # +10, +20, +40, +40 (capped)


def test_nothing_is_sent_while_disconnected_and_everything_on_reconnect() -> None:
    m = manager()
    m.connected = False
    assert m.update(FW, status("a", TaskState.TASK_RUNNING, 1), now=0) == (True, [])
    m.update(FW, status("b", TaskState.TASK_RUNNING, 2), now=0)
    assert m.due(100) == []
    m.connected = True
    assert {f.status.task_id.value for f in m.resend_all(100)} == {"a", "b"}


def test_recover_stream_replays_the_checkpoint_log() -> None:
    m = manager()
    s1, s2, s3 = (status("t", st, n) for n, st in enumerate(
        [TaskState.TASK_STARTING, TaskState.TASK_RUNNING, TaskState.TASK_FINISHED], start=1))
    m.recover_stream(FW, [("update", s1), ("ack", s1.uuid), ("update", s2), ("update", s3)])
    assert [s.state for s in m.pending(TaskID(value="t"))] == [
        TaskState.TASK_RUNNING, TaskState.TASK_FINISHED]
    assert [f.status.uuid for f in m.resend_all(0)] == [s2.uuid]
    # A fully acknowledged terminal stream is gone after replay.
    m2 = manager()
    m2.recover_stream(FW, [("update", s3), ("ack", s3.uuid)])
    assert not m2.has_stream(TaskID(value="t"))


def test_forget_framework() -> None:
    m = manager()
    m.update(FW, status("t", TaskState.TASK_RUNNING, 1), now=0)
    m.forget_framework(FW)
    assert len(m) == 0 and m.next_deadline() is None


def test_attributes_and_resources(tmp_path) -> None:
    attrs = {a.name: a for a in parse_attributes("rack:r1;level:10;keys:[1-10,20-30]")}
    assert attrs["rack"].type == ValueType.TEXT and attrs["rack"].text.value == "r1"
    assert attrs["level"].type == ValueType.SCALAR and attrs["level"].scalar.value == 10
    assert [(r.begin, r.end) for r in attrs["keys"].ranges.range] == [(1, 10), (20, 30)]
    with pytest.raises(ConfigError):
        parse_attributes("norack")
    flags = AgentFlags(work_dir=str(tmp_path), resources="cpus:3;gpus:0")
    res = discover_resources(flags)
    assert res.cpus() == 3 and res.mem() > 0 and res.disk() > 0
    assert res.ports() == [(31000, 32000)]
    flags.resources = "file://" + str(tmp_path / "missing")
    with pytest.raises(ConfigError):
        discover_resources(flags)
    (tmp_path / "r.json").write_text(
        '[{"name":"cpus","type":"SCALAR","scalar":{"value":2}}]')
    flags.resources = "file://" + str(tmp_path / "r.json")
    assert discover_resources(flags).cpus() == 2
    with pytest.raises(ConfigError):
        AgentFlags(work_dir="").validate()
