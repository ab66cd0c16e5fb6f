"""An emulated agent: the real agent core and the real master <-> agent protocol over HTTP,
with executors that "run" every task at once instead of processes.

It is `mezzo.agent.core.AgentCore` (the same decisions, status update streams, retries and
re-registration as a real agent: no second copy of that logic) with
`mezzo.testing.fake_executors.FakeExecutors` as its outbox: a container "launches" at once,
its executor subscribes at once, and each task it is given reports TASK_RUNNING (and, with
`finish=True`, TASK_FINISHED) straight away; KILL answers TASK_KILLED; a command executor
exits once its task is terminal, as the real one does.
Updates are retried every `retry_seconds` until the master relays the scheduler's
acknowledgement. The transport is a real agent's (`mezzo.agent.master_link`): one message
socket to `/api/v1/agent` whose first message is the SUBSCRIBE, re-opened (re-registering)
after it breaks; events come down it, and calls go up it in order, what queued in the same
turn of the event loop merged into one call (status updates into one STATUS_UPDATE), as a real
agent's sender does. Used by tests, `bench/launch.py`, `bench/pong.py` and the failover and
scale benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque

import aiohttp

from mezzo.agent.core import AgentCore, AgentOptions, CallRefused
from mezzo.agent.events import AgentInput, MasterDisconnected
from mezzo.api.codec import decode, encode
from mezzo.api.common import AgentInfo
from mezzo.api.internal import (
    AGENT_API_PATH,
    AgentCall,
    AgentEvent,
    AgentEventType,
    merge_status_updates,
)
from mezzo.core.clock import RealClock
from mezzo.net.client import StreamRefused, open_socket, socket_url
from mezzo.resources import Resources
from mezzo.testing.fake_executors import FakeExecutors
from mezzo.testing.raw_http import RawClient, RawSocket

log = logging.getLogger("mezzo.testing.emulated_agent")


class EmulatedAgent:
    """One emulated agent (see the module docstring)."""

    def __init__(
        self,
        master_url: str,
        *,
        hostname: str = "emulated",
        resources: str = "cpus:8;mem:16384;disk:100000;ports:[31000-32000]",
        finish: bool = False,
        retry_seconds: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.master_url = master_url.rstrip("/")
        self.headers = headers or {}  # sent on its own requests (e.g. a credential)
        self.finish = finish
        self.retry_seconds = retry_seconds
        tag = (id(self) & 0xFFFF).to_bytes(8, "big")
        self._uuids = (i.to_bytes(8, "big") + tag for i in itertools.count(1))
        self.executors = FakeExecutors(self)
        self.core = AgentCore(
            AgentInfo(hostname=hostname, port=5051, resources=Resources.parse(resources).to_wire()),
            self.executors, clock=RealClock(), uuid_bytes=self.new_uuid,
            # A fixed retry interval (no backoff): what the benchmarks and tests expect.
            options=AgentOptions(work_dir="/emulated", status_update_retry_interval=retry_seconds,
                                 status_update_retry_max=retry_seconds),
        )
        self.subscribed = asyncio.Event()
        # time.monotonic() of the last SUBSCRIBED (system-wide on Linux, so a benchmark can
        # compare it with its own clock across processes).
        self.subscribed_at: float | None = None
        # With a session (tests that need its credentials) calls go through aiohttp; without,
        # through the lighter client of `mezzo.testing.raw_http`.
        self._session = session
        self._raw: RawClient | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        self._inputs: deque[AgentInput] = deque()
        self._outgoing: list[AgentCall] = []
        self._flushing = False  # a flush of `_outgoing` is scheduled
        # The open socket: raw, or aiohttp's (with a session) and its sender task.
        self._socket: RawSocket | aiohttp.ClientWebSocketResponse | None = None
        self._sender: asyncio.Task[None] | None = None
        self._pending_bodies: deque[bytes] = deque()

    @property
    def info(self) -> AgentInfo:
        return self.core.info

    @property
    def agent_id(self) -> str | None:
        return self.core.info.id.value if self.core.info.id is not None else None

    def new_uuid(self) -> bytes:
        return next(self._uuids)

    # ------------------------------------------------------------------ the core

    def handle(self, event: AgentInput) -> None:
        """Hand an event to the core, then what the fake executors did in response."""
        self.core.handle(event)
        self._drain()

    def _drain(self) -> None:
        while self._inputs:
            try:
                self.core.handle(self._inputs.popleft())
            except CallRefused as refused:  # as a real executor's call would be: dropped
                log.debug("agent %s refused a fake executor call: %s", self.agent_id, refused)

    def later(self, event: AgentInput) -> None:
        self._inputs.append(event)

    def shutdown_requested(self) -> None:
        self._stopping = True

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._runner = asyncio.create_task(self._run())
        await self.subscribed.wait()

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._runner, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._raw is not None:
            await self._raw.close()

    async def _run(self) -> None:
        retry = asyncio.create_task(self._retry_loop())
        try:
            while not self._stopping:
                try:
                    await self._subscribe_and_listen()
                except (aiohttp.ClientError, StreamRefused, OSError) as exc:
                    log.info("agent %s: stream ended (%s)", self.agent_id, exc)
                self.subscribed.clear()
                await asyncio.sleep(0.2)
        finally:
            retry.cancel()

    def _client(self) -> RawClient:
        """The raw client for the current master (a new one when the master changed)."""
        url = self.master_url
        if self._raw is None or self._raw.base_url != url:
            if self._raw is not None:
                self._raw.abort()  # a call stuck on the old master must not hold up the new
            self._raw = RawClient(url, self.headers)
        return self._raw

    async def _subscribe_and_listen(self) -> None:
        body = encode(self.core.subscribe_call())
        try:
            if self._session is None:
                raw = await self._client().socket(AGENT_API_PATH, body, self._on_record)
                self._socket = raw
                try:
                    await raw.wait_closed()
                finally:
                    raw.close()
                return
            socket = await open_socket(self._session, socket_url(self.master_url, AGENT_API_PATH), body)
            self._socket = socket
            try:
                async for message in socket:
                    if message.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                        break
                    self._on_record(message.data)
            finally:
                await socket.close()
        finally:
            self._socket = None
            if self.core.registered:
                self.handle(MasterDisconnected())

    def _on_record(self, record: bytes) -> None:
        event = decode(record, AgentEvent)
        if event.type == AgentEventType.ERROR and event.error is not None \
                and event.error.refused_call is not None:
            log.info("agent %s: master refused %s (%s): %s", self.agent_id,
                     event.error.refused_call, event.error.status, event.error.message)
            return  # a refused call, as a POST's 4xx: not the core's
        self.handle(event)
        if event.type == AgentEventType.SUBSCRIBED:
            self.subscribed_at = time.monotonic()
            self.subscribed.set()

    async def _retry_loop(self) -> None:
        """The core's timers (update retries), looked at when the next is due. Retries here
        come at a fixed interval (no backoff), so a retry scheduled later is never due before
        the next one known: sleeping until that one misses nothing. Executor timers (a
        registration or shutdown grace deadline) can be shorter, so while any is pending the
        loop looks every second, as it always did. Waking every agent every second cost the
        agent processes of bench/scale.py a sixth of their CPU at thousands of agents."""
        while True:
            deadline = self.core.next_deadline()
            delay = self.retry_seconds if deadline is None else deadline - self.core.monotonic()
            cap = 1.0 if self.core.timers else self.retry_seconds
            await asyncio.sleep(min(max(delay, 0.05), cap))
            self.core.tick()
            self._drain()

    # ------------------------------------------------------------------ calls to the master

    def post(self, call: AgentCall) -> None:
        # In order, and what queues in the same turn of the event loop goes out together
        # (status updates merged into one STATUS_UPDATE call), as a real agent's sender does
        # (`mezzo.agent.master_link.MasterLink._send_loop`). Dropped without a socket: the
        # core retries what must arrive.
        self._outgoing.append(call)
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        calls, self._outgoing = self._outgoing, []
        socket = self._socket
        if socket is None:
            return
        bodies = [encode(call) for call in merge_status_updates(calls)]
        if isinstance(socket, RawSocket):
            with contextlib.suppress(ConnectionError):
                for body in bodies:
                    socket.send(body)
            return
        self._pending_bodies.extend(bodies)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def _send_loop(self) -> None:
        try:
            while self._pending_bodies:
                body = self._pending_bodies.popleft()
                socket = self._socket  # the current one: a call is never sent to a former master
                if isinstance(socket, aiohttp.ClientWebSocketResponse):
                    with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                        await socket.send_bytes(body)
        finally:
            self._sender = None
