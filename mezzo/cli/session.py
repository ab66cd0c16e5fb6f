"""A blocking, import-light session with the v1 scheduler API, for short-lived CLI frameworks.

`mezzo run` pays for every module it imports before its task can start, and the asyncio SDK
(`mezzo.scheduler`: aiohttp, msgspec, the typed wire records) costs several times the whole
time budget of the command. This client speaks the same protocol (spec §4) with the standard
library only: JSON objects as plain dicts, HTTP/1.1 through `mezzo.cli.http1`.

- `subscribe()` POSTs SUBSCRIBE, follows a standby's `307 Location` to the leader, retries a
  `503` (no leader yet, or a leader still recovering) until the deadline, and waits for the
  SUBSCRIBED event. A background thread then reads the RecordIO stream into a queue, so the
  caller's thread stays free (and interruptible) while waiting in `next_event()`; the stream's
  socket times out after `HEARTBEAT_MISSES` heartbeat intervals without an event.
- `call(type, **payload)` POSTs a call with the framework id and `Mesos-Stream-Id` on one
  keep-alive connection, and raises `CallFailed` unless the master answers 2xx.
- `next_event()` returns the next event (a dict), or None once the stream has ended; the
  caller may `subscribe()` again to re-attach as the same framework (its id is kept).

Errors: `SessionError` (a `MezzoError`), with `SubscribeRefused` for a 4xx to SUBSCRIBE or an
ERROR event, `CallFailed` for a refused call; connection failures surface as `OSError`.
"""

from __future__ import annotations

import json
import queue
import threading
import time

from mezzo.cli.http1 import Connection, Response
from mezzo.core.errors import MezzoError
from mezzo.net.address import base_from_location

# Typing names for the checker only: importing `typing` costs `mezzo run` start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCHEDULER_PATH = "/api/v1/scheduler"
HEARTBEAT_MISSES = 5.0  # as the SDK: no event for 5 intervals means the master is gone
MAX_REDIRECTS = 5
RETRY_SECONDS = (0.05, 0.1, 0.2, 0.5, 1.0)  # backoff between SUBSCRIBE attempts on 503
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class SessionError(MezzoError):
    """The scheduler session failed (message says how)."""


class SubscribeRefused(SessionError):
    """The master refused the framework (4xx to SUBSCRIBE, or an ERROR event)."""


class CallFailed(SessionError):
    def __init__(self, call_type: str, status: int, message: str) -> None:
        super().__init__(f"{call_type} refused with HTTP {status}: {message}")
        self.status = status


def _first_line(body: bytes) -> str:
    lines = body.decode(errors="replace").strip().splitlines()
    return lines[0] if lines else ""


