"""The command executor's decisions, event in -> actions out, on a FakeClock (no processes).

`CommandExecutorCore` is fed typed events with an explicit `now`; each test asserts the exact
actions. The loop that carries them out (sockets, posix_spawn, pidfd) is exercised by the
real-process tests in tests/test_executor_command.py. At the end, the parity tests pin the
executor's deliberate stdlib-only copies of Mesos duration parsing and RecordIO framing
(`command_wire`) to mezzo's own (`mezzo.core.durations`, `mezzo.api.recordio`).
"""

from __future__ import annotations

import signal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mezzo.api.recordio import RecordIODecoder, encode_record
from mezzo.core.clock import FakeClock
from mezzo.core.durations import parse_duration as mezzo_parse_duration
from mezzo.executor import command_wire as wire
from mezzo.executor.command_core import CommandExecutorCore, Config
from mezzo.executor.command_events import (
    Acknowledged,
    AgentError,
    Connected,
    ConnectFailed,
    Debug,
    Disconnected,
    Exit,
    Kill,
    Launch,
    LaunchGroup,
    Log,
    PostUpdate,
    ProcessExited,
    Shutdown,
    Signal,
    Spawn,
    Spawned,
    SpawnFailed,
    Subscribe,
    Subscribed,
    Tick,
    UpdateAccepted,
    UpdateRefused,
    decode_event,
)
from mezzo.executor.testing import command_task

PID = 4242
AGENT_ID = {"value": "agent-1"}


def exited(code: int) -> int:
    """The wait status of a process that exited with `code`."""
    return code << 8


def killed_by(sig: int) -> int:
    """The wait status of a process killed by `sig`."""
    return sig


class Harness:
    """One core on a FakeClock, with counted uuids and a fixed wall clock."""

    def __init__(self, **config: Any) -> None:
        self.clock = FakeClock(start=0.0)  # monotonic() == now(): exact deadlines
        self.minted = 0
        self.core = CommandExecutorCore(
            Config("fw-1", "ex-1", **config),
            self.clock.monotonic(),
            new_uuid=self._uuid,
            wall_clock=lambda: 1_700_000_123.5,
        )

    def _uuid(self) -> bytes:
        self.minted += 1
        return self.minted.to_bytes(16, "big")

    def handle(self, event: object) -> list:
        """The core's actions but its Debug lines (shown only with MEZZO_EXECUTOR_VERBOSE)."""
        actions = self.core.handle(event, self.clock.monotonic())
        return [a for a in actions if not isinstance(a, Debug)]

    def advance_to_deadline(self) -> list:
        deadline = self.core.next_deadline()
        assert deadline is not None
        self.clock.set(deadline)
        return self.handle(Tick())

    def subscribe(self, *, killing: bool = False) -> None:
        [subscribe] = self.handle(Tick())
        assert isinstance(subscribe, Subscribe)
        assert self.handle(Connected()) == []
        assert self.handle(Subscribed(AGENT_ID, killing)) == []

    def start(self, task: dict, *, killing: bool = False) -> None:
        """Subscribed, launched, spawned as PID, every update taken (not acknowledged)."""
        self.subscribe(killing=killing)
        actions = self.handle(Launch(task))
        assert states(actions) == ["TASK_STARTING"]
        assert self.accept(actions) == []
        assert states(self.accept(self.handle(Spawned(PID)))) == []

    def accept(self, actions: list) -> list:
        """Answer every PostUpdate with UpdateAccepted; the spawns and others are returned."""
        rest = []
        for action in actions:
            if isinstance(action, PostUpdate):
                rest += self.accept(self.handle(UpdateAccepted(action.uuid)))
            elif not isinstance(action, Spawn):
                rest.append(action)
        return rest

    def ack_all(self) -> list:
        actions = []
        for uuid, status in list(self.core.unacked.items()):
            actions += self.handle(Acknowledged(status["task_id"].get("value"), uuid))
        return actions


