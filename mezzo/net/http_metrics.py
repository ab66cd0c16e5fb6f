"""HTTP request latency per endpoint, for the daemons' `/metrics` (Prometheus histogram
`mezzo_http_request_duration_seconds{endpoint, method}`) and the number of requests being
handled (the master's `master/event_queue_http_requests`). A message received on a socket
(`mezzo.net.message_socket`) is timed like a request, under the method `WS`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from mezzo.core.metrics import DaemonMetrics


def http_metrics_middleware(metrics: DaemonMetrics) -> Any:
    """Times each request by its route (`/master/state`, `/api/v1/scheduler`...). Streaming
    subscriptions are counted while they open only: their lifetime is not a latency."""

    # The histogram's child per (endpoint, method), looked up once: `labels()` costs more than
    # the rest of this middleware, on the hot path of every PONG and status update.
    children: dict[tuple[str, str], Any] = {}

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
            if not streaming and metrics.http_seconds is not None:
                key = (endpoint, request.method)
                child = children.get(key)
                if child is None:
                    child = children[key] = metrics.http_seconds.labels(endpoint, request.method)
                child.observe(time.perf_counter() - started)

    return timed


def socket_message_observer(metrics: DaemonMetrics, request: web.Request) -> Callable[[float], None] | None:
    """What records the handling time of one message received on the socket `request`
    opened (its endpoint, method `WS`); None without the HTTP histogram."""
    if metrics.http_seconds is None:
        return None
    info = request.match_info.route.resource
    endpoint = info.canonical if info is not None else "unmatched"
    return metrics.http_seconds.labels(endpoint, "WS").observe
