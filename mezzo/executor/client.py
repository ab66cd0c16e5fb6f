"""`ExecutorClient`: the asyncio client of the v1 executor API (spec §6).

What it owns:

- the subscription: SUBSCRIBE on a connection of its own (`Connection: close`), decoding the
  RecordIO stream into `mezzo.api.executor.Event`s and handing them, in order, to the
  `Executor` callbacks (one at a time, on one dispatcher task);
- reliability: every update sent with `update`/`send_status` is kept until its ACKNOWLEDGED
  arrives, and every launched task until one of its updates is acknowledged; both lists go into
  the SUBSCRIBE of a re-subscription, so the agent can replay them (spec §6, "unacknowledged");
- recovery (spec §6.2): when the stream ends and the framework checkpoints, re-subscribe with
  backoff (at most `subscription_backoff_max` apart) for up to `recovery_timeout`; without
  checkpointing, or once the timeout passes, call `disconnected` and `shutdown` and stop;
- calls on a separate keep-alive connection (spec §2.7): UPDATE and MESSAGE.

Settings come from the environment the agent gives every executor (spec §6.1), via
`ExecutorSettings.from_env()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
import uuid as uuidlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from mezzo.api.codec import DecodeError, decode, encode
from mezzo.api.common import (
    AgentID,
    ExecutorID,
    FrameworkID,
    Reason,
    Source,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mezzo.api.executor import (
    Call,
    CallMessage,
    CallType,
    Event,
    EventType,
    Subscribe,
    UnacknowledgedUpdate,
    Update,
    check_event,
)
from mezzo.core.backoff import Backoff
from mezzo.core.durations import parse_duration
from mezzo.core.errors import ConfigError, MezzoError, ValidationError
from mezzo.executor.executor import Executor, callback_for
from mezzo.net.client import StreamRefused, open_stream, post_call
from mezzo.security.tls import TlsConfig, client_ssl

log = logging.getLogger(__name__)

PATH = "/api/v1/executor"
# Give up on a first SUBSCRIBE after this long when not checkpointing (the agent's own
# executor registration timeout is 1 minute).
FIRST_SUBSCRIBE_LIMIT_SECONDS = 60.0


class ExecutorError(MezzoError):
    """The agent refused a call in a way retrying cannot fix (e.g. HTTP 400)."""


@dataclass(frozen=True)
class ExecutorSettings:
    """What an executor needs to know about its agent (spec §6.1)."""

    agent_endpoint: str  # host:port
    framework_id: FrameworkID
    executor_id: ExecutorID
    checkpoint: bool = False
    shutdown_grace_period: float = 5.0
    subscription_backoff_max: float = 2.0
    recovery_timeout: float = 15 * 60.0
    sandbox: str | None = None
    # The agent-minted token (MESOS_EXECUTOR_AUTHENTICATION_TOKEN), sent as a Bearer token.
    authentication_token: str | None = None
    # TLS to the agent (its LIBPROCESS_SSL_* variables, which the agent hands its executors).
    tls: TlsConfig = field(default_factory=TlsConfig)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ExecutorSettings:
        """Read the MESOS_* variables; ConfigError names a missing or invalid one."""
        env = os.environ if env is None else env
        missing = [
            n
            for n in ("MESOS_AGENT_ENDPOINT", "MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID")
            if not env.get(n)
        ]
        if missing:
            raise ConfigError(f"missing executor environment: {', '.join(missing)}")

        token = env.get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN") or None
        if env is os.environ:
            # As Mesos's executor library: the token is not handed down to the tasks.
            os.environ.pop("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", None)

        def duration(name: str, default: float) -> float:
            text = env.get(name)
            return parse_duration(text) if text else default

        return cls(
            agent_endpoint=env["MESOS_AGENT_ENDPOINT"],
            framework_id=FrameworkID(value=env["MESOS_FRAMEWORK_ID"]),
            executor_id=ExecutorID(value=env["MESOS_EXECUTOR_ID"]),
            # Mesos writes "1"/"0"; pymesos' "non-empty is true" would make "0" true.
            checkpoint=env.get("MESOS_CHECKPOINT", "").strip().lower() in ("1", "true"),
            shutdown_grace_period=duration("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", 5.0),
            subscription_backoff_max=duration("MESOS_SUBSCRIPTION_BACKOFF_MAX", 2.0),
            recovery_timeout=duration("MESOS_RECOVERY_TIMEOUT", 15 * 60.0),
            sandbox=env.get("MESOS_SANDBOX") or env.get("MESOS_DIRECTORY"),
            authentication_token=token,
            tls=TlsConfig.load(environ=env),
        )

    @property
    def url(self) -> str:
        endpoint = self.agent_endpoint
        if "://" not in endpoint:
            endpoint = f"{self.tls.scheme}://" + endpoint
        return endpoint.rstrip("/") + PATH


Invoker = Callable[[Callable[..., Any], tuple[Any, ...]], Any]


class _Disconnected:
    pass


class _Finished:
    pass


class ExecutorClient:
    """Subscribe to the agent, deliver events to an `Executor`, send updates and messages."""

    def __init__(
        self,
        executor: Executor,
        settings: ExecutorSettings | None = None,
        *,
        driver: Any = None,
        invoker: Invoker | None = None,
        initial_backoff: float = 0.05,
    ) -> None:
        self.executor = executor
        self.settings = settings if settings is not None else ExecutorSettings.from_env()
        self._driver = driver if driver is not None else self
        self._invoker = invoker
        self._initial_backoff = min(initial_backoff, self.settings.subscription_backoff_max)
        self.agent_id: AgentID | None = None
        self.subscriptions = 0
        # Reliability state (see the module docstring), insertion-ordered.
        self.unacknowledged_updates: dict[bytes, TaskStatus] = {}
        self.unacknowledged_tasks: dict[str, TaskInfo] = {}
        self._session: aiohttp.ClientSession | None = None
        self._stream: Any = None
        self._queue: asyncio.Queue[Event | _Disconnected | _Finished] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._stopped = asyncio.Event()

    # ---------------------------------------------------------------- lifecycle

    @property
    def connected(self) -> bool:
        return self._stream is not None

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    async def start(self) -> None:
        """Start subscribing in the background (returns at once)."""
        if self._runner is not None:
            return
        # Calls go on a pooled keep-alive connection; the stream gets its own (Connection:
        # close), so the pool never hands the stream's connection to a call.
        token = self.settings.authentication_token
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"} if token else None,
            connector=aiohttp.TCPConnector(ssl=client_ssl(self.settings.tls) or True))
        self._dispatcher = asyncio.create_task(self._dispatch())
        self._runner = asyncio.create_task(self._run())

    async def wait_subscribed(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def join(self) -> None:
        """Wait until the client stops (after SHUTDOWN, `stop`, or giving up on the agent)."""
        await self._stopped.wait()

    async def run(self) -> None:
        """`start` then `join`, then release the connections."""
        await self.start()
        try:
            await self.join()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Close the stream and the connections; no more callbacks."""
        self._close_stream()
        for task in (self._runner, self._dispatcher):
            if task is not None and task is not asyncio.current_task() and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._stopped.set()

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    # ---------------------------------------------------------------- subscription loop

    async def _run(self) -> None:
        backoff = Backoff(self._initial_backoff, self.settings.subscription_backoff_max)
        give_up_at = time.monotonic() + (
            self.settings.recovery_timeout
            if self.settings.checkpoint
            else FIRST_SUBSCRIBE_LIMIT_SECONDS
        )
        try:
            while True:
                try:
                    await self._subscribe()
                except (aiohttp.ClientError, OSError, StreamRefused, TimeoutError) as exc:
                    if time.monotonic() >= give_up_at:
                        log.error("cannot subscribe to the agent (%s); giving up", exc)
                        break
                    delay = backoff.next()
                    log.info("subscribe failed (%s); retrying in %.2fs", exc, delay)
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
                shutdown = await self._consume()
                self._close_stream()
                if shutdown:
                    break
                self._queue.put_nowait(_Disconnected())
                if not self.settings.checkpoint:
                    log.warning("lost the agent and the framework does not checkpoint")
                    break
                give_up_at = time.monotonic() + self.settings.recovery_timeout
        finally:
            self._queue.put_nowait(_Finished())

    async def _subscribe(self) -> None:
        assert self._session is not None
        subscribe = Subscribe(
            unacknowledged_tasks=list(self.unacknowledged_tasks.values()),
            unacknowledged_updates=[
                UnacknowledgedUpdate(status=s) for s in self.unacknowledged_updates.values()
            ],
        )
        body = encode(self._call(CallType.SUBSCRIBE, subscribe=subscribe))
        self._stream = await open_stream(
            self._session, self.settings.url, body, {"Connection": "close"}
        )

    async def _consume(self) -> bool:
        """Read events until the stream ends; True if it ended with SHUTDOWN."""
        stream = self._stream
        try:
            async for record in stream.records():
                try:
                    event = check_event(decode(record, Event))
                except (DecodeError, ValidationError) as exc:
                    log.warning("ignoring a malformed event from the agent: %s", exc)
                    continue
                self._track(event)
                self._queue.put_nowait(event)
                if event.type == EventType.SHUTDOWN:
                    return True
        except (aiohttp.ClientError, OSError, DecodeError) as exc:
            log.info("event stream broken: %s", exc)
        return False

    def _track(self, event: Event) -> None:
        """Bookkeeping that must happen in stream order, before any callback runs."""
        if event.type == EventType.SUBSCRIBED:
            assert event.subscribed is not None
            self.agent_id = event.subscribed.agent_info.id
            self.subscriptions += 1
            self._subscribed.set()
        elif event.type == EventType.LAUNCH:
            assert event.launch is not None
            task = event.launch.task
            self.unacknowledged_tasks[task.task_id.value] = task
        elif event.type == EventType.LAUNCH_GROUP:
            assert event.launch_group is not None
            for task in event.launch_group.task_group.tasks:
                self.unacknowledged_tasks[task.task_id.value] = task
        elif event.type == EventType.ACKNOWLEDGED:
            assert event.acknowledged is not None
            self.unacknowledged_updates.pop(event.acknowledged.uuid, None)
            self.unacknowledged_tasks.pop(event.acknowledged.task_id.value, None)

    # ---------------------------------------------------------------- callbacks

    async def _dispatch(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, _Finished):
                    await self._invoke(self.executor.shutdown, (self._driver,))
                    self._close_stream()
                    self._stopped.set()
                    return
                if isinstance(item, _Disconnected):
                    await self._invoke(self.executor.disconnected, (self._driver,))
                    continue
                first = item.type == EventType.SUBSCRIBED and not self._registered
                if first:
                    self._registered = True
                if item.type == EventType.SHUTDOWN:
                    continue  # delivered once, by the _Finished that follows
                target = callback_for(self.executor, self._driver, item, first_subscription=first)
                if target is not None:
                    await self._invoke(*target)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("executor callback failed for %s", getattr(item, "type", item))

    _registered = False

    async def _invoke(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if self._invoker is not None:
            await self._invoker(fn, args)
            return
        result = fn(*args)
        if inspect.isawaitable(result):
            await result

    # ---------------------------------------------------------------- calls

    def _call(self, call_type: CallType, **payload: Any) -> Call:
        return Call(
            type=call_type,
            framework_id=self.settings.framework_id,
            executor_id=self.settings.executor_id,
            **payload,
        )

    async def _post(self, call: Call) -> int:
        if self._session is None:
            raise ExecutorError("the client is not started")
        status, body = await post_call(self._session, self.settings.url, encode(call))
        if 400 <= status < 500:
            raise ExecutorError(f"{call.type} refused: HTTP {status}: {body.decode().strip()}")
        return status

    async def update(self, status: TaskStatus) -> TaskStatus:
        """Send a status update reliably: uuid, timestamp, source and ids are filled if unset.

        The update is kept until the agent acknowledges it. If the agent is unreachable or
        recovering (503), it is not lost: the next SUBSCRIBE lists it and the agent replays it.
        Raises ExecutorError if the agent rejects it outright (4xx).
        """
        if status.uuid is None:
            status.uuid = uuidlib.uuid4().bytes
        if status.timestamp is None:
            status.timestamp = time.time()
        if status.source is None:
            status.source = Source.SOURCE_EXECUTOR
        if status.executor_id is None:
            status.executor_id = self.settings.executor_id
        if status.agent_id is None:
            status.agent_id = self.agent_id
        self.unacknowledged_updates[status.uuid] = status
        if self._stream is None:
            return status
        try:
            code = await self._post(self._call(CallType.UPDATE, update=Update(status=status)))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("UPDATE %s not delivered (%s); kept for re-subscription", status.state, exc)
            return status
        if code != 202:
            log.info("UPDATE %s answered HTTP %d; kept for re-subscription", status.state, code)
        return status

    async def send_status(
        self,
        task_id: TaskID | str,
        state: TaskState | str,
        *,
        message: str | None = None,
        reason: Reason | str | None = None,
        data: bytes | None = None,
        healthy: bool | None = None,
    ) -> TaskStatus:
        """Build a TaskStatus (fresh uuid, timestamp, SOURCE_EXECUTOR) and `update` it."""
        status = TaskStatus(
            task_id=task_id if isinstance(task_id, TaskID) else TaskID(value=task_id),
            state=TaskState(state),
            message=message,
            reason=Reason(reason) if reason is not None else None,
            data=data,
            healthy=healthy,
        )
        return await self.update(status)

    async def send_framework_message(self, data: bytes) -> None:
        """MESSAGE to the scheduler (best effort; dropped if it cannot be delivered)."""
        await self._post(self._call(CallType.MESSAGE, message=CallMessage(data=data)))
