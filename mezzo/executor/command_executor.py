"""The built-in command executor's implementation (stdlib only); `command.py` beside it is the
entry point the agent runs, and documents the launch contract.

It lives in its own module so that its bytecode is cached: a script given to `python` is
compiled on every start (~7.5 ms for this file), an imported module is not.

Behaviour
---------
SUBSCRIBE on ``POST /api/v1/executor`` (chunked RecordIO stream). On LAUNCH: TASK_STARTING,
spawn the command (``/bin/sh -c value`` when ``shell`` is true (default), else ``value`` with
argv = ``arguments``) with ``posix_spawn`` in its **own process group** inside the executor's
session (so the agent's session kill still reaches it, and a kill signals the whole task tree but
not the executor), then TASK_RUNNING. On exit: TASK_FINISHED (status 0) or TASK_FAILED ("Command
exited with status N" / "Command terminated with signal SIGX"). KILL: SIGTERM to the task's
group, TASK_KILLING if the framework has TASK_KILLING_STATE, SIGKILL after the grace period
(the KILL event's kill_policy, else the task's, else 3 s), then TASK_KILLED.
``max_completion_time`` elapsed: same kill, then TASK_FAILED with
REASON_MAX_COMPLETION_TIME_REACHED. SHUTDOWN: kill (grace capped by the shutdown grace period),
TASK_KILLED, exit. Every update is kept until ACKNOWLEDGED; the executor exits once the terminal
update is acknowledged (or after ACK_WAIT_SECONDS). Stream lost: without checkpointing, kill the
task and exit; with checkpointing, re-subscribe with backoff (≤ MESOS_SUBSCRIPTION_BACKOFF_MAX)
for up to MESOS_RECOVERY_TIMEOUT, listing the task if none of its updates was acknowledged and
every unacknowledged update (the agent replays them).

One thread, one ``poll`` loop over the stream socket and a pidfd of the task; UPDATE calls go
over a second keep-alive connection (spec §2.7) with TCP_NODELAY (Nagle + delayed ACKs would
add ~40 ms per call). Exit codes: 0 normal, 1 gave up (recovery timeout, bad environment).
"""

import _signal
import _socket
import binascii
import os
import select
import sys
import time

try:  # the C scanner without `json`'s import of `re`/`enum` (~7 ms); fall back if absent
    import _json

    _encode_str = _json.encode_basestring_ascii
except ImportError:  # pragma: no cover - every CPython build has _json
    _json = None  # type: ignore[assignment]
    _encode_str = None  # type: ignore[assignment]

PATH = "/api/v1/executor"
DEFAULT_GRACE_SECONDS = 3.0  # KillPolicy default (spec §5.6)
ACK_WAIT_SECONDS = 5.0  # how long a finished executor waits for its terminal ACKNOWLEDGED
CALL_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5.0
RESEND_SECONDS = 1.0  # retry of an UPDATE the agent refused while the stream is up
FIRST_SUBSCRIBE_GIVE_UP_SECONDS = 60.0  # never subscribed and not checkpointing
BACKOFF_INITIAL_SECONDS = 0.05

_SIGNAL_NAMES = {
    getattr(_signal, n): n for n in dir(_signal) if n.startswith("SIG") and not n.startswith("SIG_")
}
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "secs": 1.0,
    "mins": 60.0,
    "hrs": 3600.0,
    "days": 86400.0,
    "weeks": 604800.0,
}
_VERBOSE = os.environ.get("MEZZO_EXECUTOR_VERBOSE", "") not in ("", "0")


def log(message: str) -> None:
    sys.stderr.write(f"mezzo-command-executor[{os.getpid()}]: {message}\n")
    sys.stderr.flush()


def debug(message: str) -> None:
    if _VERBOSE:
        log(message)


# ----------------------------------------------------------------------------- JSON