class SchedulerSession:
    """One framework's subscription (see the module docstring). Not thread-safe: one caller
    thread uses it; only the stream reader runs on its own thread."""

    def __init__(self, base: str, framework_info: dict[str, Any], connect_timeout: float = 10.0):
        self.base = base
        self.framework_info = dict(framework_info)
        self.connect_timeout = connect_timeout
        self.framework_id: dict[str, str] | None = None
        self.stream_id: str | None = None
        self.heartbeat_interval = 15.0
        self.stream_error: str | None = None  # why the last stream broke, if it did not just end
        self._events: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._stream: Connection | None = None
        self._calls: Connection | None = None

    # ------------------------------------------------------------------ subscription

    def subscribe(self) -> dict[str, Any]:
        """Subscribe (again, with the framework id once known); returns the SUBSCRIBED event.
        Raises `SubscribeRefused`, `SessionError` (no answer in time) or `OSError`."""
        self.close()
        self._events = queue.SimpleQueue()
        if self.framework_id is not None:
            self.framework_info["id"] = self.framework_id
        call: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": self.framework_info}}
        if self.framework_id is not None:
            call["framework_id"] = self.framework_id
        body = json.dumps(call).encode()
        deadline = time.monotonic() + self.connect_timeout
        redirects = retries = 0
        while True:
            conn = Connection(self.base, self.connect_timeout)
            try:
                response = conn.open_stream("POST", SCHEDULER_PATH, body, JSON_HEADERS)
            except BaseException:
                conn.close()
                raise
            if response.status == 200:
                break
            detail = _first_line(b"".join(response.chunks()) if response.framed else b"")
            conn.close()
            location = response.header("Location")
            if response.status in (301, 302, 307, 308) and location and redirects < MAX_REDIRECTS:
                redirects += 1
                self.base = base_from_location(location, self.base)
                continue
            if response.status == 503 and time.monotonic() < deadline:
                time.sleep(RETRY_SECONDS[min(retries, len(RETRY_SECONDS) - 1)])
                retries += 1
                continue
            if 400 <= response.status < 500:
                raise SubscribeRefused(
                    f"master at {self.display} refused SUBSCRIBE: HTTP {response.status}: {detail}"
                )
            raise SessionError(
                f"master at {self.display} answered SUBSCRIBE with HTTP {response.status}: {detail}"
            )
        self.stream_id = response.header("Mesos-Stream-Id")
        self._stream = conn
        # The reader's receive keeps the timeout in force when it started: set the watchdog's
        # now (the wait for SUBSCRIBED has its own deadline, on the queue).
        if conn.sock is not None:
            conn.sock.settimeout(HEARTBEAT_MISSES * self.heartbeat_interval)
        threading.Thread(
            target=self._read_stream, args=(response, self._events), name="scheduler-stream",
            daemon=True
        ).start()
        event = self.next_event(max(0.0, deadline - time.monotonic()))
        if event is None:
            raise SessionError(f"master at {self.display} closed the subscription before SUBSCRIBED")
        if event.get("type") == "ERROR":
            raise SubscribeRefused((event.get("error") or {}).get("message", "error"))
        if event.get("type") != "SUBSCRIBED":
            raise SessionError(f"master at {self.display} sent {event.get('type')} before SUBSCRIBED")
        subscribed = event.get("subscribed") or {}
        self.framework_id = subscribed.get("framework_id")
        self.heartbeat_interval = float(subscribed.get("heartbeat_interval_seconds") or 15.0)
        if conn.sock is not None:
            conn.sock.settimeout(HEARTBEAT_MISSES * self.heartbeat_interval)
        return event

    def _read_stream(self, response: Response, events: queue.SimpleQueue[dict[str, Any] | None]) -> None:
        """RecordIO records (`<length>\n<json>`) → events; None when the stream ends or breaks."""
        buffer = b""
        try:
            for chunk in response.chunks():
                buffer += chunk
                while True:
                    newline = buffer.find(b"\n")
                    if newline < 0:
                        break
                    size = int(buffer[:newline])
                    end = newline + 1 + size
                    if len(buffer) < end:
                        break
                    events.put(json.loads(buffer[newline + 1 : end]))
                    buffer = buffer[end:]
        except (OSError, ValueError) as exc:
            self.stream_error = f"{type(exc).__name__}: {exc}"
            return
        finally:
            events.put(None)

    def next_event(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event; None when the stream has ended. Raises `queue.Empty` on timeout."""
        return self._events.get(timeout=timeout)

    # ------------------------------------------------------------------ calls

    def call(self, call_type: str, **payload: Any) -> None:
        """POST one call (`payload` holds its field, e.g. `accept={...}`); raises `CallFailed`
        on a non-2xx answer, `OSError` when the master cannot be reached."""
        call: dict[str, Any] = {"type": call_type, **payload}
        if self.framework_id is not None:
            call["framework_id"] = self.framework_id
        body = json.dumps(call).encode()
        headers = dict(JSON_HEADERS)
        if self.stream_id:
            headers["Mesos-Stream-Id"] = self.stream_id
        if self._calls is None:
            self._calls = Connection(self.base, self.connect_timeout)
        response = self._calls.request("POST", SCHEDULER_PATH, body, headers)
        if not 200 <= response.status < 300:
            raise CallFailed(call_type, response.status, _first_line(response.body))

    # ------------------------------------------------------------------ teardown

    @property
    def display(self) -> str:
        return self.base.split("://", 1)[-1]

    def close(self) -> None:
        """Close the stream and the call connection (the framework stays until its failover
        timeout unless TEARDOWN was called)."""
        if self._stream is not None:
            # Shut the socket down first: the reader thread, blocked in a read, holds the
            # reader's lock until a shutdown wakes it (it sees the end of the stream).
            self._stream.shutdown()
            self._stream.close()
            self._stream = None
        if self._calls is not None:
            self._calls.close()
            self._calls = None