def states(actions: list) -> list[str]:
    return [a.call["update"]["status"]["state"] for a in actions if isinstance(a, PostUpdate)]


def non_logs(actions: list) -> list:
    return [a for a in actions if not isinstance(a, Log)]


# ----------------------------------------------------------------------------- subscription


def test_first_tick_subscribes_with_nothing_pending() -> None:
    h = Harness()
    assert h.handle(Tick()) == [
        Subscribe(
            {
                "type": "SUBSCRIBE",
                "framework_id": {"value": "fw-1"},
                "executor_id": {"value": "ex-1"},
                "subscribe": {"unacknowledged_tasks": [], "unacknowledged_updates": []},
            }
        )
    ]
    # While the SUBSCRIBE is out, only the give-up deadline is pending (60 s, not checkpointing).
    assert h.core.next_deadline() == 60.0
    assert h.handle(Tick()) == []  # no second SUBSCRIBE while one is out
    assert h.handle(Connected()) == []
    assert h.core.next_deadline() is None


def test_failed_subscribe_backs_off_exponentially_up_to_the_maximum() -> None:
    h = Harness(backoff_max=0.3)
    delays = []
    actions = h.handle(Tick())
    for _ in range(5):
        assert [type(a) for a in actions] == [Subscribe]
        failed_at = h.clock.monotonic()
        assert h.handle(ConnectFailed("connection refused", 1.0)) == []
        deadline = h.core.next_deadline()
        assert deadline is not None
        delays.append(round(deadline - failed_at, 6))
        actions = h.advance_to_deadline()
    assert delays == [0.05, 0.1, 0.2, 0.3, 0.3]


def test_jitter_scales_the_retry_delay() -> None:
    h = Harness()
    h.handle(Tick())
    actions = h.core.handle(ConnectFailed("refused", 0.5), 0.0)
    assert actions == [Debug("subscribe failed (refused); retrying in 0.03s")]
    assert h.core.next_deadline() == pytest.approx(0.025)


def test_never_subscribed_gives_up_after_a_minute_without_checkpointing() -> None:
    h = Harness()
    h.handle(Tick())
    h.clock.advance(59.9)
    assert non_logs(h.handle(ConnectFailed("refused", 1.0))) == []
    h.clock.advance(0.1)
    actions = h.handle(Tick())
    assert actions[-1] == Exit(1)
    assert any("could not (re)subscribe" in a.message for a in actions if isinstance(a, Log))
    assert h.handle(Tick()) == []  # after Exit nothing more happens
    assert h.core.next_deadline() is None


def test_never_subscribed_with_checkpointing_waits_for_the_recovery_timeout() -> None:
    h = Harness(checkpoint=True, recovery_timeout=120.0)
    h.handle(Tick())
    h.handle(ConnectFailed("refused", 1.0))
    h.clock.advance(61)
    assert [type(a) for a in h.handle(Tick())] == [Subscribe]
    h.handle(ConnectFailed("refused", 1.0))
    h.clock.advance(59)
    assert h.handle(Tick())[-1] == Exit(1)


def test_shutdown_before_any_task_exits_at_once() -> None:
    h = Harness()
    h.subscribe()
    assert h.handle(Shutdown()) == [Exit(0)]


# ----------------------------------------------------------------------------- launch


def test_launch_sends_starting_then_spawns_the_shell_command() -> None:
    h = Harness()
    h.subscribe()
    task = command_task("t1", "echo hi", env={"GREETING": "hello"})
    actions = h.handle(Launch(task))
    assert [type(a) for a in actions] == [PostUpdate, Spawn]
    starting = actions[0].call
    assert starting == {
        "type": "UPDATE",
        "framework_id": {"value": "fw-1"},
        "executor_id": {"value": "ex-1"},
        "update": {
            "status": {
                "task_id": {"value": "t1"},
                "state": "TASK_STARTING",
                "source": "SOURCE_EXECUTOR",
                "executor_id": {"value": "ex-1"},
                "uuid": wire.b64((1).to_bytes(16, "big")),
                "timestamp": 1_700_000_123.5,
                "agent_id": AGENT_ID,
            }
        },
    }
    assert actions[1] == Spawn("/bin/sh", ["/bin/sh", "-c", "echo hi"], {"GREETING": "hello"})
    # The Spawn comes after the STARTING update; RUNNING waits for the STARTING answer.
    assert h.handle(UpdateAccepted(actions[0].uuid)) == []
    assert states(h.handle(Spawned(PID))) == ["TASK_RUNNING"]
    assert h.core.pid == PID


