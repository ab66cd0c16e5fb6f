"""The master's HTTP shell (aiohttp): routes, request checks, streams, timers.

Thin by design: it checks method/headers/body (`mezzo.net.http`), decodes with
`mezzo.api.codec`, hands the call to the core (`mezzo.master.core.Master`) and carries the
core's effects out (`HttpOutbox`: events onto `RecordStream`s, registry operations onto the
`Registrar`). It also runs the timer loop (`tick()` at each `next_deadline()`), and, when the
core requests an allocation, one callback at the time the core says that run is due (at once,
or at the end of the coalescing window since the last run; every request until then joins it).

Routes (spec §1.1): `/api/v1/scheduler`, `/api/v1/agent` (internal: the agent's socket, or
the older SUBSCRIBE stream and POSTed calls), `/api/v1[/...]`
(operator), `/version`, `/health`, `/redirect`, `/state`, `/state.json`, `/frameworks`,
`/slaves`, `/tasks`, `/flags`, `/teardown`, each also under `/master`, and `/metrics/snapshot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from mezzo.api import operator as op
from mezzo.api.codec import decode, encode, to_builtins
from mezzo.api.common import FrameworkID
from mezzo.api.internal import AgentCall, AgentCallType, AgentError, AgentEvent, AgentEventType
from mezzo.api.scheduler import CallType, Error, Event, EventType, decode_call
from mezzo.core.metrics import DaemonMetrics
from mezzo.master import forked_document, legacy, views
from mezzo.master import metrics as master_metrics
from mezzo.master.auth import MasterSecurity, check_call_principal, check_subscribe_principal
from mezzo.master.core import CallRefused, Master
from mezzo.master.leadership import ELECTED, NO_LEADER, Leadership, Phase
from mezzo.master.operator_api import OperatorApi
from mezzo.master.quota import quota_status
from mezzo.master.registry import Registrar, RegistryOperation
from mezzo.master.slices import Slices
from mezzo.master.webui import WebUi
from mezzo.net.fastpath import FastRoute, SocketRoute, add_fast_route, add_socket_route
from mezzo.net.http import JSON, MAX_BODY_BYTES, HTTPProblem, Reply, json_response, text_response
from mezzo.net.http_metrics import HttpTimings, http_metrics_middleware, socket_message_observer
from mezzo.net.message_socket import (
    BaseMessageSocket,
    Register,
    SocketSubscriber,
    is_socket_request,
    serve_socket,
)
from mezzo.net.request import (
    check_json_accept,
    decode_body,
    media_type,
    new_app,
    read_body,
    read_form,
    require_json_accept,
)
from mezzo.net.stream import RecordStream, Subscriber, serve_subscription
from mezzo.security.authentication import SCHEDULER_REALM, principal_of
from mezzo.security.rate_limits import RateLimited

log = logging.getLogger("mezzo.master.http")

NOT_RECOVERED = "Master has not finished recovery"
SUBSCRIBE_WITH_STREAM_ID = "Subscribe calls should not include the 'Mesos-Stream-Id' header"
RECOVERY_HOLD = 10.0  # seconds a just-elected leader holds API calls while it recovers
# Longest the event loop serves /master/state without a break (see `state`). Short: a request
# waiting meanwhile needs several loop iterations (read, parse, its handler's steps, the
# write), each of which waits for the next slice, so it sees a few slices, not one: at 50 ms
# slices a /health probe measured 180-210 ms while GET_STATE was served at 1,000 agents.
STATE_SLICE_SECONDS = 0.01
# ... and the longest: on a busy loop a slice lasts as long as the other work before it
# (`mezzo.master.slices`), up to this.
STATE_SLICE_MAX_SECONDS = 0.025
# What a big document's connection may buffer before the making waits for the client (see
# `_write_pieces`); transient, and bytes are not the collector's business.
WRITE_BUFFER_BYTES = 16 << 20
# Served by every master, leading or not (spec §2.5): liveness, version, this master's own
# metrics (with master/elected 0/1) and flags, and the redirect endpoint itself.
# Operator calls the core decides; answered once their registry writes are applied.
OPERATOR_DECISIONS = frozenset({
    op.CallType.UPDATE_WEIGHTS, op.CallType.TEARDOWN, op.CallType.MARK_AGENT_GONE,
    op.CallType.UPDATE_QUOTA, op.CallType.SET_QUOTA, op.CallType.REMOVE_QUOTA,
    op.CallType.RESERVE_RESOURCES, op.CallType.UNRESERVE_RESOURCES,
    op.CallType.CREATE_VOLUMES, op.CallType.DESTROY_VOLUMES, op.CallType.GROW_VOLUME,
    op.CallType.SHRINK_VOLUME,
})
SERVED_BY_ANY_MASTER = frozenset(
    prefix + path
    for prefix in ("", "/master")
    for path in ("/health", "/redirect", "/flags")
) | {"/version", "/metrics/snapshot", "/metrics", "/logging/toggle"} | {
    f"/files/{name}{suffix}" for name in ("browse", "read", "download", "debug")
    for suffix in ("", ".json")
}


class HttpOutbox:
    """Carries the core's effects out: streams are `RecordStream`s; registry operations go to
    one worker thread that applies them in order, off the event loop (a ZooKeeper write is a
    network round trip), those queued while a batch is written together as the next batch,
    and each is reported to the core once applied (`applied`, set to
    `Master.registry_applied` by `MasterServer`)."""

    def __init__(self, registrar: Registrar) -> None:
        self.registrar = registrar
        self.applied: Callable[[RegistryOperation], None] = lambda operation: None
        # Called (on the loop) when a registry write fails: the registry is then unusable and
        # the master gives up, as a Mesos master whose registrar fails aborts.
        self.failed: Callable[[str], None] = lambda reason: None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="registry")
        self._pending: list[RegistryOperation] = []  # queued while a batch is being written
        self._running: asyncio.Future[None] | None = None  # the batch being written
        self._closed = False
        self.queued = 0  # operations handed to the worker and not yet applied (metrics)

    def send_framework(self, stream: RecordStream, event: Event) -> None:
        stream.send(encode(event))

    def close_framework(self, stream: RecordStream) -> None:
        stream.close()

    def send_agent(self, stream: RecordStream, event: AgentEvent) -> None:
        stream.send(encode(event))

    def close_agent(self, stream: RecordStream) -> None:
        stream.close()

    def registry(self, operation: RegistryOperation) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self._closed:  # not serving (yet, or any more): nothing waits
            self.registrar.apply(operation)
            self.applied(operation)
            return
        self._pending.append(operation)
        self.queued += 1
        if self._running is None:
            self._next_batch(loop)

    def _next_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand everything queued to the worker as one batch (`Registrar.apply_batch`): what
        arrives while it is written goes in the next one, so writes keep up with a surge of
        registrations in a few store commits instead of one each."""
        batch, self._pending = self._pending, []
        future = loop.run_in_executor(self._worker, self.registrar.apply_batch, batch)
        self._running = future
        future.add_done_callback(lambda done: self._done(batch, done, loop))

    def _done(self, batch: list[RegistryOperation], future: asyncio.Future[None],
              loop: asyncio.AbstractEventLoop) -> None:
        self._running = None
        self.queued -= len(batch)
        if future.cancelled():
            return
        problem = future.exception()
        if problem is not None:
            names = sorted({type(operation).__name__ for operation in batch})
            log.error("registry write %s failed: %r", "/".join(names), problem)
            self.failed(f"registry write failed: {problem!r}")
            return
        if self.registrar.fenced is None:  # fenced: another master owns it; we are leaving
            for operation in batch:
                self.applied(operation)
        if self._pending and not self._closed:
            self._next_batch(loop)

    async def flush(self) -> None:
        """Wait until every registry operation queued so far has been applied (or failed)."""
        while self._running is not None:
            await asyncio.wait([self._running])

    def close(self) -> None:
        """Stop the worker (after the batch being written); the operations still queued, and
        later ones, are applied inline."""
        self._closed = True
        self._worker.shutdown(wait=True)
        pending, self._pending = self._pending, []
        if pending:
            self.registrar.apply_batch(pending)
            self.queued -= len(pending)
            if self.registrar.fenced is None:
                for operation in pending:
                    self.applied(operation)

    def send_operator(self, streams: list[RecordStream], event: op.Event) -> None:
        OperatorApi.send(streams, event)

    def close_operator(self, stream: RecordStream) -> None:
        OperatorApi.close(stream)