class _ScanContext:
    """What `_json.make_scanner` reads from its context (json.JSONDecoder's attributes)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # 'Infinity', '-Infinity', 'NaN'
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_ScanContext()) if _json is not None else None


def loads(data: bytes) -> object:
    if _scan is None:  # pragma: no cover
        import json

        return json.loads(data)
    text = data.decode("utf-8").strip()
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("trailing data after JSON")
    return value


def dumps(value: object) -> str:
    if isinstance(value, str):
        return _encode_str(value) if _encode_str is not None else _slow_str(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and value not in (_INF, -_INF) else "null"
    if isinstance(value, dict):
        return "{" + ",".join(f"{dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__}")


_INF = float("inf")


def _slow_str(value: str) -> str:  # pragma: no cover
    import json

    return json.dumps(value)


# ----------------------------------------------------------------------------- small helpers


def parse_duration(text: str | None, default: float) -> float:
    """Mesos duration string (`5secs`, `500ms`, `1.5mins`) to seconds; default if absent/bad."""
    if not text:
        return default
    text = text.strip()
    for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * _DURATION_UNITS[unit]
            except ValueError:
                break
    log(f"ignoring invalid duration {text!r}; using {default}s")
    return default


def duration_seconds(info: object) -> float | None:
    """A DurationInfo (`{"nanoseconds": n}`, n maybe a string) in seconds, or None."""
    if not isinstance(info, dict) or "nanoseconds" not in info:
        return None
    try:
        return max(0.0, float(info["nanoseconds"]) / 1e9)
    except (TypeError, ValueError):
        return None


def as_bool(value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def new_uuid() -> bytes:
    """RFC 4122 version-4 uuid bytes (what `uuid.uuid4().bytes` gives, without importing uuid)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return bytes(b)


def b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def unb64(text: str) -> bytes:
    try:
        return binascii.a2b_base64(text)
    except (binascii.Error, TypeError, ValueError):
        return b""


def jitter() -> float:
    return 0.5 + 0.5 * os.urandom(1)[0] / 255.0


def describe_status(status: int) -> tuple[bool, str]:
    """(succeeded, message) for a wait status, in the command executor's words."""
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return code == 0, f"Command exited with status {code}"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return False, f"Command terminated with signal {_SIGNAL_NAMES.get(sig, str(sig))}"
    return False, f"Command ended with wait status {status}"


def resolve(program: str, env: dict[str, str]) -> str:
    """execvp-style lookup of `program` on the task's PATH (posix_spawnp would use ours)."""
    if "/" in program:
        return program
    for directory in env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":"):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"{program!r} not found on PATH")


# ----------------------------------------------------------------------------- HTTP


def split_endpoint(endpoint: str) -> tuple[str, int]:
    endpoint = endpoint.strip()
    for prefix in ("http://", "https://"):
        endpoint = endpoint.removeprefix(prefix)
    endpoint = endpoint.split("/", 1)[0]
    if endpoint.startswith("["):
        host, _, port = endpoint[1:].partition("]:")
    else:
        host, _, port = endpoint.rpartition(":")
    return host, int(port)


def connect(host: str, port: int, timeout: float) -> _socket.socket:
    last: Exception = OSError(f"cannot resolve {host}")
    # A bytes host: a str would be encoded with the idna codec, whose import (re, unicodedata,
    # stringprep) costs ~8 ms of start-up.
    for family, kind, proto, _name, address in _socket.getaddrinfo(
        host.encode("ascii", "ignore"), port, 0, _socket.SOCK_STREAM
    ):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last


def request_bytes(host: str, port: int, body: bytes, *, stream: bool) -> bytes:
    headers = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    # Spec §2.7: SUBSCRIBE goes with Connection: close; calls reuse a keep-alive connection.
    if stream:
        headers += "Connection: close\r\n"
    return headers.encode("latin-1") + b"\r\n" + body


class Reader:
    """Buffered reads of an HTTP/1.1 response from a socket."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the agent")
        self.buf += data

    def head(self) -> tuple[int, dict[str, str]]:
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > 65536:
                raise ValueError("response head too large")
            self.fill()
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[: end + 4]
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError(f"bad status line {lines[0]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    def body(self, headers: dict[str, str]) -> bytes:
        """A whole non-streaming body (Content-Length or chunked)."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            decoder = Dechunker()
            out = bytearray()
            while True:
                out += decoder.feed(bytes(self.buf))
                self.buf.clear()
                if decoder.done:
                    return bytes(out)
                self.fill()
        length = int(headers.get("content-length", "0") or 0)
        while len(self.buf) < length:
            self.fill()
        data = bytes(self.buf[:length])
        del self.buf[:length]
        return data