def test_shell_false_spawns_value_with_arguments_as_argv() -> None:
    h = Harness()
    h.subscribe()
    task = command_task("t1", "printf", shell=False, arguments=["printf", "%s", "a b"])
    assert h.handle(Launch(task))[1] == Spawn("printf", ["printf", "%s", "a b"], {})
    task = command_task("t2", "/bin/true", shell=False)
    h2 = Harness()
    h2.subscribe()
    assert h2.handle(Launch(task))[1] == Spawn("/bin/true", ["/bin/true"], {})


def test_a_command_without_value_fails_the_task_without_spawning() -> None:
    h = Harness()
    h.subscribe()
    task = command_task("t1", "")
    actions = h.handle(Launch(task))
    assert states(actions) == ["TASK_STARTING"]
    assert h.accept(actions) == []  # FAILED was queued behind STARTING and posted on its answer
    [failed] = [s for s in h.core.unacked.values() if s["state"] == "TASK_FAILED"]
    assert failed["message"] == "Failed to launch command: the task's command has no value"
    assert h.ack_all() == [Exit(0)]


def test_spawn_failure_fails_the_task_and_exits_once_acknowledged() -> None:
    h = Harness()
    h.subscribe()
    h.accept(h.handle(Launch(command_task("t1", "/nope", shell=False))))
    actions = h.handle(SpawnFailed("[Errno 2] No such file or directory: '/nope'"))
    assert states(actions) == ["TASK_FAILED"]
    assert actions[0].call["update"]["status"]["message"] == (
        "Failed to launch command: [Errno 2] No such file or directory: '/nope'"
    )
    h.accept(actions)
    assert h.ack_all() == [Exit(0)]


@pytest.mark.parametrize(
    ("status", "state", "message"),
    [
        (exited(0), "TASK_FINISHED", "Command exited with status 0"),
        (exited(3), "TASK_FAILED", "Command exited with status 3"),
        (killed_by(signal.SIGSEGV), "TASK_FAILED", "Command terminated with signal SIGSEGV"),
    ],
)
def test_process_exit_reports_the_terminal_state(status: int, state: str, message: str) -> None:
    h = Harness()
    h.start(command_task("t1", "true"))
    actions = h.handle(ProcessExited(status))
    # Stragglers in the task's group go first, then the terminal update.
    assert actions[0] == Signal(PID, signal.SIGKILL)
    assert states(actions) == [state]
    assert actions[1].call["update"]["status"]["message"] == message
    assert h.accept(actions[1:]) == []
    assert h.core.pid is None
    assert h.ack_all() == [Exit(0)]


def test_the_executor_runs_one_task_and_ignores_a_replayed_launch() -> None:
    h = Harness()
    h.start(command_task("t1", "sleep 100"))
    assert states(h.handle(Launch(command_task("t1", "sleep 100")))) == []
    actions = h.handle(Launch(command_task("t2", "true")))
    assert states(actions) == ["TASK_FAILED"]
    status = actions[0].call["update"]["status"]
    assert status["task_id"] == {"value": "t2"}
    assert status["message"] == "The command executor runs one task; this one was rejected"


def test_task_groups_are_refused_task_by_task() -> None:
    h = Harness()
    h.subscribe()
    actions = h.handle(LaunchGroup([command_task("a", "true"), command_task("b", "true")]))
    assert states(actions) == ["TASK_FAILED"]  # b queues behind a
    second = h.handle(UpdateAccepted(actions[0].uuid))
    assert states(second) == ["TASK_FAILED"]
    assert second[0].call["update"]["status"]["task_id"] == {"value": "b"}


