"""`SchedulerClient`: the asyncio client of the v1 scheduler API (spec §2, §4, §5.1–5.5).

What it owns:

- the subscription: POST SUBSCRIBE on a connection of its own (`Connection: close`), keep the
  `Mesos-Stream-Id` of the 200 answer, read RecordIO events until the stream ends;
- calls: every other call goes over a separate keep-alive connection with that stream id;
  typed methods for each call type live in `SchedulerCalls` (calls.py);
- liveness: a heartbeat watchdog (no event for `heartbeat_misses` × the interval the master
  announced → the connection is dead), then reconnect with exponential backoff;
- following the leader: `307 Location` → the master it names, `503` / unreachable → the next
  candidate after a backoff, `zk://` → whatever `mezzo.election` reports;
- re-subscribing with the framework id it was given, so tasks survive a master failover;
- delivery: events go to a `Scheduler`'s callbacks one at a time, in order; status updates that
  carry a uuid are acknowledged after `status_update` returns (unless implicit acknowledgements
  are turned off, then call `acknowledge(status)` yourself).

Lifecycle: `start()` → (`wait_subscribed()`) → calls … → `stop(failover=False)` (TEARDOWN: the
framework and its tasks go away) or `stop(failover=True)` (just disconnect: the master keeps the
framework for `failover_timeout` seconds and a new scheduler may re-subscribe with its id).
An ERROR event (e.g. "Framework failed over") or a 4xx answer to SUBSCRIBE is fatal: the client
reports it to `Scheduler.error` and stops without reconnecting.

Errors raised by calls (all `SchedulerError`, a `MezzoError`):
    SchedulerError
    ├── NotSubscribedError   no live subscription right now (call again after reconnecting)
    └── CallRejectedError    the master answered with a non-2xx status (`.status`, `.message`)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from mezzo.api.codec import decode, encode
from mezzo.api.common import FrameworkID, FrameworkInfo, MasterInfo, TaskStatus
from mezzo.api.scheduler import (
    HEARTBEAT_INTERVAL_SECONDS,
    Acknowledge,
    Call,
    CallType,
    Error,
    Event,
    EventType,
    Subscribe,
    check_event,
)
from mezzo.core.backoff import Backoff
from mezzo.core.errors import DecodeError, MezzoError
from mezzo.election.base import Detector
from mezzo.net.client import StreamRefused, open_stream, post_call
from mezzo.scheduler.calls import SchedulerCalls
from mezzo.scheduler.leader import MasterLocator
from mezzo.scheduler.scheduler import Scheduler, callback_for
from mezzo.security.tls import client_ssl

log = logging.getLogger(__name__)

SCHEDULER_PATH = "/api/v1/scheduler"


class SchedulerError(MezzoError):
    """Base of the errors the scheduler SDK raises."""


class NotSubscribedError(SchedulerError):
    """A call was made while the client has no live subscription."""


class CallRejectedError(SchedulerError):
    """The master answered a call with a non-2xx status."""

    def __init__(self, call_type: str, status: int, message: str) -> None:
        super().__init__(f"{call_type} rejected by the master: HTTP {status}: {message}")
        self.status = status
        self.message = message


@dataclass
class SchedulerOptions:
    """Tuning knobs; the defaults follow Mesos' guidance (spec §5.2)."""

    implicit_acknowledgements: bool = True
    # No event for this many heartbeat intervals means the connection is dead.
    heartbeat_misses: float = 5.0
    # Overrides misses × interval when set (tests, or masters with unusual intervals).
    heartbeat_timeout: float | None = None
    backoff_initial: float = 0.5
    backoff_max: float = 15.0
    connect_timeout: float = 10.0  # TCP connect + SUBSCRIBE answer
    call_timeout: float = 10.0
    max_redirects: int = 5  # consecutive 307s before backing off
    suppressed_roles: tuple[str, ...] = ()
    # HTTP Basic credentials, for a master started with --authenticate_http_frameworks
    # (FrameworkInfo.principal defaults to `principal` there). None: the environment's
    # MEZZO_PRINCIPAL/MEZZO_SECRET, else DEFAULT_PRINCIPAL/DEFAULT_SECRET (`env_credentials`).
    principal: str | None = None
    secret: str | None = None


# A callback invoker: runs `fn(*args)` and waits for it (the thread driver runs callbacks on
# its callback thread; the default calls them in the loop and awaits coroutines).
Invoker = Callable[[Callable[..., Any], tuple[Any, ...]], Any]


