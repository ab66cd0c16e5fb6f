"""The agent link shared by the built-in executors' cores (`command_core`, `default_core`).

`ExecutorLinkCore` owns what every executor does with its agent, whatever it runs: the
subscription (SUBSCRIBE with backoff and jitter, re-subscription after a broken stream for
checkpointing frameworks, the give-up deadline), and the update stream (every update kept until
ACKNOWLEDGED, POSTed one at a time in order, an UPDATE the agent refuses resent every
RESEND_SECONDS while the stream is up, the unacknowledged ones listed on the next SUBSCRIBE).
A subclass owns its tasks: `handle` here applies the link's events (`Tick`, `Connected`,
`ConnectFailed`, `UpdateAccepted`, `UpdateRefused`, `AgentError`) and hands the rest to the
subclass's `_handle_task`; the subclass also says what a broken stream (`_on_disconnected`) and
a SHUTDOWN (`_on_shutdown`) mean for its tasks, runs its timers in `_on_timers` (after every
event) and adds them to its `next_deadline`.

No I/O, no clock reads, no randomness (the same contract as `command_core`): `now`, uuids,
wall-clock timestamps and jitter come in; actions (`command_events`) go out through `_emit`.
Stdlib only and cheap to import, like the rest of the built-in executors.
"""

from __future__ import annotations

if __package__:  # imported as mezzo.executor.link_core (tests, tools)
    from . import command_events as ev
    from .command_wire import b64
else:  # run by the agent as a script: this directory is sys.path[0] (see command.py)
    import command_events as ev  # type: ignore[import-not-found,no-redef]
    from command_wire import b64  # type: ignore[import-not-found,no-redef]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Json = dict[str, Any]

RESEND_SECONDS = 1.0  # retry of an UPDATE the agent refused while the stream is up
FIRST_SUBSCRIBE_GIVE_UP_SECONDS = 60.0  # never subscribed and not checkpointing
BACKOFF_INITIAL_SECONDS = 0.05


class Config:
    """What the agent told the executor (its environment, spec §6.1), already parsed.
    `sandbox` is the executor's sandbox (MESOS_SANDBOX), used by the default executor for its
    tasks' sandboxes; `agent_host` the agent's address (the tasks' MESOS_CONTAINER_IP)."""

    __slots__ = (
        "agent_host",
        "backoff_max",
        "checkpoint",
        "executor_id",
        "framework_id",
        "recovery_timeout",
        "sandbox",
        "shutdown_grace",
    )

    def __init__(
        self,
        framework_id: str,
        executor_id: str,
        *,
        checkpoint: bool = False,
        shutdown_grace: float = 5.0,
        backoff_max: float = 2.0,
        recovery_timeout: float = 900.0,
        sandbox: str = ".",
        agent_host: str = "",
    ) -> None:
        self.framework_id = framework_id
        self.executor_id = executor_id
        self.checkpoint = checkpoint
        self.shutdown_grace = shutdown_grace
        self.backoff_max = backoff_max
        self.recovery_timeout = recovery_timeout
        self.sandbox = sandbox
        self.agent_host = agent_host