# ----------------------------------------------------------------------------- kill


def test_kill_sends_sigterm_and_escalates_to_sigkill_after_the_default_grace() -> None:
    h = Harness()
    h.start(command_task("t1", "sleep 100"))
    assert h.handle(Kill({"value": "t1"}, None)) == [Signal(PID, signal.SIGTERM)]
    assert h.core.next_deadline() == pytest.approx(h.clock.monotonic() + 3.0)
    assert h.advance_to_deadline() == [Signal(PID, signal.SIGKILL)]
    actions = h.handle(ProcessExited(killed_by(signal.SIGKILL)))
    assert states(actions) == ["TASK_KILLED"]
    assert actions[1].call["update"]["status"]["message"] == (
        "Command terminated with signal SIGKILL"
    )


def test_kill_with_killing_capability_sends_task_killing_first() -> None:
    h = Harness()
    h.start(command_task("t1", "sleep 100"), killing=True)
    actions = h.handle(Kill({"value": "t1"}, None))
    assert states(actions) == ["TASK_KILLING"]
    assert actions[1] == Signal(PID, signal.SIGTERM)


def test_the_kill_events_policy_overrides_the_tasks_and_a_second_kill_only_shortens() -> None:
    h = Harness()
    h.start(command_task("t1", "sleep 100", grace_seconds=5.0))
    start = h.clock.monotonic()
    policy = {"grace_period": {"nanoseconds": 2_000_000_000}}
    assert h.handle(Kill({"value": "t1"}, policy)) == [Signal(PID, signal.SIGTERM)]
    assert h.core.next_deadline() == pytest.approx(start + 2.0)
    longer = {"grace_period": {"nanoseconds": "9000000000"}}  # nanoseconds as a string
    assert h.handle(Kill({"value": "t1"}, longer)) == []
    assert h.core.next_deadline() == pytest.approx(start + 2.0)
    # A zero grace: due at once.
    now = {"grace_period": {"nanoseconds": 0}}
    assert h.handle(Kill({"value": "t1"}, now)) == [Signal(PID, signal.SIGKILL)]
    assert h.core.next_deadline() is None


def test_the_tasks_kill_policy_is_the_default_grace() -> None:
    h = Harness()
    h.start(command_task("t1", "sleep 100", grace_seconds=7.0))
    h.handle(Kill({"value": "t1"}, None))
    assert h.core.next_deadline() == pytest.approx(h.clock.monotonic() + 7.0)


def test_kill_of_an_unknown_task_is_logged_and_ignored() -> None:
    h = Harness()
    h.start(command_task("t1", "sleep 100"))
    actions = h.handle(Kill({"value": "other"}, None))
    assert [type(a) for a in actions] == [Log]
    assert "KILL for unknown task" in actions[0].message
    assert h.core.kill_requested is False


def test_max_completion_time_kills_and_fails_the_task() -> None:
    h = Harness()
    h.start(command_task("t1", "sleep 100", max_completion_seconds=0.3))
    assert h.core.next_deadline() == pytest.approx(h.clock.monotonic() + 0.3)
    actions = h.advance_to_deadline()
    assert non_logs(actions) == [Signal(PID, signal.SIGTERM)]
    actions = h.handle(ProcessExited(killed_by(signal.SIGTERM)))
    [status] = [a.call["update"]["status"] for a in actions if isinstance(a, PostUpdate)]
    assert status["state"] == "TASK_FAILED"
    assert status["reason"] == "REASON_MAX_COMPLETION_TIME_REACHED"
    assert status["message"] == "Task exceeded its max completion time"


