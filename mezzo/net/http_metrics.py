"""HTTP request latency per endpoint, for the daemons' `/metrics` (Prometheus histogram
`mezzo_http_request_duration_seconds{endpoint, method}`) and the number of requests being
handled (the master's `master/event_queue_http_requests`). A message received on a socket
(`mezzo.net.message_socket`) is timed like a request, under the method `WS`.

Requests reach the histogram two ways: through aiohttp's handler chain (the middleware
below) and through the fast path of `mezzo.net.fastpath`; both observe through one
`HttpTimings`, so a request is counted once, under the same labels, whichever way it went."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from mezzo.core.metrics import DaemonMetrics


class HttpTimings:
    """Observes one request's latency under (endpoint, method)."""

    def __init__(self, metrics: DaemonMetrics) -> None:
        self.metrics = metrics
        # The histogram's child per (endpoint, method), looked up once: `labels()` costs more
        # than the rest of a request's bookkeeping, on the hot path of every call.
        self._children: dict[tuple[str, str], Any] = {}

    def observe(self, endpoint: str, method: str, seconds: float) -> None:
        histogram = self.metrics.http_seconds
        if histogram is None:
            return
        key = (endpoint, method)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = histogram.labels(endpoint, method)
        child.observe(seconds)


def http_metrics_middleware(metrics: DaemonMetrics, timings: HttpTimings | None = None) -> Any:
    """Times each request by its route (`/master/state`, `/api/v1/scheduler`...). Streaming
    subscriptions are counted while they open only: their lifetime is not a latency."""
    timings = timings or HttpTimings(metrics)

    @web.middleware
    async def timed(request: web.Request, handler: Any) -> web.StreamResponse:
        info = request.match_info.route.resource
        endpoint = info.canonical if info is not None else "unmatched"
        metrics.http_in_flight += 1
        started = time.perf_counter()
        streaming = False
        try:
            response = await handler(request)
            streaming = not isinstance(response, web.Response) and (
                response.chunked or isinstance(response, web.WebSocketResponse))
            return response
        finally:
            metrics.http_in_flight -= 1
            if not streaming:
                timings.observe(endpoint, request.method, time.perf_counter() - started)

    return timed


def socket_message_observer(metrics: DaemonMetrics, request: web.Request) -> Callable[[float], None] | None:
    """What records the handling time of one message received on the socket `request`
    opened (its endpoint, method `WS`); None without the HTTP histogram."""
    if metrics.http_seconds is None:
        return None
    info = request.match_info.route.resource
    endpoint = info.canonical if info is not None else "unmatched"
    return metrics.http_seconds.labels(endpoint, "WS").observe
