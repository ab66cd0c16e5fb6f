"""The master's operator API beyond the core's read views: the event stream's transport,
logging levels, files, operations, and the clear 501 of calls that belong to later work.

`OperatorApi.call` answers GET_LOGGING_LEVEL, SET_LOGGING_LEVEL (with its duration),
LIST_FILES, READ_FILE (the master's attached files: `/master/log` with `--log_dir`); every
write call of maintenance and agent draining answers 501 naming the feature (reservations,
volumes and GET_OPERATIONS are answered by the master's shell from the core). It also serves `/files/*` and `/logging/toggle`.

The event stream (`POST /api/v1 {"type":"SUBSCRIBE"}`) is transport only: the subscribers, the events and their heartbeats are the core's
(`mezzo.master.events`, reached through `Master.operator_subscribe`); this module opens the
RecordIO response, hands the stream to the core, and carries the core's operator events out
(`OperatorApi.send`, called by the master's `HttpOutbox`): each event is encoded once for
all subscribers. The first event, SUBSCRIBED, holds the whole state (~0.8 s to make at
100,000 tasks): it is made here in slices (`mezzo.master.slices`), with the loop free between
them, as GET_STATE is (`views.subscribed_pieces`); the events the core sends the new subscriber
meanwhile wait behind it (`_SubscribedFirst`).

A subscriber has a bounded queue (`max_queued` records). The stream's writer drains it as
fast as the client reads; a client that stops reading is disconnected, with a log line, once
the queue is full, so a slow subscriber never stalls or bloats the master. Each event is
written as soon as the event loop runs the writer (no buffering in the master), which is what
incremental readers such as a browser's `fetch()` reader need.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from mezzo.api import operator as op
from mezzo.api.codec import convert, encode
from mezzo.master import views
from mezzo.master.slices import MAXIMUM_SLICE, MINIMUM_SLICE, Slices
from mezzo.net.files import VirtualFiles
from mezzo.net.http import HTTPProblem, json_response, text_response
from mezzo.net.logging_level import LoggingLevel
from mezzo.net.stream import RecordStream, Subscriber, serve_subscription

log = logging.getLogger("mezzo.master.operator")

# Records queued for one operator subscriber before it counts as stuck. A burst (a thousand
# tasks launched in one ACCEPT) is queued in one loop iteration, before the writer runs, so
# the bound must hold a burst comfortably; events are ~1 KiB, so this is ~10 MiB at most.
DEFAULT_MAX_QUEUED = 10_000
MASTER_LOG_FILE = "mezzo-master.INFO"

_T = op.CallType
# Calls of features this master does not have yet, and the feature each belongs to.
NOT_YET = {
    **dict.fromkeys((_T.GET_MAINTENANCE_STATUS, _T.GET_MAINTENANCE_SCHEDULE,
                     _T.UPDATE_MAINTENANCE_SCHEDULE, _T.START_MAINTENANCE, _T.STOP_MAINTENANCE),
                    "maintenance"),
    **dict.fromkeys((_T.DRAIN_AGENT, _T.DEACTIVATE_AGENT, _T.REACTIVATE_AGENT), "agent draining"),
}


class _SubscribedFirst:
    """A new subscriber's stream, as the core holds it: what the core sends it waits until
    SUBSCRIBED is made and sent (`release`), then goes straight to the stream."""

    __slots__ = ("held", "stream")

    def __init__(self, stream: RecordStream) -> None:
        self.stream = stream
        # Records (bytes) and a close (its reason, str) in order; None once released.
        self.held: list[bytes | str] | None = []

    def send(self, payload: bytes) -> bool:
        if self.held is None:
            return self.stream.send(payload)
        self.held.append(payload)
        return True

    def close(self, reason: str = "closed by server") -> None:
        if self.held is None:
            self.stream.close(reason)
        else:
            self.held.append(reason)

    def release(self, first: bytes) -> None:
        held, self.held = self.held or [], None
        self.stream.send(first)
        for item in held:
            if isinstance(item, str):
                self.stream.close(item)
            else:
                self.stream.send(item)


class OperatorApi:
    """The operator calls and endpoints of this module, for one master."""

    def __init__(self, master: Any, *, log_dir: str | None = None,
                 max_queued: int = DEFAULT_MAX_QUEUED, slice_seconds: float = MINIMUM_SLICE,
                 max_slice_seconds: float = MAXIMUM_SLICE) -> None:
        self.master = master
        self.max_queued = max_queued
        self.slice_seconds = slice_seconds
        self.max_slice_seconds = max_slice_seconds
        self._making: set[asyncio.Task[None]] = set()  # SUBSCRIBED events being made
        self.files = VirtualFiles()
        if log_dir:
            self.files.attach(Path(log_dir) / MASTER_LOG_FILE, "/master/log")
        self.logging = LoggingLevel()

    def add_routes(self, app: web.Application) -> None:
        self.files.add_routes(app)
        self.logging.add_routes(app)

    # ------------------------------------------------------------------ calls

    def call(self, call: op.Call) -> web.Response:
        """Answer a call `MasterServer` does not answer itself."""
        resp: op.Response
        logging_answer = self.logging.answer(call)
        if logging_answer is not None:
            return logging_answer
        try:
            match call.type:
                case _T.LIST_FILES:
                    assert call.list_files is not None
                    entries = self.files.browse(call.list_files.path)
                    resp = op.Response(type=_T.LIST_FILES, list_files=op.ListFilesResponse(
                        file_infos=[convert(e.v1_json(), op.FileInfo) for e in entries]))
                case _T.READ_FILE:
                    assert call.read_file is not None
                    request_ = call.read_file
                    if request_.offset < 0 or (request_.length is not None and request_.length < 0):
                        return text_response(400, "'offset' and 'length' must not be negative")
                    size, data = self.files.read(request_.path, request_.offset, request_.length)
                    resp = op.Response(type=_T.READ_FILE, read_file=op.ReadFileResponse(size=size, data=data))
                case t if t in NOT_YET:
                    return text_response(501, f"{t} is not implemented yet: this master has no "
                                              f"{NOT_YET[t]} (see docs/operator.md)")
                case _:
                    return text_response(501, f"Operator call {call.type} is not implemented by this master")
        except HTTPProblem as problem:
            return problem.response()
        return json_response(encode(resp))

    # ------------------------------------------------------------------ event stream

    @staticmethod
    def send(streams: list[Any], event: op.Event) -> None:
        payload = encode(event)
        for stream in streams:
            stream.send(payload)

    @staticmethod
    def close(stream: Any) -> None:
        stream.close("closed by the master")

    async def subscribe(self, request: web.Request, view: Any = None,
                        viewer: Any = None) -> web.StreamResponse:
        """The event stream; `view`/`viewer`: what the subscriber may see (filtered)."""
        peer = request.remote or "?"

        def register(stream: RecordStream) -> Subscriber:
            handle = _SubscribedFirst(stream)
            self.master.operator_subscribe(handle, view, viewer, send_state=False)
            making = asyncio.ensure_future(
                self._send_subscribed(handle, self.master if view is None else view))
            self._making.add(making)
            making.add_done_callback(self._making.discard)
            log.info("operator event stream subscriber %s added (%d subscribed)", peer,
                     len(self.master.events.subscribers))

            def ended(reason: str) -> None:
                making.cancel()
                self.master.operator_unsubscribed(handle)
                if reason.startswith("overflow"):
                    log.warning("operator event stream subscriber %s disconnected: it fell %d "
                                "events behind", peer, self.max_queued)
                else:
                    log.info("operator event stream subscriber %s removed: %s", peer, reason)

            return Subscriber(ended=ended)

        return await serve_subscription(request, register, max_queued=self.max_queued)

    async def _send_subscribed(self, handle: _SubscribedFirst, view: Any) -> None:
        """Make SUBSCRIBED a slice at a time (`mezzo.master.slices`), yielding to the loop
        between slices, then send it and what waited behind it."""
        loop = asyncio.get_running_loop()
        slices = Slices(loop.time, minimum=self.slice_seconds, maximum=self.max_slice_seconds)
        pieces: list[bytes] = []
        for piece in views.subscribed_pieces(view, self.master.events.heartbeat_interval):
            pieces.append(piece)
            if slices.due():
                await slices.pause()
        slices.finish()
        first = b"".join(pieces)
        slices.bytes = len(first)
        slices.served("operator SUBSCRIBED")
        handle.release(first)