def test_shutdown_kills_with_the_grace_capped_by_the_shutdown_grace_less_a_second() -> None:
    h = Harness(shutdown_grace=2.5)
    h.start(command_task("t1", "sleep 100"))
    assert h.handle(Shutdown()) == [Signal(PID, signal.SIGTERM)]
    assert h.core.next_deadline() == pytest.approx(h.clock.monotonic() + 1.5)
    actions = h.handle(ProcessExited(killed_by(signal.SIGTERM)))
    assert states(actions) == ["TASK_KILLED"]
    h.accept(actions)
    assert h.ack_all() == [Exit(0)]


# ----------------------------------------------------------------------------- updates


def test_a_refused_update_is_retried_in_order_with_later_updates_queued_behind_it() -> None:
    h = Harness()
    h.subscribe()
    [starting, _spawn] = h.handle(Launch(command_task("t1", "true")))
    actions = h.handle(UpdateRefused(starting.uuid, "HTTP 503"))
    assert [type(a) for a in actions] == [Log]
    assert "TASK_STARTING not accepted (HTTP 503)" in actions[0].message
    assert h.handle(Spawned(PID)) == []  # RUNNING waits behind STARTING
    assert h.core.next_deadline() == pytest.approx(h.clock.monotonic() + 1.0)
    retry = h.advance_to_deadline()
    assert retry == [starting]  # the same update, the same uuid
    running = h.handle(UpdateAccepted(starting.uuid))
    assert states(running) == ["TASK_RUNNING"]
    assert h.handle(UpdateAccepted(running[0].uuid)) == []
    assert h.core.unsent == []


def test_acknowledgements_are_forgotten_and_mark_the_task_known() -> None:
    h = Harness()
    h.start(command_task("t1", "true"))
    assert len(h.core.unacked) == 2
    assert h.handle(Acknowledged("t1", b"x" * 16)) == []  # unknown uuid: nothing
    assert h.core.task_acked is False
    h.ack_all()
    assert h.core.unacked == {} and h.core.task_acked is True


def test_terminal_update_taken_but_never_acknowledged_exits_after_the_ack_wait() -> None:
    h = Harness()
    h.start(command_task("t1", "true"))
    h.accept(h.handle(ProcessExited(exited(0))))
    assert h.core.next_deadline() == pytest.approx(h.clock.monotonic() + 5.0)
    actions = h.advance_to_deadline()
    assert actions[-1] == Exit(0)
    assert "not acknowledged in time" in actions[0].message


# ----------------------------------------------------------------------------- disconnection


def test_stream_loss_without_checkpointing_kills_the_task_and_exits_when_reaped() -> None:
    h = Harness(shutdown_grace=2.0)
    h.start(command_task("t1", "sleep 100"))
    actions = h.handle(Disconnected(""))
    assert non_logs(actions) == [Signal(PID, signal.SIGTERM)]
    # min(task grace 3 s, shutdown grace 2 s); never a reconnection.
    assert h.core.next_deadline() == pytest.approx(h.clock.monotonic() + 2.0)
    actions = h.handle(ProcessExited(killed_by(signal.SIGTERM)))
    assert actions[0] == Signal(PID, signal.SIGKILL)
    assert actions[-1] == Exit(0)
    assert not any(isinstance(a, PostUpdate | Subscribe) for a in actions)


def test_stream_loss_without_checkpointing_or_task_exits_at_once() -> None:
    h = Harness()
    h.subscribe()
    actions = h.handle(Disconnected("connection reset"))
    assert actions[-1] == Exit(0)
    assert "event stream broken: connection reset" in actions[0].message


