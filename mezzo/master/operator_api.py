"""The master's operator event stream, HTTP side (`POST /api/v1 {"type":"SUBSCRIBE"}`).

Transport only: the subscribers, the events and their heartbeats are the core's
(`mezzo.master.events`, reached through `Master.operator_subscribe`); this module opens the
RecordIO response, hands the stream to the core, and carries the core's operator events out
(`OperatorStreams.send`, called by the master's `HttpOutbox`): each event is encoded once for
all subscribers.

A subscriber has a bounded queue (`max_queued` records). The stream's writer drains it as
fast as the client reads; a client that stops reading is disconnected, with a log line, once
the queue is full, so a slow subscriber never stalls or bloats the master. Each event is
written as soon as the event loop runs the writer (no buffering in the master), which is what
incremental readers such as a browser's `fetch()` reader need.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from mezzo.api import operator as op
from mezzo.api.codec import encode
from mezzo.net.stream import RecordStream

log = logging.getLogger("mezzo.master.operator")

# Records queued for one operator subscriber before it counts as stuck. A burst (a thousand
# tasks launched in one ACCEPT) is queued in one loop iteration, before the writer runs, so
# the bound must hold a burst comfortably; events are ~1 KiB, so this is ~10 MiB at most.
DEFAULT_MAX_QUEUED = 10_000


class OperatorStreams:
    """Opens operator event streams and writes the core's events on them."""

    def __init__(self, master: Any, *, max_queued: int = DEFAULT_MAX_QUEUED) -> None:
        self.master = master
        self.max_queued = max_queued

    @staticmethod
    def send(streams: list[RecordStream], event: op.Event) -> None:
        payload = encode(event)
        for stream in streams:
            stream.send(payload)

    @staticmethod
    def close(stream: RecordStream) -> None:
        stream.close("closed by the master")

    async def subscribe(self, request: web.Request) -> web.StreamResponse:
        stream = RecordStream(request, max_queued=self.max_queued)
        peer = request.remote or "?"
        await stream.open()
        self.master.operator_subscribe(stream)
        log.info("operator event stream subscriber %s added (%d subscribed)", peer,
                 len(self.master.events.subscribers))

        def ended(future: Any) -> None:
            self.master.operator_unsubscribed(stream)
            reason = future.result() if not future.cancelled() else "cancelled"
            if reason.startswith("overflow"):
                log.warning("operator event stream subscriber %s disconnected: it fell %d events "
                            "behind", peer, self.max_queued)
            else:
                log.info("operator event stream subscriber %s removed: %s", peer, reason)

        stream.closed.add_done_callback(ended)
        return await stream.serve()