class ExecutorLinkCore:
    """The subscription and the update stream of one executor (see the module docstring).
    The subclasses repeat this constructor's signature to add their tasks' state: a typed
    forward to it, no logic of its own."""

    def __init__(
        self,
        config: Config,
        now: float,
        *,
        new_uuid: Callable[[], bytes],
        wall_clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.ids = {
            "framework_id": {"value": config.framework_id},
            "executor_id": {"value": config.executor_id},
        }
        self._new_uuid = new_uuid
        self._wall_clock = wall_clock
        # The subscription.
        self.started_at = now
        self.connected = False
        self.connecting = False  # a Subscribe action is out; its answer not yet in
        self.disconnected_at: float | None = None
        self.next_connect_at = now
        self.backoff = BACKOFF_INITIAL_SECONDS
        self.agent_id: Json | None = None
        self.killing_capable = False
        # Updates not yet ACKNOWLEDGED (uuid -> TaskStatus), in send order; those the agent has
        # not taken yet while the stream is up (head first; resent on a timer after a refusal);
        # and the one whose PostUpdate is out.
        self.unacked: dict[bytes, Json] = {}
        self.unsent: list[bytes] = []
        self.posting: bytes | None = None
        self.resend_at: float | None = None
        self.exit_code: int | None = None
        self._out: list[object] = []

    # ---------------------------------------------------------------- the interface

    def handle(self, event: object, now: float) -> list[object]:
        """Apply one event; return the actions to carry out, in order."""
        if self.exit_code is not None:
            return []  # exiting: nothing more happens
        self._out = []
        match event:
            case ev.Tick():
                pass
            case ev.Connected():
                self._on_connected()
            case ev.ConnectFailed(reason, jitter):
                self._on_connect_failed(reason, jitter, now)
            case ev.Disconnected(reason):
                self._on_disconnected(reason, now)
            case ev.Shutdown():
                self._on_shutdown(now)
            case ev.AgentError(message):
                self._log(f"agent error: {message}")
            case ev.UpdateAccepted(uuid):
                self._on_update_answer(uuid, True, "", now)
            case ev.UpdateRefused(uuid, detail):
                self._on_update_answer(uuid, False, detail, now)
            case _:
                self._handle_task(event, now)
        if self.exit_code is None:
            self._on_timers(now)
        out, self._out = self._out, []
        return out

    # The subclass's part (its tasks).

    def _handle_task(self, event: object, now: float) -> None:
        """Apply an event that is not the link's (raise TypeError for an unknown one)."""
        raise TypeError(f"not an executor event: {event!r}")

    def _on_disconnected(self, reason: str, now: float) -> None:
        """The event stream ended (`_link_lost`, then the tasks' fate and re-subscription)."""
        raise NotImplementedError

    def _on_shutdown(self, now: float) -> None:
        """SHUTDOWN: end every task and exit."""
        raise NotImplementedError

    def _on_timers(self, now: float) -> None:
        """Run what is due (after every event)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- subscription

    def _give_up_at(self) -> float:
        if self.disconnected_at is None:  # never subscribed
            checkpoint = self.config.checkpoint
            limit = self.config.recovery_timeout if checkpoint else FIRST_SUBSCRIBE_GIVE_UP_SECONDS
            return self.started_at + limit
        return self.disconnected_at + self.config.recovery_timeout

    def _link_deadlines(self) -> list[float | None]:
        """The link's timers: the resend of a refused update, the next SUBSCRIBE attempt and
        the give-up deadline while not subscribed."""
        return [
            self.resend_at,
            None if self.connected or self.connecting else self.next_connect_at,
            None if self.connected else self._give_up_at(),
        ]

    def _resend_due(self, now: float) -> None:
        if self.resend_at is not None and now >= self.resend_at:
            self.resend_at = None
            self._post_next()

    def _subscribe_due(self, now: float) -> bool:
        """Subscribe if an attempt is due; True if the give-up deadline has passed instead
        (the subclass ends its tasks and exits)."""
        if self.connected:
            return False
        if now >= self._give_up_at():
            return True
        if not self.connecting and now >= self.next_connect_at:
            self.connecting = True
            self._emit(ev.Subscribe(self._subscribe_call()))
        return False

    def _unacknowledged_tasks(self) -> list[Json]:
        """TaskInfos to list in SUBSCRIBE (launched, none of their updates acknowledged)."""
        return []

    def _subscribe_call(self) -> Json:
        subscribe = {
            "unacknowledged_tasks": self._unacknowledged_tasks(),
            "unacknowledged_updates": [{"status": s} for s in self.unacked.values()],
        }
        return {"type": "SUBSCRIBE", **self.ids, "subscribe": subscribe}

    def _on_connected(self) -> None:
        self.connecting = False
        self.connected = True
        self.backoff = BACKOFF_INITIAL_SECONDS
        self.unsent = []  # the agent replays what we listed as unacknowledged
        self.posting = None
        self.resend_at = None

    def _on_connect_failed(self, reason: str, jitter: float, now: float) -> None:
        self.connecting = False
        delay = min(self.backoff, self.config.backoff_max) * jitter
        self.backoff = min(self.backoff * 2, self.config.backoff_max)
        self.next_connect_at = now + delay
        self._log(f"subscribe failed ({reason}); retrying in {delay:.2f}s", debug=True)

    def _link_lost(self, reason: str, now: float) -> bool:
        """The stream ended; False if it was not up. Re-subscribing is the caller's choice."""
        if not self.connected:
            return False
        self.connected = False
        self.posting = None
        self.disconnected_at = now
        if reason:
            self._log(f"event stream broken: {reason}")
        return True

    # ---------------------------------------------------------------- updates

    def _send_status(
        self,
        task_id: Json,
        state: str,
        message: str | None = None,
        reason: str | None = None,
        extra: Json | None = None,
    ) -> Json:
        """Send an update (kept until acknowledged); `extra` fields are merged in."""
        uuid = self._new_uuid()
        status: Json = {
            "task_id": task_id,
            "state": state,
            "source": "SOURCE_EXECUTOR",
            "executor_id": {"value": self.config.executor_id},
            "uuid": b64(uuid),
            "timestamp": self._wall_clock(),
        }
        if self.agent_id is not None:
            status["agent_id"] = self.agent_id
        if message is not None:
            status["message"] = message
        if reason is not None:
            status["reason"] = reason
        if extra:
            status.update(extra)
        self._queue(uuid, status)
        return status

    def _send_derived(self, previous: Json, changes: Json) -> Json:
        """Send a copy of the update `previous` with `changes` merged in and a fresh uuid and
        timestamp (Mesos's executors send check and health updates this way, so that they
        keep what the previous update carried)."""
        uuid = self._new_uuid()
        status = dict(previous)
        status.update(changes)
        status["uuid"] = b64(uuid)
        status["timestamp"] = self._wall_clock()
        self._queue(uuid, status)
        return status

    def _send_check_update(self, previous: Json, check_status: Json) -> Json:
        """The update for a check's news (Mesos's `taskCheckUpdated`): `previous` with it."""
        return self._send_derived(previous, {
            "reason": "REASON_TASK_CHECK_STATUS_UPDATED",
            "check_status": check_status,
        })

    def _send_health_update(
        self, previous: Json, task_id: object, healthy: bool, failures: int, detail: str
    ) -> Json:
        """The update for a health check's result (Mesos's `taskHealthUpdated`): `previous`
        with it. Whether to send it and what an unhealthy task's kill does is the caller's."""
        if not healthy:
            self._log(f"health check of task {task_id} failed {failures} "
                      f"times consecutively: {detail}")
        return self._send_derived(previous, {
            "reason": "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
            "healthy": healthy,
        })

    def _queue(self, uuid: bytes, status: Json) -> None:
        self.unacked[uuid] = status
        task_id = (status.get("task_id") or {}).get("value")
        self._log(f"update {status.get('state')} of {task_id}", debug=True)
        if self.connected:  # else listed as unacknowledged on the next SUBSCRIBE
            self.unsent.append(uuid)
            if len(self.unsent) == 1 and self.resend_at is None:
                self._post_next()

    def _post_next(self) -> None:
        """POST the oldest update the agent has not taken (updates never overtake)."""
        while self.connected and self.posting is None and self.unsent:
            uuid = self.unsent[0]
            if uuid not in self.unacked:  # acknowledged meanwhile (replayed by the agent)
                self.unsent.pop(0)
                continue
            self.posting = uuid
            call = {"type": "UPDATE", **self.ids, "update": {"status": self.unacked[uuid]}}
            self._emit(ev.PostUpdate(uuid, call))

    def _on_update_answer(self, uuid: bytes, accepted: bool, detail: str, now: float) -> None:
        if uuid != self.posting:
            return  # an answer from before a reconnection: the agent got the list instead
        self.posting = None
        if accepted:
            self.unsent.pop(0)
            self._post_next()
            return
        # Kept in `unacked` either way: listed on the next SUBSCRIBE, and retried meanwhile.
        state = self.unacked.get(uuid, {}).get("state")
        self._log(f"UPDATE {state} not accepted ({detail}); will retry")
        self.resend_at = now + RESEND_SECONDS

    # ---------------------------------------------------------------- output

    def _emit(self, action: object) -> None:
        self._out.append(action)

    def _log(self, message: str, *, debug: bool = False) -> None:
        self._emit(ev.Log(message) if not debug else ev.Debug(message))

    def _exit(self, code: int) -> None:
        self.exit_code = code
        self._emit(ev.Exit(code))