def test_stream_loss_with_checkpointing_resubscribes_listing_what_is_unacknowledged() -> None:
    h = Harness(checkpoint=True)
    h.start(command_task("t1", "true"))
    h.accept(h.handle(ProcessExited(exited(0))))
    unacked = list(h.core.unacked.values())
    actions = h.handle(Disconnected(""))
    [subscribe] = [a for a in actions if isinstance(a, Subscribe)]
    listed = subscribe.call["subscribe"]
    assert [u["status"] for u in listed["unacknowledged_updates"]] == unacked
    assert [u["status"]["state"] for u in listed["unacknowledged_updates"]] == [
        "TASK_STARTING",
        "TASK_RUNNING",
        "TASK_FINISHED",
    ]
    assert [t["task_id"] for t in listed["unacknowledged_tasks"]] == [{"value": "t1"}]
    # Disconnected and checkpointing: the ack wait does not end it while disconnected.
    h.clock.advance(3)
    assert not any(isinstance(a, Exit) for a in h.handle(Tick()))
    assert h.handle(Connected()) == []  # the agent replays the listed updates
    assert h.core.unsent == []
    assert h.ack_all() == [Exit(0)]


def test_reconnecting_after_the_ack_wait_exits_at_once() -> None:
    # The SUBSCRIBE listed the terminal update: the agent has it, only its ack is missing.
    h = Harness(checkpoint=True)
    h.start(command_task("t1", "true"))
    h.accept(h.handle(ProcessExited(exited(0))))
    h.handle(Disconnected(""))
    h.clock.advance(10)
    assert not any(isinstance(a, Exit) for a in h.handle(ConnectFailed("refused", 1.0)))
    assert [type(a) for a in h.advance_to_deadline()] == [Subscribe]
    assert h.handle(Connected())[-1] == Exit(0)


def test_updates_while_disconnected_are_kept_for_the_next_subscribe() -> None:
    h = Harness(checkpoint=True)
    h.start(command_task("t1", "sleep 100"))
    h.ack_all()  # the agent knows the task
    h.handle(Disconnected(""))
    h.handle(ConnectFailed("refused", 1.0))
    actions = h.handle(ProcessExited(exited(0)))
    assert states(actions) == []  # nothing posted while disconnected
    [subscribe] = h.advance_to_deadline()
    listed = subscribe.call["subscribe"]
    assert listed["unacknowledged_tasks"] == []  # an update of it was acknowledged
    assert [u["status"]["state"] for u in listed["unacknowledged_updates"]] == ["TASK_FINISHED"]


def test_checkpointing_executor_gives_up_after_the_recovery_timeout() -> None:
    h = Harness(checkpoint=True, recovery_timeout=30.0)
    h.start(command_task("t1", "sleep 100"))
    h.handle(Disconnected(""))
    h.handle(ConnectFailed("refused", 1.0))
    h.clock.advance(30)
    actions = h.handle(Tick())
    assert non_logs(actions) == [Signal(PID, signal.SIGKILL), Exit(1)]


def test_answers_from_before_a_reconnection_are_ignored() -> None:
    h = Harness(checkpoint=True)
    h.subscribe()
    [starting, _spawn] = h.handle(Launch(command_task("t1", "true")))
    h.handle(Disconnected(""))
    assert h.handle(UpdateRefused(starting.uuid, "closed")) == []
    assert h.core.resend_at is None


# ----------------------------------------------------------------------------- decoding


def test_decode_event_types() -> None:
    assert decode_event({"type": "HEARTBEAT"}) is None
    assert decode_event({"type": "MESSAGE", "message": {"data": ""}}) is None
    assert decode_event(
        {
            "type": "SUBSCRIBED",
            "subscribed": {
                "agent_info": {"id": AGENT_ID},
                "framework_info": {"capabilities": {"type": "TASK_KILLING_STATE"}},
            },
        }
    ) == Subscribed(AGENT_ID, True)
    assert decode_event({"type": "SUBSCRIBED"}) == Subscribed(None, False)
    task = command_task("t1", "true")
    assert decode_event({"type": "LAUNCH", "launch": {"task": task}}) == Launch(task)
    assert decode_event({"type": "LAUNCH", "launch": {}}) is None
    group = {"task_group": {"tasks": [{"task_id": {"value": "a"}}, {}]}}
    assert decode_event({"type": "LAUNCH_GROUP", "launch_group": group}) == LaunchGroup(
        [{"task_id": {"value": "a"}}, {}]
    )
    assert decode_event({"type": "KILL", "kill": {"task_id": {"value": "t1"}}}) == Kill(
        {"value": "t1"}, None
    )
    uuid = bytes(range(16))
    ack = {"task_id": {"value": "t1"}, "uuid": wire.b64(uuid)}
    assert decode_event({"type": "ACKNOWLEDGED", "acknowledged": ack}) == Acknowledged("t1", uuid)
    assert decode_event({"type": "SHUTDOWN"}) == Shutdown()
    assert decode_event({"type": "ERROR", "error": {"message": "no"}}) == AgentError("no")


