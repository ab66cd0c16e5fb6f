"""The agent's connection to the leading master (mezzo.api.internal protocol).

Owns: finding the leader (a `mezzo.election` Detector: `host:port` or `zk://`), the agent's
one connection to it, a message socket (`ws(s)://master/api/v1/agent`, whose first message is
the SUBSCRIBE call: registration and re-registration, retried with backoff after failures and
after the socket breaks), reading AgentEvents from it, noticing a silent master (no message for
several ping intervals) and a leader change, and sending AgentCalls up the same socket, in
order. A call the master refuses comes back as an ERROR event naming it
(`AgentError.refused_call`): logged, as a POST's 4xx was, and not handed to the agent.

Backoff follows Mesos's agent: the first retry comes after a random delay of at most
`--registration_backoff_factor`, doubling up to one minute. What to subscribe with and what to
do with events is the agent's (callbacks), so this module knows nothing of executors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket as _socket
import time
from collections.abc import Awaitable, Callable

import aiohttp

from mezzo.api.codec import decode, encode
from mezzo.api.internal import (
    AGENT_API_PATH,
    AgentCall,
    AgentCallType,
    AgentEvent,
    AgentEventType,
    merge_status_updates,
)
from mezzo.core.backoff import Backoff
from mezzo.core.errors import DecodeError
from mezzo.election import Detector, LeaderInfo
from mezzo.net.client import StreamRefused, open_socket, socket_url
from mezzo.security.tls import TlsConfig, client_ssl

log = logging.getLogger(__name__)

REGISTRATION_BACKOFF_MAX = 60.0
# A master that sent nothing (not even a PING) for this many ping intervals is considered gone.
SILENT_PING_INTERVALS = 5


class MasterLink:
    """Keeps the agent subscribed to the leading master (see the module docstring)."""

    def __init__(
        self,
        detector: Detector,
        *,
        subscribe_body: Callable[[], bytes],
        on_event: Callable[[AgentEvent], Awaitable[None] | None],
        on_disconnected: Callable[[], None],
        backoff_factor: float = 1.0,
        headers: dict[str, str] | None = None,
        tls: TlsConfig | None = None,
    ) -> None:
        self._detector = detector
        # TLS: with it on, the master is reached over HTTPS (as it is when it advertises so),
        # its certificate checked against the CA, ours shown if it asks.
        self._tls = tls or TlsConfig()
        self._headers = headers or {}  # sent on every request (the agent's credential)
        self._subscribe_body = subscribe_body
        self._on_event = on_event
        self._on_disconnected = on_disconnected
        self._backoff = Backoff(backoff_factor, max(REGISTRATION_BACKOFF_MAX, backoff_factor))
        self._session: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None  # while subscribed
        self._calls: asyncio.Queue[AgentCall] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.master_url: str | None = None  # http://host:port of the connected master
        self.connected = False
        self.ping_interval = 15.0
        self._last_heard = 0.0

    def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=8, force_close=False,
                                           ssl=client_ssl(self._tls) or True),
            headers=self._headers,
        )
        self._detector.start()
        self._tasks = [
            asyncio.create_task(self._subscribe_loop(), name="master-subscribe"),
            asyncio.create_task(self._send_loop(), name="master-send"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._detector.close()
        if self._session is not None:
            await self._session.close()

    def send(self, call: AgentCall) -> None:
        """Queue a call; dropped if no master is connected when its turn comes (status
        updates are retried by the status update manager, the rest is best-effort)."""
        self._calls.put_nowait(call)

    # --- the socket -------------------------------------------------------------------------

    async def _subscribe_loop(self) -> None:
        leader: LeaderInfo | None = await self._detector.detect()
        while True:
            if leader is None:
                leader = await self._detector.detect(None)
                continue
            address = leader.address
            try:
                await self._subscribe_once(address, leader)
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                log.info("cannot reach master %s: %s", address, e)
            except StreamRefused as e:
                log.warning("master %s refused the subscription: %s", address, e)
            except _Refused as e:
                log.warning("master %s refused the subscription: %s", address, e)
            except DecodeError as e:
                log.warning("bad event from master %s: %s", address, e)
            if self.connected:
                self.connected = False
                self.master_url = None
                self._on_disconnected()
            current = self._detector.leader()
            if current is not None and current != leader:
                leader = current
                self._backoff.reset()
                continue
            # Back off, but follow a leader change at once: after a failover the old leader
            # stays advertised until its ZooKeeper session expires, and by then the backoff
            # may have grown to many seconds.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._detector.detect(leader), self._backoff.next())
            current = self._detector.leader()
            if current != leader:
                # A new leader may still be finishing its election (it answers 307/503 for a
                # moment): retry it on a fresh, short backoff.
                self._backoff.reset()
            leader = current

    async def _subscribe_once(self, address: str, leader: LeaderInfo) -> None:
        assert self._session is not None
        scheme = "https" if self._tls.enabled else leader.scheme
        base = f"{scheme}://{address}"
        socket = await open_socket(self._session, socket_url(base, AGENT_API_PATH),
                                   self._subscribe_body())
        watch = asyncio.create_task(self._watch(socket, leader))
        try:
            self._last_heard = time.monotonic()
            async for message in socket:
                if message.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                    break  # closed, closing or broken
                self._last_heard = time.monotonic()
                event = decode(message.data, AgentEvent)
                if event.type == AgentEventType.SUBSCRIBED and event.subscribed is not None:
                    self._socket = socket
                    self.connected = True
                    self.master_url = base
                    self.ping_interval = event.subscribed.ping_interval_seconds
                    self._backoff.reset()
                elif event.type == AgentEventType.ERROR and event.error is not None \
                        and event.error.refused_call is not None:
                    error = event.error
                    if error.refused_call == AgentCallType.SUBSCRIBE:
                        raise _Refused(f"HTTP {error.status}: {error.message}")
                    log.warning("master answered %s to %s: %s", error.status, error.refused_call,
                                error.message[:200])
                    continue
                result = self._on_event(event)
                if result is not None:
                    await result
        finally:
            self._socket = None
            watch.cancel()
            await socket.close()

    async def _watch(self, socket: aiohttp.ClientWebSocketResponse, leader: LeaderInfo) -> None:
        """Close the socket when the leader changes or the master falls silent."""
        changed = asyncio.ensure_future(self._detector.detect(leader))
        try:
            while not changed.done():
                await asyncio.wait({changed}, timeout=1.0)
                silent = time.monotonic() - self._last_heard
                if self.connected and silent > self.ping_interval * SILENT_PING_INTERVALS:
                    log.warning("master silent for %.0f s; reconnecting", silent)
                    break
            await _abort(socket)
        finally:
            changed.cancel()

    # --- calls ------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            calls = [await self._calls.get()]
            while not self._calls.empty():  # what queued meanwhile goes out together
                calls.append(self._calls.get_nowait())
            for call in merge_status_updates(calls):
                await self._send(call)

    async def _send(self, call: AgentCall) -> None:
        socket = self._socket
        if not self.connected or socket is None or socket.closed:
            return
        try:
            await socket.send_bytes(encode(call))
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            log.info("call %s to master failed: %s", call.type, e)


class _Refused(Exception):
    """The master refused the SUBSCRIBE that opened the socket (an ERROR naming it)."""


async def _abort(socket: aiohttp.ClientWebSocketResponse) -> None:
    """End the socket at once: a silent or former master may never answer a close handshake,
    so the connection is shut down under the reader, which then sees it end."""
    raw = socket.get_extra_info("socket")
    if raw is None:
        await socket.close()
        return
    with contextlib.suppress(OSError):
        raw.shutdown(_socket.SHUT_RDWR)
