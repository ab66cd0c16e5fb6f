"""The command executor's wire: HTTP/1.1 client, chunked decoding, RecordIO, JSON, durations.

Stdlib only, and only the cheap part of it (`_socket`, `_json`, `binascii`, `os`): the command
executor runs as ``python -S -E`` and starts in ~10 ms because it imports neither `socket`,
`json`, `re` nor anything of mezzo (see `command.py`). That is why this module holds deliberate
copies of mezzo's Mesos duration parsing (`mezzo.core.durations`) and RecordIO framing
(`mezzo.api.recordio`): the originals import `re` and mezzo's error types.
`tests/test_executor_command_core.py` pins the copies to the originals on generated inputs, so
they cannot drift.

Nothing here keeps executor state or decides anything; `command_core.py` decides and
`command_executor.py` (the loop) uses these helpers to carry its actions out.
"""

import _socket
import binascii
import posix  # not `os`: its import (posixpath, stat, _collections_abc) costs ~1.5 ms

try:  # the C scanner without `json`'s import of `re`/`enum` (~7 ms); fall back if absent
    import _json

    _encode_str = _json.encode_basestring_ascii
except ImportError:  # pragma: no cover - every CPython build has _json
    _json = None  # type: ignore[assignment]
    _encode_str = None  # type: ignore[assignment]

PATH = "/api/v1/executor"
CONNECT_TIMEOUT_SECONDS = 5.0
CALL_TIMEOUT_SECONDS = 5.0

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


def b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def unb64(text: str) -> bytes:
    try:
        return binascii.a2b_base64(text)
    except (binascii.Error, TypeError, ValueError):
        return b""


def new_uuid() -> bytes:
    """RFC 4122 version-4 uuid bytes (what `uuid.uuid4().bytes` gives, without importing uuid)."""
    b = bytearray(posix.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return bytes(b)


# ----------------------------------------------------------------------------- durations

# A copy of `mezzo.core.durations` without `re`: `^\s*(number)\s*([a-z]+)\s*$` where number is
# `[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?`, scanned by hand.
DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "secs": 1.0,
    "mins": 60.0,
    "hrs": 3600.0,
    "days": 86400.0,
    "weeks": 604800.0,
}
_DIGITS = frozenset("0123456789")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")


def parse_duration(text: str) -> float:
    """A Mesos duration (`5secs`, `500ms`, `1.5mins`) in seconds; ValueError if invalid."""
    text = text.strip()
    end = len(text)
    i = _digits(text, 0)
    if i < end and text[i] == ".":
        after = _digits(text, i + 1)
        if after > i + 1:
            i = after
    if i == 0 or text[i - 1] not in _DIGITS:  # no digit, or a trailing "." (`5.`)
        raise ValueError(f"invalid duration {text!r}")
    if i < end and text[i] in "eE":
        j = i + 1
        if j < end and text[j] in "+-":
            j += 1
        exponent_end = _digits(text, j)
        if exponent_end > j:
            i = exponent_end
    number = text[:i]
    unit = text[i:].lstrip()
    if not unit or any(c not in _LOWER for c in unit):
        raise ValueError(f"invalid duration {text!r}")
    if unit not in DURATION_UNITS:
        raise ValueError(f"invalid duration {text!r}: unknown unit {unit!r}")
    return float(number) * DURATION_UNITS[unit]


def _digits(text: str, i: int) -> int:
    while i < len(text) and text[i] in _DIGITS:
        i += 1
    return i


# ----------------------------------------------------------------------------- framing


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


MAX_RECORD_BYTES = 64 * 1024 * 1024  # mezzo.api.recordio.DEFAULT_MAX_RECORD_BYTES
_MAX_PREFIX_DIGITS = 20