class MasterServer:
    def __init__(
        self,
        master: Master,
        *,
        flags: dict[str, str] | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        leadership: Leadership | None = None,
        security: MasterSecurity | None = None,
    ) -> None:
        self.master = master
        self.security = security or MasterSecurity()
        # reserve_resources / unreserve_resources / run_tasks are decided in the core.
        master.authorize = self.security.authorization.allowed
        # Where the leader is when we are not (HA); None without an election (standalone,
        # in-process tests): then nobody else can lead. Whether *we* lead is `master.phase`.
        self.leadership = leadership
        self.flags = flags or {}
        self.max_body_bytes = max_body_bytes
        self._timer_task: asyncio.Task[None] | None = None
        self._allocation_timer: asyncio.TimerHandle | None = None
        self._leading = asyncio.Event()  # set while the phase is LEADING
        master._wake = self._schedule_allocation
        master.on_phase = self._phase_changed
        if master.phase is Phase.LEADING:
            self._leading.set()
        # The outbox when it is this shell's (not a test's recording one).
        self.outbox = master.outbox if isinstance(master.outbox, HttpOutbox) else None
        if self.outbox is not None:
            self.outbox.applied = master.registry_applied
        self.operator_api = OperatorApi(master, log_dir=self.flags.get("log_dir"),
                                        slice_seconds=STATE_SLICE_SECONDS,
                                        max_slice_seconds=STATE_SLICE_MAX_SECONDS)
        self.http_metrics = DaemonMetrics(http=True)
        self.http_timings = HttpTimings(self.http_metrics)
        authenticator = self.security.authenticator
        self._authenticating_frameworks = authenticator is not None and SCHEDULER_REALM in authenticator.realms
        # Plain scheduler calls answered from the connection's protocol (`_fast_accepts`); off,
        # every call goes through aiohttp's handler chain (tests compare the two).
        self.fast_path = True
        # `Authorization` headers already proven, and their principal (see `_fast_principal`).
        self._proven: dict[str, str] = {}
        # principal -> [scheduler calls received, processed] (`frameworks/<principal>/...`).
        self.principal_messages: dict[str, list[int]] = {}
        self.webui = WebUi(master, self.security.tls)
        self.app = self._build_app()

    # ------------------------------------------------------------------ lifecycle

    def _build_app(self) -> web.Application:
        app = new_app(client_max_size=self.max_body_bytes,
                      middlewares=[http_metrics_middleware(self.http_metrics, self.http_timings),
                                   *self.security.middlewares(), self._leader_gate])
        r = app.router
        fast_scheduler = FastRoute(self._fast_accepts, self._fast_scheduler, self.http_timings)
        fast_agent = SocketRoute(self._fast_agent_accepts, self._fast_agent_open, self.http_timings)
        for prefix in ("", "/master"):
            r.add_route("*", prefix + "/api/v1/scheduler", self.scheduler)
            add_fast_route(app, prefix + "/api/v1/scheduler", fast_scheduler)
            r.add_route("*", prefix + "/api/v1/agent", self.agent)
            add_socket_route(app, prefix + "/api/v1/agent", fast_agent)
            r.add_route("*", prefix + "/api/v1", self.operator)
            r.add_route("*", prefix + "/api/v1/{tail:.*}", self.operator)
            r.add_get(prefix + "/health", self.health)
            r.add_get(prefix + "/redirect", self.redirect)
            r.add_get(prefix + "/state", self.state)
            r.add_get(prefix + "/state.json", self.state)
            r.add_get(prefix + "/frameworks", self.frameworks)
            r.add_get(prefix + "/slaves", self.slaves)
            r.add_get(prefix + "/tasks", self.tasks)
            r.add_get(prefix + "/flags", self.flags_view)
            r.add_get(prefix + "/state-summary", self.state_summary)
            r.add_get(prefix + "/roles", self.roles)
            r.add_get(prefix + "/roles.json", self.roles)
            r.add_get(prefix + "/weights", self.weights_view)
            r.add_get(prefix + "/quota", self.quota_view)
            r.add_post(prefix + "/teardown", self.legacy_teardown)
        r.add_get("/version", self.version)
        r.add_get("/metrics/snapshot", self.metrics)
        r.add_get("/metrics", self.prometheus)
        self.operator_api.add_routes(app)
        self.webui.add_routes(app)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        return app

    @property
    def leading(self) -> bool:
        """Elected: this master answers for the cluster (RECOVERING or LEADING)."""
        return self.master.phase in ELECTED

    def _phase_changed(self, phase: Phase) -> None:
        if phase is Phase.LEADING:
            self._leading.set()  # releases the calls `_wait_recovered` holds
        else:
            self._leading.clear()
        if phase is Phase.FENCED:
            self.drop_everything(f"master lost leadership: {self.master.fenced_reason}")

    @web.middleware
    async def _leader_gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Only the leader serves the APIs and state: others answer 307 to it, or 503."""
        if self.leading or request.path in SERVED_BY_ANY_MASTER:
            return await handler(request)
        leader = self.leadership.leader() if self.leadership is not None else None
        if leader is None:
            return text_response(503, NO_LEADER)
        # Mesos' redirect keeps the path and query: `Location: //host:port/api/v1/scheduler`.
        return web.Response(status=307, headers={"Location": f"//{leader}{request.path_qs}"})

    async def _wait_recovered(self) -> bool:
        """True once the core is recovered. A just-elected HA leader *holds* subscriptions
        that arrive while it reads the registry (up to RECOVERY_HOLD seconds) instead of
        answering 503: after a failover every agent and framework arrives within a moment,
        and 503s would have them all retrying against a master busy recovering."""
        if self.master.phase is Phase.LEADING:
            return True
        if self.leadership is None or self.master.phase is not Phase.RECOVERING:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._leading.wait(), RECOVERY_HOLD)
        return self.master.phase is Phase.LEADING

    def drop_everything(self, reason: str) -> None:
        """Leadership lost: close every stream at once so nobody keeps talking to us; the
        process then exits (as a Mesos master does) and a new leader rebuilds the state."""
        if self._timer_task is not None:
            self._timer_task.cancel()
        if self._allocation_timer is not None:
            self._allocation_timer.cancel()
        for framework in self.master.frameworks.values():
            if framework.stream is not None:
                framework.stream.close(reason)
        for agent in self.master.agents.values():
            if agent.stream is not None:
                agent.stream.close(reason)
        for pending in self.master.registering.values():
            pending.stream.close(reason)  # type: ignore[attr-defined]
        self.master.events.close_all()

    async def _on_startup(self, _: web.Application) -> None:
        self._timer_task = asyncio.create_task(self._timers())

    async def _on_shutdown(self, _: web.Application) -> None:
        # End every open stream so that the server can stop without waiting for clients.
        for framework in self.master.frameworks.values():
            if framework.stream is not None:
                framework.stream.close("master shutting down")
        for agent in self.master.agents.values():
            if agent.stream is not None:
                agent.stream.close("master shutting down")
        for pending in self.master.registering.values():
            pending.stream.close("master shutting down")  # type: ignore[attr-defined]
        self.master.events.close_all()

    async def _on_cleanup(self, _: web.Application) -> None:
        if self.outbox is not None:  # what was decided is written before the store closes
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.outbox.flush(), 5.0)
            self.outbox.close()
        if self._allocation_timer is not None:
            self._allocation_timer.cancel()
        if self._timer_task is not None:
            self._timer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer_task

    def _schedule_allocation(self) -> None:
        """The core has a pending allocation: run it when the core says it is due. A plain
        loop callback, not a pass of the timer loop: at thousands of launches a second the
        allocation path must cost no more than the run itself."""
        if self._allocation_timer is not None:
            self._allocation_timer.cancel()
        due = self.master.allocation_due
        delay = 0.0 if due is None else max(0.0, due - self.master.now())
        self._allocation_timer = asyncio.get_running_loop().call_later(delay, self._run_due_allocation)

    def _run_due_allocation(self) -> None:
        self._allocation_timer = None
        master = self.master
        if not master.allocation_pending or master.phase is not Phase.LEADING:
            return  # a batch run came first, or this master stopped leading
        if master.allocation_due is not None and master.now() < master.allocation_due:
            self._schedule_allocation()  # woke early (the two clocks disagree slightly)
            return
        try:
            master.allocate()
        except Exception:  # a bug in one run must not stop allocations; the batch retries
            log.exception("master allocation failed")

    async def _timers(self) -> None:
        master = self.master
        while True:
            if master.phase is not Phase.LEADING:
                # A standby (or a leader still recovering) has nothing to time.
                await asyncio.sleep(0.1)
                continue
            delay = master.next_deadline() - master.now()
            if delay > 0:
                await asyncio.sleep(min(delay, 1.0))
            try:
                master.tick()
            except Exception:  # a bug in one timer must not stop them all
                log.exception("master timer failed")
                await asyncio.sleep(0.1)

    # ------------------------------------------------------------------ scheduler API

    async def scheduler(self, request: web.Request) -> web.StreamResponse:
        """The scheduler API through aiohttp's handler chain. Plain calls of a leading master
        take the fast path instead (`_fast_scheduler`); both answer through the same checks."""
        try:
            body = await read_body(request, max_bytes=self.max_body_bytes)
        except HTTPProblem as problem:
            return problem.response()
        if not await self._wait_recovered():
            return text_response(503, NOT_RECOVERED)
        try:
            call = self._checked_call(body, request.headers, principal_of(request))
        except HTTPProblem as problem:
            return problem.response()
        principal = self._count_received(call)
        if self.security.rate_limits is not None:
            refused = await self._throttle(request, call)
            if refused is not None:
                return refused
        if principal is not None:
            self.principal_messages[principal][1] += 1
        stream_id = request.headers.get("Mesos-Stream-Id")
        if call.type == CallType.SUBSCRIBE:
            if stream_id is not None:
                return text_response(400, SUBSCRIBE_WITH_STREAM_ID)
            return await self._subscribe(request, call)
        return self._handle_call(call, stream_id).response()

    def _fast_accepts(self, headers: Mapping[str, str]) -> bool:
        """Which scheduler calls the fast path may answer (`mezzo.net.fastpath`): those that
        would go straight through `scheduler`'s awaits and the authentication middleware,
        that is a leading master with no `--rate_limits`, frameworks not authenticated or
        this one's Basic credentials right, a JSON body, and a `Mesos-Stream-Id` (a
        SUBSCRIBE has none: it opens a stream), within the size limit."""
        return (self.fast_path and self.master.phase is Phase.LEADING
                and self.security.rate_limits is None
                and (not self._authenticating_frameworks or self._fast_principal(headers) is not None)
                and "Mesos-Stream-Id" in headers
                and int(headers["Content-Length"]) <= self.max_body_bytes
                and media_type(headers.get("Content-Type", "")) == JSON)

    def _fast_principal(self, headers: Mapping[str, str]) -> str | None:
        """The principal a request's Basic credentials prove (None: not proven, the
        authentication middleware answers). A header proven once is remembered (the
        credentials are read once, at start-up): a framework sends the same one with every
        call. Executor tokens (Bearer) are the middleware's."""
        header = headers.get("Authorization")
        if header is None:
            return None
        principal = self._proven.get(header)
        if principal is None:
            authenticator = self.security.authenticator
            if authenticator is None or authenticator.tokens is not None:
                return None
            principal = authenticator.authenticate(header)
            if principal is None:
                return None
            if len(self._proven) >= 1024:
                self._proven.clear()
            self._proven[header] = principal
        return principal

    def _fast_scheduler(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """`scheduler`, for a request `_fast_accepts` took: the same steps, none of which
        waits."""
        principal = self._fast_principal(headers) if self._authenticating_frameworks else None
        try:
            call = self._checked_call(body, headers, principal)
        except HTTPProblem as problem:
            return problem.reply()
        principal = self._count_received(call)
        if principal is not None:
            self.principal_messages[principal][1] += 1
        if call.type == CallType.SUBSCRIBE:
            return Reply(400, SUBSCRIBE_WITH_STREAM_ID)
        return self._handle_call(call, headers.get("Mesos-Stream-Id"))

    def _checked_call(self, body: bytes, headers: Mapping[str, str], principal: str | None) -> Any:
        """The decoded call, checked (HTTPProblem otherwise): Accept for the calls answered
        with a body, the framework's principal, and a known type."""
        call = decode_body(body, decode_call, "scheduler::Call")
        if call.type in (CallType.SUBSCRIBE, CallType.RECONCILE_OPERATIONS):
            check_json_accept(headers.get("Accept"))
        if call.type == CallType.SUBSCRIBE and call.subscribe is not None:
            check_subscribe_principal(principal, call.subscribe.framework_info)
        elif call.framework_id is not None:
            check_call_principal(principal, self.master.frameworks.get(call.framework_id.value))
        if call.type == CallType.UNKNOWN:
            raise HTTPProblem(501, "Received an unexpected UNKNOWN call")
        return call

    def _count_received(self, call: Any) -> str | None:
        """Count the call against its framework's principal (`messages_received`); returns
        the principal, whose `messages_processed` the caller counts once it is let through."""
        principal = self._framework_principal(call)
        if principal is not None:
            self.principal_messages.setdefault(principal, [0, 0])[0] += 1
        return principal

    def _handle_call(self, call: Any, stream_id: str | None) -> Reply:
        """A checked non-SUBSCRIBE call, to the core."""
        try:
            return Reply(self.master.scheduler_call(call, stream_id))
        except CallRefused as refused:
            return Reply(refused.status, refused.message)

    def _framework_principal(self, call: Any) -> str | None:
        """The principal of a registered framework's call (Mesos counts its messages)."""
        if call.framework_id is None:
            return None
        framework = self.master.frameworks.get(call.framework_id.value)
        return (framework.info.principal or None) if framework is not None else None

    async def _throttle(self, request: web.Request, call: Any) -> web.Response | None:
        """`--rate_limits` (`mezzo.security.rate_limits`): wait for the call's permit, or 429
        once its principal's limiter holds `capacity` waiting calls (Mesos's message)."""
        limits = self.security.rate_limits
        assert limits is not None
        framework = (self.master.frameworks.get(call.framework_id.value)
                     if call.framework_id is not None else None)
        principal = principal_of(request)
        if principal is None and framework is not None:
            principal = framework.info.principal or None
        if principal is None and call.type == CallType.SUBSCRIBE and call.subscribe is not None:
            principal = call.subscribe.framework_info.principal or None
        try:
            delay, limiter = limits.admit(principal, framework is not None,
                                          asyncio.get_running_loop().time())
        except RateLimited as exc:
            log.warning("Dropping %s call from framework %s%s: %s", call.type,
                        call.framework_id.value if call.framework_id else "(new)",
                        f" ({principal})" if principal else "", exc)
            return text_response(429, f"Message {call.type} dropped: {exc}",
                                 {"Retry-After": "1"})
        if limiter is not None:
            try:
                if delay > 0:
                    await asyncio.sleep(delay)
            finally:
                limiter.done()
        return None

    async def _subscribe(self, request: web.Request, call: Any) -> web.StreamResponse:
        refusal = self.security.authorization.subscribe_refusal(principal_of(request), call.subscribe.framework_info)

        def register(stream: RecordStream) -> Subscriber:
            if refusal is not None:  # register_frameworks: an ERROR on the stream, as Mesos
                stream.send(encode(Event(type=EventType.ERROR, error=Error(message=refusal))))
                stream.close()
                return Subscriber()
            result = self.master.subscribe(call, stream)
            framework_id = result.framework_id
            if framework_id is None or result.stream_id is None:
                return Subscriber()  # refused: the stream carries the ERROR and closes
            return Subscriber(
                headers={"Mesos-Stream-Id": result.stream_id},
                ended=lambda _: self.master.framework_disconnected(framework_id, stream),
            )

        return await serve_subscription(request, register)

    # ------------------------------------------------------------------ agent protocol

    async def agent(self, request: web.Request) -> web.StreamResponse:
        if is_socket_request(request):
            return await self._agent_socket(request)
        try:
            body = await read_body(request, max_bytes=self.max_body_bytes)
        except HTTPProblem as problem:
            return problem.response()
        if not await self._wait_recovered():
            return text_response(503, NOT_RECOVERED)
        try:
            call = decode_body(body, _decode_agent_call, "agent call")
        except HTTPProblem as problem:
            return problem.response()
        if call.type == AgentCallType.SUBSCRIBE:
            if call.subscribe is None:
                return text_response(400, "Expecting 'subscribe' to be present")
            if call.subscribe.pid is None and request.remote:
                # An agent that does not say its pid is reached where it connected from.
                port = call.subscribe.agent_info.port or 5051
                call.subscribe.pid = f"slave(1)@{request.remote}:{port}"
            subscribe = call.subscribe
            try:
                self.security.authorization.require(principal_of(request), "register_agents", None,
                                                    "register agents")
            except HTTPProblem as problem:
                return problem.response()

            def register(stream: RecordStream) -> Subscriber:
                agent_id = self.master.agent_subscribe(subscribe, stream).agent_id
                if agent_id is None:
                    return Subscriber()  # refused: the stream carries the reason and closes
                return Subscriber(ended=lambda _: self.master.agent_disconnected(agent_id, stream))

            return await serve_subscription(request, register)
        try:
            self.master.agent_call(call)
        except CallRefused as refused:
            return text_response(refused.status, refused.message)
        return web.Response(status=202)

    async def _agent_socket(self, request: web.Request) -> web.StreamResponse:
        """The agent's one connection (`mezzo.api.internal`): a WebSocket whose first message
        is the SUBSCRIBE call; the agent's events go down it, its calls come up it. What a
        POST would have been refused with before the call is read (503 while recovering,
        401, 403 `register_agents`) refuses the handshake; a refused call gets an ERROR
        event naming it (`AgentError.refused_call`) and the socket stays open. A plain
        handshake to a leading master takes the fast path instead (`_fast_agent_accepts`):
        the same socket, read by its own protocol."""
        if not await self._wait_recovered():
            return text_response(503, NOT_RECOVERED)
        try:
            self.security.authorization.require(principal_of(request), "register_agents", None,
                                                "register agents")
        except HTTPProblem as problem:
            return problem.response()
        observe = socket_message_observer(self.http_metrics, request)
        return await serve_socket(request, self._agent_register(request.remote, observe))

    def _fast_agent_accepts(self, headers: Mapping[str, str]) -> bool:
        """Which agent handshakes the fast path may take (`mezzo.net.fastpath`): those that
        `_agent_socket` would accept at once, that is a leading master with neither
        authentication nor authorization configured."""
        return (self.fast_path and self.master.phase is Phase.LEADING
                and self.security.authenticator is None
                and not self.security.authorization.enabled)

    def _fast_agent_open(self, headers: Mapping[str, str], remote: str | None,
                         observe: Callable[[float], None] | None) -> Register:
        return self._agent_register(remote, observe)

    def _agent_register(self, remote: str | None, observe: Callable[[float], None] | None) -> Register:
        """What an agent socket's first message goes to, whichever way it was opened."""

        def register(socket: BaseMessageSocket, first: bytes) -> SocketSubscriber:
            try:
                call = decode_body(first, _decode_agent_call, "agent call")
                if call.type != AgentCallType.SUBSCRIBE or call.subscribe is None:
                    raise HTTPProblem(400, "Expecting the first message to be a SUBSCRIBE call "
                                           "with 'subscribe' present")
            except HTTPProblem as problem:
                _refuse_call(socket, AgentCallType.SUBSCRIBE, problem.status, problem.message)
                socket.close("subscription refused")
                return SocketSubscriber()
            subscribe = call.subscribe
            if subscribe.pid is None and remote:
                port = subscribe.agent_info.port or 5051  # reached where it connected from
                subscribe.pid = f"slave(1)@{remote}:{port}"
            agent_id = self.master.agent_subscribe(subscribe, socket).agent_id
            if agent_id is None:
                return SocketSubscriber()  # refused: the socket carries the reason and closes
            calls = _AgentSocketCalls(self.master, agent_id, socket, observe)
            return SocketSubscriber(on_message=calls, ended=calls.ended)

        return register

    # ------------------------------------------------------------------ operator API

    async def operator(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await read_body(request, max_bytes=self.max_body_bytes)
        except HTTPProblem as problem:
            return problem.response()
        if not self.master.recovered:
            return text_response(503, NOT_RECOVERED)
        try:
            call = decode_body(body, op.decode_master_call, "master::Call")
            require_json_accept(request)  # after the call is known to be well formed, as Mesos
        except HTTPProblem as problem:
            return problem.response()
        principal = principal_of(request)
        try:
            self.security.authorization.check_operator_call(principal, call, self.master)
        except HTTPProblem as problem:
            return problem.response()
        if call.type == op.CallType.SUBSCRIBE:
            authz = self.security.authorization
            if not authz.enabled:
                return await self.operator_api.subscribe(request)
            return await self.operator_api.subscribe(
                request, authz.view(principal, self.master), authz.viewer(principal))
        if call.type in views.STREAMED_CALLS:
            # GET_STATE & co.: encoded entry by entry, yielding to the loop (see `state`).
            viewed = self.security.authorization.view(principal, self.master)
            return await self._write_pieces(request, views.operator_pieces(viewed, call.type),
                                            what=str(call.type))
        response = self._operator_call(call, principal)
        if response.status in (200, 202) and call.type in OPERATOR_DECISIONS and self.outbox is not None:
            await self.outbox.flush()  # answer once the decision is in the registry
        return response

    def _operator_call(self, call: op.Call, principal: str | None = None) -> web.Response:
        # What `principal` may view (view_frameworks/tasks/executors, view_roles).
        master = self.security.authorization.view(principal, self.master)
        t = op.CallType
        resp: op.Response
        match call.type:
            case t.UNKNOWN:
                return text_response(501, "Received an unexpected UNKNOWN call")
            case t.GET_HEALTH:
                resp = op.Response(type=t.GET_HEALTH, get_health=op.GetHealth(healthy=True))
            case t.GET_FLAGS:
                resp = op.Response(type=t.GET_FLAGS, get_flags=op.GetFlags(
                    flags=[op.Flag(name=k, value=v) for k, v in sorted(self.flags.items())]))
            case t.GET_VERSION:
                resp = op.Response(type=t.GET_VERSION, get_version=op.GetVersion(version_info=views.version_info()))
            case t.GET_METRICS:
                resp = op.Response(type=t.GET_METRICS, get_metrics=op.GetMetricsResponse(metrics=[
                    op.Metric(name=k, value=v) for k, v in self.metrics_snapshot().items()]))
            # GET_STATE, GET_AGENTS, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS: streamed by
            # `operator` (views.operator_pieces).
            case t.GET_ROLES:
                resp = op.Response(type=t.GET_ROLES, get_roles=views.get_roles(master))
            case t.GET_WEIGHTS:
                resp = op.Response(type=t.GET_WEIGHTS, get_weights=op.GetWeights(weight_infos=[
                    op.WeightInfo(role=r, weight=w) for r, w in sorted(master.weights.items())]))
            case t.GET_MASTER:
                resp = op.Response(type=t.GET_MASTER, get_master=op.GetMaster(
                    master_info=master.info, start_time=master.start_time, elected_time=master.elected_time))
            case t.GET_QUOTA:
                return json_response(json.dumps({"type": "GET_QUOTA", "get_quota": {
                    "status": quota_status(master.quota_config)}}).encode())
            case t.UPDATE_WEIGHTS | t.TEARDOWN | t.MARK_AGENT_GONE | t.UPDATE_QUOTA | t.SET_QUOTA \
                    | t.REMOVE_QUOTA:
                try:
                    self._operator_decision(call)
                except CallRefused as refused:
                    return text_response(refused.status, refused.message)
                return web.Response(status=200)
            case t.RESERVE_RESOURCES | t.UNRESERVE_RESOURCES:
                # As Mesos: 202 once applied to the master's view and sent to the agent.
                try:
                    if call.reserve_resources is not None:
                        r = call.reserve_resources
                        self.master.reserve_resources(r.agent_id.value, r.source, r.resources, principal)
                    elif call.unreserve_resources is not None:
                        u = call.unreserve_resources
                        self.master.unreserve_resources(u.agent_id.value, u.resources, principal)
                except CallRefused as refused:
                    return text_response(refused.status, refused.message)
                return web.Response(status=202)
            case t.CREATE_VOLUMES | t.DESTROY_VOLUMES | t.GROW_VOLUME | t.SHRINK_VOLUME:
                # As Mesos: 202 once applied to the master's view and sent to the agent.
                try:
                    self._volume_call(call, principal)
                except CallRefused as refused:
                    return text_response(refused.status, refused.message)
                return web.Response(status=202)
            case t.GET_OPERATIONS:
                resp = op.Response(type=t.GET_OPERATIONS, get_operations=op.GetOperations(
                    operations=[record.to_wire() for record in self.master.get_operations()]))
            case _:
                return self.operator_api.call(call)
        return json_response(encode(resp))

    # Mesos's master::Call validation of GROW_VOLUME / SHRINK_VOLUME without an agent.
    AGENT_DEFAULT_RESOURCES_ONLY = ("Failed to validate master::Call: Expecting 'agent_id' to be present;"
                                    " only agent default resources are supported right now")

    def _volume_call(self, call: op.Call, principal: str | None) -> None:
        """CREATE_VOLUMES, DESTROY_VOLUMES, GROW_VOLUME, SHRINK_VOLUME (CallRefused)."""
        master = self.master
        if call.create_volumes is not None:
            c = call.create_volumes
            master.create_volumes(c.agent_id.value, c.volumes, principal)
        elif call.destroy_volumes is not None:
            d = call.destroy_volumes
            master.destroy_volumes(d.agent_id.value, d.volumes, principal)
        elif call.grow_volume is not None:
            g = call.grow_volume
            if g.agent_id is None:
                raise CallRefused(400, self.AGENT_DEFAULT_RESOURCES_ONLY)
            master.grow_volume(g.agent_id.value, g.volume, g.addition, principal)
        elif call.shrink_volume is not None:
            s = call.shrink_volume
            if s.agent_id is None:
                raise CallRefused(400, self.AGENT_DEFAULT_RESOURCES_ONLY)
            master.shrink_volume(s.agent_id.value, s.volume, s.subtract, principal)

    def _operator_decision(self, call: op.Call) -> None:
        """The operator calls the core decides (it raises CallRefused to refuse them)."""
        t = op.CallType
        match call.type:
            case t.UPDATE_WEIGHTS:
                assert call.update_weights is not None
                self.master.update_weights(call.update_weights.weight_infos)
            case t.TEARDOWN:
                assert call.teardown is not None
                self.master.teardown_framework(call.teardown.framework_id.value)
            case t.MARK_AGENT_GONE:
                assert call.mark_agent_gone is not None
                self.master.mark_agent_gone(call.mark_agent_gone.agent_id.value)
            case t.UPDATE_QUOTA:
                self.master.update_quota(call.update_quota)
            case t.SET_QUOTA:
                self.master.set_quota(call.set_quota)
            case t.REMOVE_QUOTA:
                payload = call.remove_quota if isinstance(call.remove_quota, dict) else {}
                role = payload.get("role")
                if role is not None and not isinstance(role, str):
                    raise CallRefused(400, "Failed to validate master::Call: "
                                           "'remove_quota.role' must be a string")
                self.master.remove_quota(role or "")

    # ------------------------------------------------------------------ read endpoints

    async def version(self, request: web.Request) -> web.Response:
        return json_response(encode(views.version_info()))

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def redirect(self, request: web.Request) -> web.Response:
        if not self.leading:
            leader = self.leadership.leader() if self.leadership is not None else None
            if leader is None:
                return text_response(503, NO_LEADER)
            return web.Response(status=307, headers={"Location": f"//{leader}"})
        info = self.master.info
        host = info.hostname or (info.address.ip if info.address else "localhost")
        return web.Response(status=307, headers={"Location": f"//{host}:{info.port}"})

    def _json(self, request: web.Request, payload: Any) -> web.Response:
        body = json.dumps(payload).encode()
        jsonp = request.query.get("jsonp")
        if jsonp:
            body = jsonp.encode() + b"(" + body + b");"
        return json_response(body)

    def _not_recovered(self) -> web.Response | None:
        return None if self.master.recovered else text_response(503, NOT_RECOVERED)

    async def state(self, request: web.Request) -> web.StreamResponse:
        """Streamed in pieces (`views.state_pieces`), yielding to the event loop every
        `STATE_SLICE_SECONDS`: at 100,000 tasks the document takes seconds to build, and
        agents, frameworks and the allocator must not wait for it."""
        problem = self._not_recovered()
        if problem is not None:
            return problem
        jsonp = request.query.get("jsonp")
        viewed = self.security.authorization.view(principal_of(request), self.master)
        pieces = views.state_pieces(viewed, self.flags)
        if jsonp:
            pieces = itertools.chain((jsonp.encode() + b"(",), pieces, (b");",))
        return await self._write_pieces(request, pieces)

    async def _write_pieces(self, request: web.Request, pieces: Iterator[bytes],
                            what: str = "/master/state") -> web.StreamResponse:
        """A 200 JSON answer made of `pieces`, written a slice at a time (`mezzo.master.slices`:
        about half of a busy loop, slices of 10-25 ms): the pieces of a slice go out in one
        write, then the loop runs everything else waiting before the next slice is made.

        The connection buffers up to `WRITE_BUFFER_BYTES` meanwhile, so that a client slower
        to read than the master to write (a benchmark's client on a busy CPU) does not hold
        the making: the loop's time is the scarce one."""
        response = web.StreamResponse(headers={"Content-Type": JSON})
        await response.prepare(request)
        transport = request.transport
        if self._forks_documents(response, transport):
            assert transport is not None
            forked = await self._write_forked(response, transport, pieces, what)
            if forked is not None:
                return forked
        limits = transport.get_write_buffer_limits() if transport is not None else None
        if transport is not None:
            transport.set_write_buffer_limits(high=WRITE_BUFFER_BYTES)
        loop = asyncio.get_running_loop()
        slices = Slices(loop.time, minimum=STATE_SLICE_SECONDS, maximum=STATE_SLICE_MAX_SECONDS)
        pending: list[bytes] = []
        try:
            for piece in pieces:
                pending.append(piece)
                if slices.due():
                    await slices.write(response.write, b"".join(pending))
                    pending = []
                    await slices.pause()  # let everything else waiting on the loop run
            await slices.write(response.write, b"".join(pending))
            await response.write_eof()
        finally:
            if transport is not None and limits is not None and not transport.is_closing():
                transport.set_write_buffer_limits(high=limits[1], low=limits[0])
        slices.served(what)
        return response

    def _forks_documents(self, response: web.StreamResponse, transport: asyncio.BaseTransport | None) -> bool:
        """Whether this document is made by a forked copy of the master
        (`mezzo.master.forked_document`): `--forked_documents` allows it (auto: when a CPU is
        free to run the copy), the master is big, the platform can, and the answer is plain
        HTTP/1.1 chunks on a socket of its own (not compressed, not TLS)."""
        mode = self.flags.get("forked_documents", "auto")
        if mode == "never" or not forked_document.available() or transport is None or transport.is_closing():
            return False
        if response.headers.get("Transfer-Encoding") != "chunked" or response.compression:
            return False
        if transport.get_extra_info("sslcontext") is not None or transport.get_extra_info("socket") is None:
            return False
        master = self.master
        entries = len(master.agents)
        for framework in master.frameworks.values():
            entries += len(framework.tasks) + len(framework.completed_tasks)
        return entries >= forked_document.MIN_ENTRIES and (mode == "always" or forked_document.spare_cpu())

    async def _write_forked(self, response: web.StreamResponse, transport: asyncio.BaseTransport,
                            pieces: Iterator[bytes], what: str) -> web.StreamResponse | None:
        """`_write_pieces` by a forked copy of the master: the head is on the wire first, the
        child writes the body's chunks, this process the last one. None when the fork itself
        failed (no memory, or the process limit): the caller writes the pieces on the loop."""
        assert isinstance(transport, asyncio.WriteTransport)
        while transport.get_write_buffer_size():  # the head (or a slow client's bytes) first
            if transport.is_closing():
                return response
            await asyncio.sleep(0.001)
        try:
            done = await forked_document.write_document(transport.get_extra_info("socket").fileno(), pieces)
        except OSError as exc:
            log.warning("%s: cannot fork a copy to make it (%s); making it on the loop", what, exc)
            return None
        if not done.written or transport.is_closing():
            transport.abort()  # the client went away, or the child failed mid-body
            if done.client_gone or done.written:
                log.info("%s: the client went away or stopped reading; the forked copy (pid %d) "
                         "did not write the whole document", what, done.pid)
            else:
                log.warning("%s: the forked copy (pid %d) failed making the document", what, done.pid)
            return response
        try:
            await response.write_eof()
        except ConnectionResetError:  # gone since the child's last write
            return response
        log.log(logging.INFO if done.seconds >= 0.5 else logging.DEBUG,
                "%s: made and written by a forked copy (pid %d) in %.2f s (its CPU %.2f s, waiting "
                "for the client %.2f s); the fork held the loop %.1f ms",
                what, done.pid, done.seconds, done.child_cpu, done.child_waiting, done.fork_seconds * 1000)
        return response

    async def frameworks(self, request: web.Request) -> web.Response:
        master = self.security.authorization.view(principal_of(request), self.master)
        wanted = request.query.get("framework_id")

        def pick(frameworks: Any) -> list[dict[str, Any]]:
            return [views.framework_json(master, f) for f in frameworks if wanted in (None, f.id)]

        return self._json(request, {
            "frameworks": pick(master.frameworks.values()),
            "completed_frameworks": pick(master.completed_frameworks.values()),
            "unregistered_frameworks": [],
        })

    async def slaves(self, request: web.Request) -> web.Response:
        wanted = request.query.get("slave_id")
        executors = views.executor_resources(self.master)
        return self._json(request, {
            "slaves": [legacy.slave_full_json(self.master, a, executors) for a in self.master.agents.values()
                       if wanted in (None, a.id)],
            "recovered_slaves": [s for s in views.recovered_agents_json(self.master)
                                 if wanted in (None, s["id"])],
        })

    async def state_summary(self, request: web.Request) -> web.Response:
        return self._not_recovered() or self._json(request, legacy.state_summary_json(self.master))

    async def roles(self, request: web.Request) -> web.Response:
        return self._not_recovered() or self._json(request, legacy.roles_json(*self._roles_view(request)))

    async def quota_view(self, request: web.Request) -> web.Response:
        """Mesos's GET /quota: the QuotaStatus (`configs` and the deprecated `infos`)."""
        viewed = self.security.authorization.view(principal_of(request), self.master)
        return self._json(request, quota_status(viewed.quota_config))

    async def weights_view(self, request: web.Request) -> web.Response:
        return self._json(request, legacy.weights_json(self._roles_view(request)[1]))

    def _roles_view(self, request: web.Request) -> tuple[Any, dict[str, float]]:
        viewed = self.security.authorization.view(principal_of(request), self.master)
        return viewed, dict(viewed.weights)

    async def tasks(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "100"))
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            return text_response(400, "'limit' and 'offset' must be integers")
        try:
            viewed = self.security.authorization.view(principal_of(request), self.master)
            tasks = viewed.find_tasks(
                framework_id=request.query.get("framework_id"), task_id=request.query.get("task_id"),
                limit=limit, offset=offset, newest_first=request.query.get("order") != "asc",
            )
        except CallRefused as refused:
            return text_response(refused.status, refused.message)
        return self._json(request, {"tasks": [views._task_json(task) for task in tasks]})

    async def flags_view(self, request: web.Request) -> web.Response:
        try:
            self.security.authorization.require(principal_of(request), "view_flags", None, "view the flags")
        except HTTPProblem as problem:
            return problem.response()
        return self._json(request, {"flags": self.flags})

    def metrics_snapshot(self) -> dict[str, float]:
        values = master_metrics.snapshot(self.master, self.outbox, self.http_metrics, leading=self.leading)
        # Mesos's per-principal counters, while a framework with that principal is registered:
        # scheduler calls received, and processed (past --rate_limits' throttle).
        principals = {f.info.principal for f in self.master.frameworks.values() if f.info.principal}
        for principal in principals:
            received, processed = self.principal_messages.get(principal, (0, 0))
            values[f"frameworks/{principal}/messages_received"] = float(received)
            values[f"frameworks/{principal}/messages_processed"] = float(processed)
        return values

    async def metrics(self, request: web.Request) -> web.Response:
        return self._json(request, self.metrics_snapshot())

    async def prometheus(self, request: web.Request) -> web.Response:
        body = master_metrics.prometheus(self.master, self.outbox, self.http_metrics, leading=self.leading)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def legacy_teardown(self, request: web.Request) -> web.Response:
        try:
            form = await read_form(request, max_bytes=self.max_body_bytes)
        except HTTPProblem as problem:
            return problem.response()
        framework_id = form.get("frameworkId")
        if not framework_id:
            return text_response(400, "Missing 'frameworkId' query parameter in the request body")
        try:
            self.security.authorization.check_teardown(principal_of(request), self.master, str(framework_id))
            self.master.teardown_framework(str(framework_id))
        except HTTPProblem as problem:
            return problem.response()
        except CallRefused as refused:
            return text_response(refused.status, refused.message)
        return web.Response(status=200)


def _decode_agent_call(body: bytes) -> AgentCall:
    return decode(body, AgentCall)


def _refuse_call(socket: BaseMessageSocket, call_type: AgentCallType, status: int, message: str) -> None:
    socket.send(encode(AgentEvent(type=AgentEventType.ERROR, error=AgentError(
        message=message, refused_call=call_type, status=status))))


class _AgentSocketCalls:
    """The calls that come up one agent's socket after its SUBSCRIBE: each decoded and handed
    to the core as a POSTed call would be, in the order they came; a refusal goes back as an
    ERROR event naming the call. Calls must be the socket's agent's own."""

    __slots__ = ("agent_id", "master", "observe", "socket")

    def __init__(self, master: Master, agent_id: str, socket: BaseMessageSocket,
                 observe: Callable[[float], None] | None) -> None:
        self.master, self.agent_id, self.socket, self.observe = master, agent_id, socket, observe

    def received(self, payload: bytes) -> None:
        started = time.perf_counter()
        call_type = AgentCallType.UNKNOWN
        try:
            call = decode_body(payload, _decode_agent_call, "agent call")
            call_type = call.type
            if call_type == AgentCallType.SUBSCRIBE:
                raise CallRefused(400, "Already subscribed on this socket")
            if call.agent_id is None or call.agent_id.value != self.agent_id:
                raise CallRefused(403, f"Agent {self.agent_id} cannot make calls for agent "
                                       f"{call.agent_id.value if call.agent_id else '(none)'}")
            self.master.agent_call(call)
        except HTTPProblem as problem:
            _refuse_call(self.socket, call_type, problem.status, problem.message)
        except CallRefused as refused:
            _refuse_call(self.socket, call_type, refused.status, refused.message)
        if self.observe is not None:
            self.observe(time.perf_counter() - started)

    __call__ = received  # the socket's `on_message` (no bound method kept per agent)

    def ended(self, reason: str) -> None:
        self.master.agent_disconnected(self.agent_id, self.socket)


def _unused() -> tuple[Any, ...]:
    return (FrameworkID, to_builtins)