def test_an_agent_error_is_logged() -> None:
    h = Harness()
    h.subscribe()
    assert h.handle(AgentError("bad call")) == [Log("agent error: bad call")]


def test_a_foreign_event_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        Harness().handle("LAUNCH")


# ----------------------------------------------------------------------------- parity of copies

_UNITS = sorted(wire.DURATION_UNITS)
_NUMBERS = st.from_regex(r"\A[0-9]{0,4}\.?[0-9]{0,4}([eE][-+]?[0-9]{0,3})?\Z")
_SPACE = st.sampled_from(["", " ", "\t", "  ", "\n", "\u2003"])
_DURATIONS = st.one_of(
    st.builds(
        lambda a, n, b, u, c: f"{a}{n}{b}{u}{c}",
        _SPACE,
        _NUMBERS,
        _SPACE,
        st.one_of(st.sampled_from(_UNITS), st.text("acdeghiklmnorstuwyA.", max_size=6)),
        _SPACE,
    ),
    st.text(max_size=12),
)


def _outcome(parse: Any, text: str) -> tuple[str, float | None]:
    try:
        return "ok", parse(text)
    except Exception:
        return "refused", None


@given(_DURATIONS)
def test_duration_parsing_matches_mezzos(text: str) -> None:
    assert _outcome(wire.parse_duration, text) == _outcome(mezzo_parse_duration, text)


def test_duration_parsing_matches_mezzos_on_known_cases() -> None:
    for text in ["5secs", " 1.5 mins ", ".5ms", "5.secs", "1e3ns", "1E-2hrs", "5e", "-1secs",
                 "5 Secs", "2weeks", "", "secs", "1_000ms", "inf secs", "٣secs", "3.0.1secs"]:
        assert _outcome(wire.parse_duration, text) == _outcome(mezzo_parse_duration, text), text


_PAYLOADS = st.lists(st.binary(min_size=1, max_size=40), max_size=5)
_JUNK = st.one_of(
    st.just(b""),
    st.sampled_from([b"0\n", b"\n", b"x\n", b"+5\nabcde", b" 5\nabcde", b"1" * 25, b"99999999999\n"]),
    st.binary(max_size=8),
)


def _records(decoder: Any, chunks: list[bytes]) -> tuple[list[bytes], bool]:
    """Records decoded from the chunks in order, and whether the decoder refused the stream."""
    out: list[bytes] = []
    for chunk in chunks:
        try:
            out += decoder.feed(chunk)
        except Exception:
            return out, True
    return out, False


@given(_PAYLOADS, _JUNK, st.lists(st.integers(min_value=0, max_value=300), max_size=6))
def test_recordio_decoding_matches_mezzos(
    payloads: list[bytes], junk: bytes, cuts: list[int]
) -> None:
    stream = b"".join(encode_record(p) for p in payloads) + junk
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    theirs = _records(RecordIODecoder(), chunks)
    ours = _records(wire.RecordReader(), chunks)
    assert ours == theirs
    if not junk:
        assert ours == (payloads, False)


def test_recordio_size_limit_matches_mezzos() -> None:
    for prefix in [b"67108864\n", b"67108865\n", b"123456789012345678901\n"]:
        theirs = _records(RecordIODecoder(), [prefix])
        assert _records(wire.RecordReader(), [prefix]) == theirs