async def _invoke_inline(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class _Disconnected:
    """Queue marker: the subscription that delivered the preceding events has ended."""


class _Finished:
    """Queue marker: the client stopped by itself (fatal error); set `stopped` once delivered."""


class _Fatal(Exception):
    """Subscribing cannot succeed (4xx other than redirects); stop reconnecting."""


def env_credentials() -> tuple[str | None, str | None]:
    """The principal and secret of the environment: `MEZZO_PRINCIPAL`/`MEZZO_SECRET`, else
    `DEFAULT_PRINCIPAL`/`DEFAULT_SECRET` (Mesos's example frameworks); (None, None) if unset."""
    for prefix in ("MEZZO_", "DEFAULT_"):
        principal = os.environ.get(prefix + "PRINCIPAL")
        if principal:
            return principal, os.environ.get(prefix + "SECRET", "")
    return None, None


class SchedulerClient(SchedulerCalls):
    """One framework's connection to the leading master. Create it inside a running loop."""

    def __init__(
        self,
        master: str,
        framework_info: FrameworkInfo,
        scheduler: Scheduler | None = None,
        options: SchedulerOptions | None = None,
        *,
        detector: Detector | None = None,
        driver: Any = None,
        invoker: Invoker | None = None,
    ) -> None:
        self.options = options or SchedulerOptions()
        # A private copy: the assigned id is written into it for re-subscription.
        self.framework_info = msgspec.structs.replace(framework_info)
        self.scheduler = scheduler or Scheduler()
        self._driver = self if driver is None else driver
        self._invoke: Invoker = invoker or _invoke_inline
        self._locator = MasterLocator(master, detector)
        self.master_url: str | None = None  # base URL of the master we are subscribed to
        self.master_info: MasterInfo | None = None
        self.stream_id: str | None = None
        self.heartbeat_interval = HEARTBEAT_INTERVAL_SECONDS
        self.subscriptions = 0  # SUBSCRIBED events received so far
        self.aborted_message: str | None = None
        self._queue: asyncio.Queue[Event | _Disconnected | _Finished] = asyncio.Queue()
        self._stream_session: aiohttp.ClientSession | None = None
        self._call_session: aiohttp.ClientSession | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._dispatch_task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stream: Any = None
        self._drop_stream = asyncio.Event()  # set to force a reconnect

    # ------------------------------------------------------------------ state

    @property
    def framework_id(self) -> FrameworkID | None:
        return self.framework_info.id

    @property
    def connected(self) -> bool:
        """True while a subscription is live (SUBSCRIBED received, stream open)."""
        return self.stream_id is not None

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Begin subscribing in the background (returns at once)."""
        if self._run_task is not None:
            return
        self._locator.start()
        auth: dict[str, str] = {}
        principal, secret = self.options.principal, self.options.secret
        if principal is None:
            # As the CLI: MEZZO_PRINCIPAL/MEZZO_SECRET, else Mesos's DEFAULT_PRINCIPAL/_SECRET.
            principal, secret = env_credentials()
        if principal is not None:
            token = base64.b64encode(f"{principal}:{secret or ''}".encode())
            auth["Authorization"] = "Basic " + token.decode("ascii")
        # TLS: the master's certificate checked against LIBPROCESS_SSL_CA_FILE (else the
        # system's store); ours shown with LIBPROCESS_SSL_CERT_FILE/KEY_FILE.
        ssl = client_ssl() or True
        self._stream_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True, ssl=ssl), headers=auth
        )
        self._call_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl), headers=auth)
        self._run_task = asyncio.create_task(self._run(), name="mezzo-scheduler-subscription")
        self._dispatch_task = asyncio.create_task(self._dispatch(), name="mezzo-scheduler-dispatch")

    async def wait_subscribed(self, timeout: float | None = None) -> FrameworkID:
        """Wait for a live subscription; return the framework id. Raises TimeoutError, or
        SchedulerError if the client stopped first."""
        async with asyncio.timeout(timeout):
            waiter = asyncio.ensure_future(self._subscribed.wait())
            stopper = asyncio.ensure_future(self._stopped.wait())
            try:
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
        if not self._subscribed.is_set() or self.framework_id is None:
            raise SchedulerError(f"scheduler stopped: {self.aborted_message or 'stopped'}")
        return self.framework_id

    async def join(self) -> None:
        """Wait until the client stops (by `stop`, or fatally)."""
        await self._stopped.wait()

    async def run(self) -> None:
        """`start()` and wait until the client stops."""
        await self.start()
        await self.join()

    async def stop(self, failover: bool = False) -> None:
        """Stop. Without `failover`, tear the framework down first (its tasks are killed)."""
        if self._stopped.is_set() and self._run_task is None:
            return
        if not failover and self.connected:
            try:
                await self.teardown()
            except SchedulerError as exc:
                log.warning("teardown failed: %s", exc)
        await self._shutdown()

    async def abort(self) -> None:
        """Stop at once without tearing down (like `stop(failover=True)`)."""
        await self._shutdown()

    def reconnect(self) -> None:
        """Drop the current subscription; the client re-subscribes with its framework id."""
        self._drop_stream.set()

    async def _shutdown(self) -> None:
        self._stopped.set()
        current = asyncio.current_task()
        for task in (self._run_task, self._dispatch_task):
            if task is not None and task is not current:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._run_task = None
        self._close_stream()
        self.stream_id = None
        for session in (self._stream_session, self._call_session):
            if session is not None:
                await session.close()
        self._stream_session = self._call_session = None
        self._locator.close()

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    # ------------------------------------------------------------------ subscription loop

    async def _run(self) -> None:
        opts = self.options
        backoff = Backoff(opts.backoff_initial, opts.backoff_max)
        redirects = 0
        try:
            while not self._stopped.is_set():
                base = await self._locator.leader()
                try:
                    stream = await asyncio.wait_for(self._subscribe(base), opts.connect_timeout)
                except StreamRefused as exc:
                    if exc.status == 307 and exc.location and redirects < opts.max_redirects:
                        redirects += 1
                        target = self._locator.redirected(exc.location, base)
                        log.info("master %s redirects to the leader at %s", base, target)
                        continue
                    if exc.status in (307, 503) or exc.status >= 500:
                        log.info("master %s cannot serve us yet: %s", base, exc)
                    else:
                        raise _Fatal(f"master at {base} refused SUBSCRIBE: {exc}") from None
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    log.info("cannot subscribe at %s: %s", base, _describe(exc))
                else:
                    redirects = 0
                    if await self._consume(base, stream, backoff):
                        await self._queue.put(_Finished())  # ERROR event: fatal
                        return
                round_ended = self._locator.failed()
                redirects = 0
                # Within a round of several candidates, the next one is tried after the
                # first, short delay: the backoff grows only once all of them have failed.
                delay = backoff.next() if round_ended else backoff.first()
                if await self._backoff_sleep(delay, base):
                    backoff.reset()  # a new leader: it deserves a fresh, prompt attempt
        except _Fatal as exc:
            await self._abort_with(str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: report it rather than die silently
            log.exception("scheduler subscription loop failed")
            await self._abort_with(f"internal error: {exc!r}")

    async def _backoff_sleep(self, seconds: float, tried: str) -> bool:
        """Sleep out a backoff, but wake early when stopped or when the detector advertises a
        leader other than `tried` (after a failover the new leader is there to be used at
        once). True if woken by a leader change."""
        stopped = asyncio.ensure_future(self._stopped.wait())
        changed = asyncio.ensure_future(self._locator.wait_for_change(tried))
        try:
            await asyncio.wait({stopped, changed}, timeout=seconds,
                               return_when=asyncio.FIRST_COMPLETED)
            return changed.done() and not changed.cancelled()
        finally:
            stopped.cancel()
            changed.cancel()

    async def _subscribe(self, base: str) -> Any:
        assert self._stream_session is not None
        call = Call(
            type=CallType.SUBSCRIBE,
            framework_id=self.framework_info.id,
            subscribe=Subscribe(
                framework_info=self.framework_info,
                suppressed_roles=list(self.options.suppressed_roles),
            ),
        )
        return await open_stream(
            self._stream_session,
            base + SCHEDULER_PATH,
            encode(call),
            headers={"Connection": "close"},
        )

    async def _consume(self, base: str, stream: Any, backoff: Backoff) -> bool:
        """Read one subscription's events until it ends. True when the end is fatal."""
        self._stream = stream
        self._drop_stream.clear()
        sid = stream.headers.get("Mesos-Stream-Id")
        subscribed = False
        fatal = False
        dropper = asyncio.ensure_future(self._drop_stream.wait())
        dropper.add_done_callback(lambda _: stream.close())
        # Until SUBSCRIBED arrives, the first event is due within the connect timeout.
        timeout = self.options.connect_timeout
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout) as watchdog:
                async for record in stream.records():
                    event = check_event(decode(record, Event))
                    if event.type == EventType.SUBSCRIBED:
                        assert event.subscribed is not None
                        subscribed = True
                        self._on_subscribed(base, sid, event)
                        backoff.reset()
                        self._locator.subscribed()
                        timeout = self._watchdog_timeout()
                    elif event.type == EventType.ERROR:
                        fatal = True
                        self.aborted_message = event.error.message if event.error else "error"
                    watchdog.reschedule(loop.time() + timeout)
                    await self._queue.put(event)
                    if fatal:
                        break
            if not fatal and not self._drop_stream.is_set():
                log.info("subscription stream from %s ended", base)
        except TimeoutError:
            log.warning("no event from %s for %.1f s; reconnecting", base, timeout)
        except (aiohttp.ClientError, OSError, DecodeError) as exc:
            log.info("subscription stream from %s broke: %s", base, _describe(exc))
        finally:
            dropper.cancel()
            self._close_stream()
            self.stream_id = None
            self._subscribed.clear()
            if subscribed and not fatal:  # after an ERROR the client stops instead
                await self._queue.put(_Disconnected())
        return fatal

    def _watchdog_timeout(self) -> float:
        if self.options.heartbeat_timeout is not None:
            return self.options.heartbeat_timeout
        return self.options.heartbeat_misses * self.heartbeat_interval

    def _on_subscribed(self, base: str, sid: str | None, event: Event) -> None:
        assert event.subscribed is not None
        sub = event.subscribed
        self.framework_info.id = sub.framework_id
        self.master_url = base
        self.master_info = sub.master_info
        self.stream_id = sid
        if sub.heartbeat_interval_seconds:
            self.heartbeat_interval = sub.heartbeat_interval_seconds
        self._subscribed.set()
        log.info("subscribed to %s as framework %s", base, sub.framework_id.value)

    async def _abort_with(self, message: str) -> None:
        self.aborted_message = message
        await self._queue.put(Event(type=EventType.ERROR, error=Error(message=message)))
        await self._queue.put(_Finished())

    # ------------------------------------------------------------------ delivery

    async def _dispatch(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, _Finished):
                    self._stopped.set()
                    return
                if isinstance(item, _Disconnected):
                    await self._invoke(self.scheduler.disconnected, (self._driver,))
                    continue
                first = False
                if item.type == EventType.SUBSCRIBED:
                    self.subscriptions += 1
                    first = self.subscriptions == 1
                target = callback_for(self.scheduler, self._driver, item, first_subscription=first)
                if target is not None:
                    await self._invoke(target[0], target[1])
                if item.type == EventType.UPDATE and self.options.implicit_acknowledgements:
                    assert item.update is not None
                    await self._implicit_ack(item.update.status)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A failing callback must not kill delivery; the update stays unacknowledged
                # and the agent will resend it.
                log.exception("scheduler callback failed for %s", _kind(item))

    async def _implicit_ack(self, status: TaskStatus) -> None:
        if status.uuid is None or status.agent_id is None:
            return  # master-generated updates are not acknowledged
        try:
            await self.acknowledge(status)
        except SchedulerError as exc:
            log.info("implicit acknowledgement of %s failed: %s", status.task_id.value, exc)

    # ------------------------------------------------------------------ calls

    async def call(self, call: Call) -> bytes:
        """Send one non-SUBSCRIBE call on the call connection; return the response body."""
        base, sid = self.master_url, self.stream_id
        if base is None or sid is None or self._call_session is None:
            raise NotSubscribedError(f"{call.type} needs a live subscription")
        if call.framework_id is None:
            call.framework_id = self.framework_id
        try:
            status, body = await post_call(
                self._call_session,
                base + SCHEDULER_PATH,
                encode(call),
                headers={"Mesos-Stream-Id": sid},
                timeout=self.options.call_timeout,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise NotSubscribedError(f"{call.type} failed: {_describe(exc)}") from None
        if status in (200, 202):
            return body
        if status == 307:
            # The master lost leadership; the stream will break too, re-subscribe at once.
            self.reconnect()
        raise CallRejectedError(str(call.type), status, body.decode(errors="replace").strip())

    async def _send(self, call_type: CallType, **payload: Any) -> bytes:
        return await self.call(Call(type=call_type, framework_id=self.framework_id, **payload))

    def _framework_updated(self, info: FrameworkInfo) -> None:
        self.framework_info = msgspec.structs.replace(info)

    async def acknowledge(self, status: TaskStatus) -> None:
        """Acknowledge a status update that carried a uuid (needed only without implicit
        acknowledgements)."""
        if status.uuid is None or status.agent_id is None:
            raise SchedulerError("only updates with a uuid and an agent_id are acknowledged")
        await self._send(
            CallType.ACKNOWLEDGE,
            acknowledge=Acknowledge(
                agent_id=status.agent_id, task_id=status.task_id, uuid=status.uuid
            ),
        )


def _kind(item: Event | _Disconnected | _Finished) -> str:
    return "disconnection" if isinstance(item, _Disconnected) else str(item.type)


def _describe(exc: BaseException) -> str:
    """A short human reason for a transport failure."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError):
            return "connection refused"
        return (os_error.strerror or str(os_error)).lower()
    return str(exc) or type(exc).__name__