class RecordReader:
    """Incremental RecordIO decoder (spec §2.2): `<decimal length>\\n<payload>`.

    A copy of `mezzo.api.recordio.RecordIODecoder` (same checks, same order) raising ValueError.
    """

    def __init__(self, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self.max = max_record_bytes
        self.buf = bytearray()
        self.pending: int | None = None  # length of the record being read, once known

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        records: list[bytes] = []
        while True:
            if self.pending is None:
                newline = self.buf.find(b"\n")
                if newline < 0:
                    self._check(bytes(self.buf[: _MAX_PREFIX_DIGITS + 1]), complete=False)
                    return records
                self.pending = self._check(bytes(self.buf[:newline]), complete=True)
                del self.buf[: newline + 1]
            if len(self.buf) < self.pending:
                return records
            records.append(bytes(self.buf[: self.pending]))
            del self.buf[: self.pending]
            self.pending = None

    def _check(self, prefix: bytes, *, complete: bool) -> int:
        if prefix and not prefix.isdigit():
            raise ValueError(f"bad RecordIO length {prefix[:32]!r}")
        if len(prefix) > _MAX_PREFIX_DIGITS or (prefix and int(prefix) > self.max):
            raise ValueError(f"RecordIO length {prefix[:32]!r} too large")
        if not complete:
            return 0
        if not prefix or int(prefix) == 0:
            raise ValueError(f"bad RecordIO length {prefix!r}")
        return int(prefix)


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


# The TLS context connections to the agent are wrapped in (`use_tls_from`); None: plain TCP.
_TLS = None


def use_tls_from(env: dict) -> None:
    """Speak HTTPS to the agent when `LIBPROCESS_SSL_ENABLED` says so (the agent sets the
    `LIBPROCESS_SSL_*` variables of its executors): the agent's certificate is checked against
    `LIBPROCESS_SSL_CA_FILE` (else the system's store), ours shown if we have one. `ssl` is
    imported only then (start-up time)."""
    global _TLS
    if env.get("LIBPROCESS_SSL_ENABLED", "").strip().lower() not in ("1", "true", "yes"):
        _TLS = None
        return
    import ssl

    context = ssl.create_default_context(cafile=env.get("LIBPROCESS_SSL_CA_FILE") or None,
                                         capath=env.get("LIBPROCESS_SSL_CA_DIR") or None)
    cert, key = env.get("LIBPROCESS_SSL_CERT_FILE"), env.get("LIBPROCESS_SSL_KEY_FILE")
    if cert and key:
        context.load_cert_chain(cert, key)
    _TLS = context


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
            if _TLS is not None:
                sock = _TLS.wrap_socket(sock, server_hostname=host)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last


def request_bytes(host: str, port: int, body: bytes, *, stream: bool, token: str | None = None) -> bytes:
    headers = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    if token:  # the agent's executor authentication token (MESOS_EXECUTOR_AUTHENTICATION_TOKEN)
        headers += f"Authorization: Bearer {token}\r\n"
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


def _close(sock: _socket.socket) -> None:
    try:  # noqa: SIM105 - contextlib would cost an import at start-up
        sock.close()
    except OSError:
        pass


class EventStream:
    """The SUBSCRIBE response: a socket the poll loop watches, yielding decoded events."""

    def __init__(self, sock: _socket.socket, reader: Reader, headers: dict[str, str]) -> None:
        self.sock = sock
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.dechunker = Dechunker()
        self.records = RecordReader()
        self.pending = bytes(reader.buf)  # bytes that arrived together with the head
        sock.settimeout(None)

    @classmethod
    def open(cls, host: str, port: int, body: bytes, token: str | None = None) -> "EventStream":
        """POST the SUBSCRIBE call; the stream once the agent answers 200.

        Raises OSError (also for a non-200 answer, with its text), EOFError or ValueError."""
        sock = connect(host, port, CONNECT_TIMEOUT_SECONDS)
        try:
            sock.sendall(request_bytes(host, port, body, stream=True, token=token))
            reader = Reader(sock)
            status, headers = reader.head()
            if status != 200:
                text = reader.body(headers)[:200].decode("utf-8", "replace").strip()
                raise OSError(f"SUBSCRIBE answered HTTP {status}: {text}")
        except BaseException:
            _close(sock)
            raise
        return cls(sock, reader, headers)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> tuple[list[dict], bool]:
        """(events, ended) after the socket polled readable."""
        data = self.pending or self.sock.recv(65536)
        self.pending = b""
        if _TLS is not None:
            # Records already decrypted wait in the TLS layer, not on the socket: take them
            # now, or the poll loop would not wake for them.
            while data and self.sock.pending():
                data += self.sock.recv(self.sock.pending())
        if not data:
            return [], True
        body = self.dechunker.feed(data) if self.chunked else data
        events = [e for e in map(loads, self.records.feed(body)) if isinstance(e, dict)]
        return events, self.chunked and self.dechunker.done

    def close(self) -> None:
        _close(self.sock)


class CallConnection:
    """Keep-alive connection for calls (never the stream's connection, spec §2.7)."""

    def __init__(self, host: str, port: int, token: str | None = None) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.reader: Reader | None = None

    def post(self, body: bytes) -> int:
        """POST one call; returns the HTTP status; raises OSError/EOFError/ValueError."""
        for attempt in (0, 1):
            fresh = self.reader is None
            if self.reader is None:
                self.reader = Reader(connect(self.host, self.port, CONNECT_TIMEOUT_SECONDS))
                self.reader.sock.settimeout(CALL_TIMEOUT_SECONDS)
            try:
                self.reader.sock.sendall(
                    request_bytes(self.host, self.port, body, stream=False, token=self.token))
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
            _close(self.reader.sock)
            self.reader = None