class Dechunker:
    """Incremental `Transfer-Encoding: chunked` decoder."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.remaining = -1  # bytes left in the current chunk; -1 = expecting a size line
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = bytearray()
        while not self.done:
            if self.remaining < 0:
                line_end = self.buf.find(b"\r\n")
                if line_end < 0:
                    break
                size_text = bytes(self.buf[:line_end]).split(b";", 1)[0].strip()
                del self.buf[: line_end + 2]
                size = int(size_text, 16)
                if size == 0:
                    self.done = True
                    break
                self.remaining = size
            take = min(self.remaining, len(self.buf))
            out += self.buf[:take]
            del self.buf[:take]
            self.remaining -= take
            if self.remaining > 0:
                break
            if len(self.buf) < 2:
                # The CRLF after the chunk data has not arrived yet: wait for it.
                self.remaining = 0
                break
            del self.buf[:2]
            self.remaining = -1
        return bytes(out)


class RecordReader:
    """Incremental RecordIO decoder (spec §2.2): `<decimal length>\\n<payload>`."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        records: list[bytes] = []
        while True:
            newline = self.buf.find(b"\n")
            if newline < 0:
                if len(self.buf) > 20:
                    raise ValueError("bad RecordIO length prefix")
                return records
            length = int(self.buf[:newline])
            if length <= 0:
                raise ValueError("bad RecordIO length 0")
            if len(self.buf) < newline + 1 + length:
                return records
            records.append(bytes(self.buf[newline + 1 : newline + 1 + length]))
            del self.buf[: newline + 1 + length]


class EventStream:
    """The SUBSCRIBE response: a socket the poll loop watches, yielding decoded events."""

    def __init__(self, sock: _socket.socket, reader: Reader, headers: dict[str, str]) -> None:
        self.sock = sock
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.dechunker = Dechunker()
        self.records = RecordReader()
        self.pending = bytes(reader.buf)  # bytes that arrived together with the head
        sock.settimeout(None)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> tuple[list[dict], bool]:
        """(events, ended) after the socket polled readable."""
        data = self.pending or self.sock.recv(65536)
        self.pending = b""
        if not data:
            return [], True
        body = self.dechunker.feed(data) if self.chunked else data
        events = [e for e in map(loads, self.records.feed(body)) if isinstance(e, dict)]
        return events, self.chunked and self.dechunker.done

    def close(self) -> None:
        try:  # noqa: SIM105 - contextlib would cost an import at start-up
            self.sock.close()
        except OSError:
            pass


