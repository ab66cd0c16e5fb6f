"""A blocking, import-light session with the v1 scheduler API, for short-lived CLI frameworks.

`mezzo run` pays for every module it imports before its task can start, and the asyncio SDK
(`mezzo.scheduler`: aiohttp, msgspec, the typed wire records) costs several times the whole
time budget of the command. This client speaks the same protocol (spec §4) with the standard
library only: JSON objects as plain dicts, HTTP/1.1 through `mezzo.cli.http1`.

- `subscribe()` POSTs SUBSCRIBE, follows a standby's `307 Location` to the leader, retries a
  `503` (no leader yet, or a leader still recovering) until the deadline, and waits for the
  SUBSCRIBED event. The caller's own thread then reads the RecordIO stream in `next_event()`,
  with a time-out per wait (so it stays interruptible: no reader thread, and no `threading` or
  `queue` import for `mezzo run` to pay for); `HEARTBEAT_MISSES` heartbeat intervals without a
  byte end the stream.
- `call(type, **payload)` POSTs a call with the framework id and `Mesos-Stream-Id` on one
  keep-alive connection, and raises `CallFailed` unless the master answers 2xx.
- `next_event(timeout)` returns the next event (a dict), or None once the stream has ended
  (`NoEvent` when the time-out passes first); the caller may `subscribe()` again to re-attach
  as the same framework (its id is kept).

Errors: `SessionError` (a `MezzoError`), with `SubscribeRefused` for a 4xx to SUBSCRIBE or an
ERROR event, `CallFailed` for a refused call; connection failures surface as `OSError`.
"""

from __future__ import annotations

import json
import time

from mezzo.cli.http1 import Connection, StreamBody
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


class NoEvent(SessionError):
    """`next_event`'s time-out passed before an event came."""


class CallFailed(SessionError):
    def __init__(self, call_type: str, status: int, message: str) -> None:
        super().__init__(f"{call_type} refused with HTTP {status}: {message}")
        self.status = status


def _first_line(body: bytes) -> str:
    lines = body.decode(errors="replace").strip().splitlines()
    return lines[0] if lines else ""


class SchedulerSession:
    """One framework's subscription (see the module docstring). Not thread-safe: one caller
    thread uses it."""

    def __init__(self, base: str, framework_info: dict[str, Any], connect_timeout: float = 10.0):
        self.base = base
        self.framework_info = dict(framework_info)
        self.connect_timeout = connect_timeout
        self.framework_id: dict[str, str] | None = None
        self.stream_id: str | None = None
        self.heartbeat_interval = 15.0
        self.stream_error: str | None = None  # why the last stream broke, if it did not just end
        self._stream: Connection | None = None
        self._body: StreamBody | None = None  # the stream's body; None once it has ended
        self._records = bytearray()  # bytes of the stream not yet made into events
        self._last_data = 0.0  # time.monotonic() of the stream's last bytes
        self._calls: Connection | None = None

    # ------------------------------------------------------------------ subscription

    def subscribe(self) -> dict[str, Any]:
        """Subscribe (again, with the framework id once known); returns the SUBSCRIBED event.
        Raises `SubscribeRefused`, `SessionError` (no answer in time) or `OSError`."""
        self.close()
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
                response, stream = conn.open_body_stream("POST", SCHEDULER_PATH, body, JSON_HEADERS)
                if response.status == 200:
                    break
                detail = _first_line(stream.read_all(self.connect_timeout) if response.framed else b"")
            except BaseException:
                conn.close()
                raise
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
        self._body = stream
        self._records = bytearray()
        self.stream_error = None
        self._last_data = time.monotonic()
        try:
            event = self.next_event(max(0.0, deadline - time.monotonic()))
        except NoEvent:
            raise SessionError(
                f"master at {self.display} sent no SUBSCRIBED within {self.connect_timeout:g} s"
            ) from None
        if event is None:
            raise SessionError(f"master at {self.display} closed the subscription before SUBSCRIBED")
        if event.get("type") == "ERROR":
            raise SubscribeRefused((event.get("error") or {}).get("message", "error"))
        if event.get("type") != "SUBSCRIBED":
            raise SessionError(f"master at {self.display} sent {event.get('type')} before SUBSCRIBED")
        subscribed = event.get("subscribed") or {}
        self.framework_id = subscribed.get("framework_id")
        self.heartbeat_interval = float(subscribed.get("heartbeat_interval_seconds") or 15.0)
        return event

    def next_event(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event; None when the stream has ended, broke (`stream_error` says how) or
        was silent for `HEARTBEAT_MISSES` heartbeat intervals. Raises `NoEvent` when `timeout`
        seconds pass first (None: wait for one)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            body = self._body
            if body is None:
                return None
            try:
                event = self._next_record()
            except ValueError as exc:  # not RecordIO of JSON
                self._end_stream(f"{type(exc).__name__}: {exc}")
                return None
            if event is not None:
                return event
            now = time.monotonic()
            silent_until = self._last_data + HEARTBEAT_MISSES * self.heartbeat_interval
            if now >= silent_until:
                self._end_stream(
                    f"no event for {HEARTBEAT_MISSES * self.heartbeat_interval:g} s")
                return None
            if deadline is not None and now >= deadline:
                raise NoEvent("no event in time")
            wait = silent_until - now if deadline is None else min(deadline, silent_until) - now
            try:
                data = body.read(wait)
            except TimeoutError:
                continue
            except OSError as exc:
                self._end_stream(f"{type(exc).__name__}: {exc}")
                return None
            if not data:
                self._end_stream(None)
                return None
            self._last_data = time.monotonic()
            self._records += data

    def _next_record(self) -> dict[str, Any] | None:
        """One event from the RecordIO bytes received (`<length>\n<json>`), if all there."""
        records = self._records
        newline = records.find(b"\n")
        if newline < 0:
            return None
        size = int(records[:newline])
        end = newline + 1 + size
        if len(records) < end:
            return None
        event: dict[str, Any] = json.loads(records[newline + 1 : end])
        del records[:end]
        return event

    def _end_stream(self, error: str | None) -> None:
        """The stream is over (`error`: why, if it broke): `next_event` returns None from now."""
        if error is not None:
            self.stream_error = error
        self._body = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None

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
        self._body = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._calls is not None:
            self._calls.close()
            self._calls = None