class CallConnection:
    """Keep-alive connection for UPDATE calls (never the stream's connection, spec §2.7)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: Reader | None = None

    def post(self, body: bytes) -> int:
        """POST one call; returns the HTTP status; raises OSError/EOFError/ValueError."""
        for attempt in (0, 1):
            fresh = self.reader is None
            if self.reader is None:
                self.reader = Reader(connect(self.host, self.port, CONNECT_TIMEOUT_SECONDS))
                self.reader.sock.settimeout(CALL_TIMEOUT_SECONDS)
            try:
                self.reader.sock.sendall(request_bytes(self.host, self.port, body, stream=False))
                status, headers = self.reader.head()
                self.reader.body(headers)
                if headers.get("connection", "").lower() == "close":
                    self.close()
                return status
            except (OSError, EOFError, ValueError):
                self.close()
                # A reused connection may have been closed by the server while idle: retry
                # once on a fresh one. A fresh connection failing is a real failure.
                if fresh or attempt == 1:
                    raise
        raise OSError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self.reader is not None:
            try:  # noqa: SIM105
                self.reader.sock.close()
            except OSError:
                pass
            self.reader = None


# ----------------------------------------------------------------------------- the executor


class CommandExecutor:
    """State and event handling of one command executor (one task)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.host, self.port = split_endpoint(env["MESOS_AGENT_ENDPOINT"])
        self.framework_id = env["MESOS_FRAMEWORK_ID"]
        self.executor_id = env["MESOS_EXECUTOR_ID"]
        self.checkpoint = as_bool(env.get("MESOS_CHECKPOINT"), False)
        self.shutdown_grace = parse_duration(env.get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"), 5.0)
        self.backoff_max = parse_duration(env.get("MESOS_SUBSCRIPTION_BACKOFF_MAX"), 2.0)
        self.recovery_timeout = parse_duration(env.get("MESOS_RECOVERY_TIMEOUT"), 900.0)
        self.ids = {
            "framework_id": {"value": self.framework_id},
            "executor_id": {"value": self.executor_id},
        }
        self.calls = CallConnection(self.host, self.port)
        self.stream: EventStream | None = None
        self.started_at = time.monotonic()
        self.ever_subscribed = False
        self.disconnected_at: float | None = None
        self.next_connect_at = 0.0
        self.backoff = BACKOFF_INITIAL_SECONDS
        self.agent_id: dict | None = None
        self.killing_capable = False
        # The task.
        self.task: dict | None = None
        self.task_id: str | None = None
        self.task_acked = False  # some update of the task was ACKNOWLEDGED: the agent knows it
        self.pid: int | None = None
        self.pidfd: int | None = None
        self.terminal_sent_at: float | None = None
        self.kill_requested = False
        self.kill_escalate_at: float | None = None
        self.killed_by_timeout = False
        self.max_completion_at: float | None = None
        self.shutting_down = False
        self.exit_when_reaped = False
        # Updates not yet ACKNOWLEDGED (uuid -> TaskStatus), in send order; and those whose
        # UPDATE call failed while the stream was up (resent on a timer).
        self.unacked: dict[bytes, dict] = {}
        self.unsent: list[bytes] = []
        self.resend_at: float | None = None
        self.exit_code: int | None = None

    # ---------------------------------------------------------------- the loop

    def run(self) -> int:
        while self.exit_code is None:
            now = time.monotonic()
            self.on_timers(now)
            if self.exit_code is not None:
                break
            if self.stream is None and now >= self.next_connect_at:
                self.subscribe(now)
                continue
            poller = select.poll()
            if self.stream is not None:
                poller.register(self.stream.fileno(), select.POLLIN)
            if self.pidfd is not None:
                poller.register(self.pidfd, select.POLLIN)
            timeout = self.next_deadline(now)
            if self.stream is not None and self.stream.pending:
                timeout = 0.0
            ready = poller.poll(None if timeout is None else max(0, int(timeout * 1000) + 1))
            for fd, _mask in ready:
                if self.pidfd is not None and fd == self.pidfd:
                    self.on_child_exit()
            if self.stream is not None and (
                self.stream.pending or any(fd == self.stream.fileno() for fd, _ in ready)
            ):
                self.read_stream()
        self.calls.close()
        if self.stream is not None:
            self.stream.close()
        return self.exit_code

    def next_deadline(self, now: float) -> float | None:
        deadlines = [
            t
            for t in (
                self.kill_escalate_at,
                self.max_completion_at,
                self.resend_at,
                self.terminal_sent_at and self.terminal_sent_at + ACK_WAIT_SECONDS,
                self.next_connect_at if self.stream is None else None,
                self.give_up_at() if self.stream is None else None,
            )
            if t
        ]
        return max(0.0, min(deadlines) - now) if deadlines else None

    def give_up_at(self) -> float:
        if self.disconnected_at is None:  # never subscribed
            limit = self.recovery_timeout if self.checkpoint else FIRST_SUBSCRIBE_GIVE_UP_SECONDS
            return self.started_at + limit
        return self.disconnected_at + self.recovery_timeout

    def on_timers(self, now: float) -> None:
        if self.kill_escalate_at is not None and now >= self.kill_escalate_at:
            self.kill_escalate_at = None
            self.signal_task(_signal.SIGKILL)
        if self.max_completion_at is not None and now >= self.max_completion_at:
            self.max_completion_at = None
            log("task exceeded its max completion time; killing it")
            self.killed_by_timeout = True
            self.kill(self.task_grace(None))
        if self.resend_at is not None and now >= self.resend_at:
            self.resend_at = None
            # In order, stopping at the first refusal: updates of a task never overtake.
            while self.unsent and self.stream is not None:
                uuid = self.unsent[0]
                if uuid in self.unacked and not self.post_update(self.unacked[uuid]):
                    break
                self.unsent.pop(0)
            if self.unsent and self.stream is not None:
                self.resend_at = now + RESEND_SECONDS
        if self.terminal_sent_at is not None and self.pid is None:
            if not self.unacked:
                self.exit_code = 0
            elif (
                now >= self.terminal_sent_at + ACK_WAIT_SECONDS
                and not self.unsent  # the agent took every update; only its ack is missing
                and (self.stream is not None or not self.checkpoint)
            ):
                log("terminal update not acknowledged in time; exiting")
                self.exit_code = 0
        if self.stream is None and self.exit_code is None and now >= self.give_up_at():
            log("could not (re)subscribe to the agent in time; killing the task and exiting")
            self.signal_task(_signal.SIGKILL)
            self.exit_code = 1

    # ---------------------------------------------------------------- subscription

    def subscribe(self, now: float) -> None:
        subscribe: dict = {
            "unacknowledged_tasks": [self.task] if self.task and not self.task_acked else [],
            "unacknowledged_updates": [{"status": s} for s in self.unacked.values()],
        }
        body = dumps({"type": "SUBSCRIBE", **self.ids, "subscribe": subscribe}).encode()
        sock = None
        try:
            sock = connect(self.host, self.port, CONNECT_TIMEOUT_SECONDS)
            sock.sendall(request_bytes(self.host, self.port, body, stream=True))
            reader = Reader(sock)
            status, headers = reader.head()
            if status != 200:
                text = reader.body(headers)[:200].decode("utf-8", "replace").strip()
                raise OSError(f"SUBSCRIBE answered HTTP {status}: {text}")
        except (OSError, EOFError, ValueError) as exc:
            if sock is not None:
                sock.close()
            delay = min(self.backoff, self.backoff_max) * jitter()
            self.backoff = min(self.backoff * 2, self.backoff_max)
            self.next_connect_at = now + delay
            debug(f"subscribe failed ({exc}); retrying in {delay:.2f}s")
            return
        self.stream = EventStream(sock, reader, headers)
        self.backoff = BACKOFF_INITIAL_SECONDS
        self.unsent = []  # the agent replays what we listed as unacknowledged
        self.resend_at = None
        debug("subscribed")

    def read_stream(self) -> None:
        assert self.stream is not None
        try:
            events, ended = self.stream.read()
        except (OSError, ValueError) as exc:
            log(f"event stream broken: {exc}")
            events, ended = [], True
        for event in events:
            self.on_event(event)
            if self.stream is None or self.exit_code is not None:
                return
        if ended:
            self.on_disconnected()

    def on_disconnected(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        self.calls.close()
        now = time.monotonic()
        self.disconnected_at = now
        if not self.checkpoint:
            log("lost the agent and not checkpointing: killing the task and exiting")
            if self.pid is None:
                self.exit_code = 0
                return
            self.exit_when_reaped = True
            self.kill(min(self.task_grace(None), self.shutdown_grace))
            self.next_connect_at = float("inf")  # never reconnect
            return
        log("lost the agent; re-subscribing (checkpointing)")
        self.next_connect_at = now

    # ---------------------------------------------------------------- events

    def on_event(self, event: dict) -> None:
        kind = event.get("type")
        debug(f"event {kind}")
        if kind == "SUBSCRIBED":
            self.on_subscribed(event.get("subscribed") or {})
        elif kind == "LAUNCH":
            task = (event.get("launch") or {}).get("task")
            if isinstance(task, dict):
                self.on_launch(task)
        elif kind == "LAUNCH_GROUP":
            group = (event.get("launch_group") or {}).get("task_group") or {}
            for task in group.get("tasks") or []:
                self.send_status(
                    task.get("task_id") or {},
                    "TASK_FAILED",
                    message="The command executor cannot run task groups",
                )
        elif kind == "KILL":
            kill = event.get("kill") or {}
            if (kill.get("task_id") or {}).get("value") != self.task_id or self.task is None:
                log(f"KILL for unknown task {kill.get('task_id')}; ignored")
                return
            self.kill(self.task_grace(kill.get("kill_policy")))
        elif kind == "ACKNOWLEDGED":
            ack = event.get("acknowledged") or {}
            uuid = unb64(ack.get("uuid") or "")
            known = self.unacked.pop(uuid, None) is not None
            if known and (ack.get("task_id") or {}).get("value") == self.task_id:
                self.task_acked = True
        elif kind == "SHUTDOWN":
            self.on_shutdown()
        elif kind == "ERROR":
            log(f"agent error: {(event.get('error') or {}).get('message')}")
        # MESSAGE and HEARTBEAT: nothing to do for a command task.

    def on_subscribed(self, subscribed: dict) -> None:
        self.ever_subscribed = True
        agent_info = subscribed.get("agent_info") or {}
        if isinstance(agent_info.get("id"), dict):
            self.agent_id = agent_info["id"]
        capabilities = (subscribed.get("framework_info") or {}).get("capabilities") or []
        if isinstance(capabilities, dict):
            capabilities = [capabilities]
        self.killing_capable = any(
            isinstance(c, dict) and c.get("type") == "TASK_KILLING_STATE" for c in capabilities
        )

    def on_launch(self, task: dict) -> None:
        task_id = task.get("task_id") or {}
        if self.task is not None:
            if task_id.get("value") != self.task_id:
                self.send_status(
                    task_id,
                    "TASK_FAILED",
                    message="The command executor runs one task; this one was rejected",
                )
            return  # a replayed LAUNCH of our own task: already running
        self.task = task
        self.task_id = task_id.get("value")
        self.send_status(task_id, "TASK_STARTING")
        command = task.get("command") or {}
        try:
            path, argv, env = self.command_line(command)
            pid = os.posix_spawn(
                path,
                argv,
                env,
                setpgroup=0,  # own group: a kill reaches the task tree, not the executor
                # Python ignores SIGPIPE/SIGXFSZ; the task must get the default dispositions.
                setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),
            )
        except (OSError, ValueError, TypeError) as exc:
            self.send_status(task_id, "TASK_FAILED", message=f"Failed to launch command: {exc}")
            self.terminal_sent_at = time.monotonic()
            return
        self.pid = pid
        try:
            self.pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # pragma: no cover - Linux < 5.3
            self.pidfd = None
        self.send_status(task_id, "TASK_RUNNING")
        limit = duration_seconds(task.get("max_completion_time"))
        if limit is not None:
            self.max_completion_at = time.monotonic() + limit
        if self.pidfd is None:  # pragma: no cover - poll for the exit instead
            self.wait_without_pidfd()

    def command_line(self, command: dict) -> tuple[str, list[str], dict[str, str]]:
        env = dict(os.environ)
        for var in (command.get("environment") or {}).get("variables") or []:
            if isinstance(var, dict) and "name" in var and var.get("value") is not None:
                env[str(var["name"])] = str(var["value"])
        value = command.get("value")
        if not isinstance(value, str) or not value:
            raise ValueError("the task's command has no value")
        if as_bool(command.get("shell"), True):
            return "/bin/sh", ["/bin/sh", "-c", value], env
        arguments = command.get("arguments") or []
        if isinstance(arguments, str):
            arguments = [arguments]
        argv = [str(a) for a in arguments] or [value]
        return resolve(value, env), argv, env

    def wait_without_pidfd(self) -> None:  # pragma: no cover
        while self.pid is not None:
            time.sleep(0.01)
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
        self.on_child_exit()

    def on_child_exit(self) -> None:
        if self.pid is None:
            return
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            status = 0
        # Stragglers the task left in its group go with it (the container is ending anyway).
        self.signal_task(_signal.SIGKILL)
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self.pid = None
        self.kill_escalate_at = None
        self.max_completion_at = None
        ok, message = describe_status(status)
        task_id = (self.task or {}).get("task_id") or {}
        if self.killed_by_timeout:
            self.send_status(
                task_id,
                "TASK_FAILED",
                message="Task exceeded its max completion time",
                reason="REASON_MAX_COMPLETION_TIME_REACHED",
            )
        elif self.kill_requested:
            self.send_status(task_id, "TASK_KILLED", message=message)
        else:
            self.send_status(task_id, "TASK_FINISHED" if ok else "TASK_FAILED", message=message)
        self.terminal_sent_at = time.monotonic()
        if self.exit_when_reaped:
            self.exit_code = 0

    def task_grace(self, kill_policy: object) -> float:
        for policy in (kill_policy, (self.task or {}).get("kill_policy")):
            if isinstance(policy, dict):
                grace = duration_seconds(policy.get("grace_period"))
                if grace is not None:
                    return grace
        return DEFAULT_GRACE_SECONDS

    def kill(self, grace: float) -> None:
        if self.pid is None:
            return
        escalate_at = time.monotonic() + grace
        if self.kill_requested:
            # A second kill may only shorten the grace period.
            if self.kill_escalate_at is not None and escalate_at < self.kill_escalate_at:
                self.kill_escalate_at = escalate_at
            return
        self.kill_requested = True
        self.max_completion_at = None
        if self.killing_capable and self.task is not None:
            self.send_status(self.task.get("task_id") or {}, "TASK_KILLING")
        self.signal_task(_signal.SIGTERM)
        self.kill_escalate_at = escalate_at

    def signal_task(self, sig: int) -> None:
        if self.pid is None:
            return
        try:  # noqa: SIM105
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def on_shutdown(self) -> None:
        self.shutting_down = True
        if self.pid is not None:
            # Leave the agent a second of its shutdown grace period to collect our update.
            self.kill(min(self.task_grace(None), max(0.0, self.shutdown_grace - 1.0)))
        elif self.terminal_sent_at is None or not self.unacked:
            self.exit_code = 0

    # ---------------------------------------------------------------- updates

    def send_status(
        self, task_id: dict, state: str, message: str | None = None, reason: str | None = None
    ) -> None:
        uuid = new_uuid()
        status: dict = {
            "task_id": task_id,
            "state": state,
            "source": "SOURCE_EXECUTOR",
            "executor_id": {"value": self.executor_id},
            "uuid": b64(uuid),
            "timestamp": time.time(),
        }
        if self.agent_id is not None:
            status["agent_id"] = self.agent_id
        if message is not None:
            status["message"] = message
        if reason is not None:
            status["reason"] = reason
        self.unacked[uuid] = status
        debug(f"update {state}")
        if self.stream is None:
            return  # listed as unacknowledged on the next SUBSCRIBE
        if self.unsent:  # earlier updates wait for a retry: queue behind them
            self.unsent.append(uuid)
        elif not self.post_update(status):
            self.unsent.append(uuid)
            if self.resend_at is None:
                self.resend_at = time.monotonic() + RESEND_SECONDS

    def post_update(self, status: dict) -> bool:
        """POST one UPDATE; True if the agent accepted it (202)."""
        body = dumps({"type": "UPDATE", **self.ids, "update": {"status": status}}).encode()
        try:
            code = self.calls.post(body)
        except (OSError, EOFError, ValueError) as exc:
            code, detail = 0, str(exc)
        else:
            detail = f"HTTP {code}"
        if code == 202:
            return True
        # Kept in `unacked` either way: listed on the next SUBSCRIBE, and retried meanwhile.
        log(f"UPDATE {status['state']} not accepted ({detail}); will retry")
        return False


def main() -> int:
    env = dict(os.environ)
    missing = [
        name
        for name in ("MESOS_AGENT_ENDPOINT", "MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID")
        if not env.get(name)
    ]
    if missing:
        log(f"missing environment: {', '.join(missing)}")
        return 1
    sandbox = env.get("MESOS_SANDBOX") or env.get("MESOS_DIRECTORY")
    if sandbox:
        try:
            os.chdir(sandbox)
        except OSError as exc:
            log(f"cannot enter the sandbox {sandbox}: {exc}")
    try:
        executor = CommandExecutor(env)
    except (ValueError, KeyError) as exc:
        log(f"bad environment: {exc}")
        return 1
    # SIGTERM from the agent (container destroy): take the task down with us.
    _signal.signal(_signal.SIGTERM, lambda *_: _terminate(executor))
    return executor.run()


def _terminate(executor: CommandExecutor) -> None:
    executor.signal_task(_signal.SIGKILL)
    os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
