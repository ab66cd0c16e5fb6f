"""A minimal blocking HTTP/1.1 client on a plain socket, for the CLI's start-up budget.

Why not `http.client`: importing it costs more than the rest of `mezzo run` together (it pulls
in the `email` package to parse headers, and `ssl`), and the CLI only needs one narrow shape of
HTTP: requests with a complete body, answers framed by `Content-Length`, `chunked` or the end
of the connection, kept alive when the server allows. `https://` falls back to `ssl` (imported
only then). Headers of answers come back lower-cased.

- `Connection(base)` — one kept-alive connection (opened on first use, re-opened once if the
  server had closed an idle one); `request()` returns a `Response` with the whole body.
- `Connection.open_stream()` — a request whose answer is read incrementally: `Response.chunks()`
  yields the body as it arrives.
- `Connection.open_body_stream()` — the same, its head and body read straight from the socket
  by a `StreamBody`, whose `read(timeout)` gives up after `timeout` and can be called again:
  the scheduler API's event stream, waited on in the caller's own thread.

Every request carries the CLI's credentials if it has some (`auth_headers`: the principal and
secret of `mezzo --principal/--secret`, `MEZZO_PRINCIPAL`/`MEZZO_SECRET`).

Errors: `OSError` for connection failures and time-outs; `ProtocolError` (an `OSError`) for an
answer that is not HTTP/1.x.
"""

from __future__ import annotations

import binascii
import io
import os
import socket
import time

from mezzo.net.address import split_url

# Typing names for the checker only: importing `typing` costs `mezzo run` start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator

MAX_HEADER_LINE = 65536


class ProtocolError(OSError):
    """The server's answer is not well-formed HTTP/1.x."""


def client_credentials() -> tuple[str, str] | None:
    """The principal and secret the CLI authenticates with: `MEZZO_PRINCIPAL` and
    `MEZZO_SECRET` (set by `mezzo --principal P --secret S ...`), else Mesos's example
    frameworks' `DEFAULT_PRINCIPAL` and `DEFAULT_SECRET`; None when neither is set."""
    env = os.environ
    for prefix in ("MEZZO_", "DEFAULT_"):
        principal = env.get(prefix + "PRINCIPAL")
        if principal:
            return principal, env.get(prefix + "SECRET", "")
    return None


def client_ssl_context() -> ssl.SSLContext:
    """The TLS context of the CLI's `https://` requests: the server checked against
    `LIBPROCESS_SSL_CA_FILE` / `_CA_DIR` (else the system's store), our certificate
    (`LIBPROCESS_SSL_CERT_FILE` / `_KEY_FILE`) shown to servers that require one."""
    import ssl

    env = os.environ
    context = ssl.create_default_context(cafile=env.get("LIBPROCESS_SSL_CA_FILE") or None,
                                         capath=env.get("LIBPROCESS_SSL_CA_DIR") or None)
    cert, key = env.get("LIBPROCESS_SSL_CERT_FILE"), env.get("LIBPROCESS_SSL_KEY_FILE")
    if cert and key:
        context.load_cert_chain(cert, key)
    return context


def auth_headers() -> dict[str, str]:
    """`{"Authorization": "Basic ..."}` for the CLI's credentials, or {} (HTTP Basic, what a
    master or agent with `--authenticate_http_*` asks for)."""
    credentials = client_credentials()
    if credentials is None:
        return {}
    token = binascii.b2a_base64(f"{credentials[0]}:{credentials[1]}".encode(), newline=False)
    return {"Authorization": "Basic " + token.decode("ascii")}


class Response:
    """Status, lower-cased headers and the body (read by `Connection.request`, or
    incrementally through `chunks()` for a stream)."""

    def __init__(self, status: int, headers: dict[str, str], reader: io.BufferedReader | None):
        self.status = status
        self.headers = headers
        self.body = b""
        self._reader = reader

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def will_close(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def framed(self) -> bool:
        """Whether the body's end is marked (length or chunks), not the connection's end."""
        return self.chunked or "content-length" in self.headers

    def chunks(self) -> Iterator[bytes]:
        """The body, piece by piece as it arrives; ends at the end of the body (not for an
        answer of `open_body_stream`: its `StreamBody` reads it)."""
        reader = self._reader
        assert reader is not None
        if self.chunked:
            while True:
                line = reader.readline(MAX_HEADER_LINE)
                if not line:
                    raise ProtocolError("connection closed inside a chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while reader.readline(MAX_HEADER_LINE).strip():
                        pass  # trailers
                    return
                data = _read_exactly(reader, size)
                _read_exactly(reader, 2)  # CRLF after the chunk
                yield data
        elif "content-length" in self.headers:
            remaining = int(self.headers["content-length"])
            while remaining > 0:
                data = reader.read1(min(remaining, 65536))
                if not data:
                    raise ProtocolError("connection closed before the end of the body")
                remaining -= len(data)
                yield data
        else:
            while data := reader.read1(65536):
                yield data


class StreamBody:
    """A streamed answer's body read straight from its socket, so that a read may time out and
    be tried again (a buffered reader's socket cannot be read again after a time-out): framed
    by chunks, by `Content-Length`, or by the end of the connection."""

    def __init__(self, sock: socket.socket, response: Response, pending: bytes) -> None:
        self._sock = sock
        self._raw = bytearray(pending)  # received, not yet decoded
        self._chunked = response.chunked
        length = response.headers.get("content-length")
        self._remaining = int(length) if length is not None and not self._chunked else None
        self._chunk_left = 0  # bytes of the current chunk still to hand out (chunked)
        self.ended = False

    def read(self, timeout: float | None = None) -> bytes:
        """The next bytes of the body (b"" at its end). TimeoutError if none came within
        `timeout` seconds (None: wait); ProtocolError if the connection ends inside a chunk
        or before `Content-Length`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            data = self._decode()
            if data or self.ended:
                return data
            if deadline is None:
                self._sock.settimeout(None)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("timed out")
                self._sock.settimeout(left)
            received = self._sock.recv(65536)
            if not received:
                if self._chunked or self._remaining:
                    raise ProtocolError("connection closed inside the body")
                self.ended = True
                return b""
            self._raw += received

    def read_all(self, timeout: float) -> bytes:
        """The rest of the body (within `timeout` seconds in all)."""
        deadline = time.monotonic() + timeout
        parts = []
        while not self.ended:
            parts.append(self.read(max(0.0, deadline - time.monotonic())))
        return b"".join(parts)

    def _decode(self) -> bytes:
        raw = self._raw
        if self._chunked:
            if not self._chunk_left:
                newline = raw.find(b"\r\n")
                if newline < 0:
                    if len(raw) > MAX_HEADER_LINE:
                        raise ProtocolError("chunk size line too long")
                    return b""
                try:
                    size = int(bytes(raw[:newline]).split(b";", 1)[0].strip() or b"0", 16)
                except ValueError:
                    raise ProtocolError("bad chunk size") from None
                if size == 0:
                    self.ended = True  # trailers, if any, are left unread
                    return b""
                del raw[:newline + 2]
                self._chunk_left = size + 2  # the data and its CRLF
            data_left = self._chunk_left - 2
            if data_left > 0:
                data = bytes(raw[:data_left])
                del raw[:len(data)]
                self._chunk_left -= len(data)
                return data
            if len(raw) >= 2:  # the chunk's CRLF
                del raw[:2]
                self._chunk_left = 0
                return self._decode()
            return b""
        data = bytes(raw if self._remaining is None else raw[:self._remaining])
        del raw[:len(data)]
        if self._remaining is not None:
            self._remaining -= len(data)
            if self._remaining == 0:
                self.ended = True
        return data


def _head(status_line: bytes, lines: list[bytes], reader: io.BufferedReader | None) -> Response:
    """A `Response` from the status line and header lines of an answer."""
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.x answer: {status_line[:60]!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if parts[0] == b"HTTP/1.0" and "keep-alive" not in headers.get("connection", "").lower():
        headers["connection"] = "close"
    return Response(int(parts[1]), headers, reader)


def _read_exactly(reader: io.BufferedReader, size: int) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise ProtocolError("connection closed inside a chunk")
    return data


def _resolvable(host: str) -> str | bytes:
    """`host` as `getaddrinfo` is given it. A str is IDNA-encoded first, which imports
    `encodings.idna` with `stringprep` and `unicodedata` (~4 ms of a command's start-up on a
    slow machine); for an ASCII name whose labels all have 1 to 63 characters (every IP address,
    most host names) that codec returns the same characters as bytes, so bytes go instead."""
    if host.isascii() and all(0 < len(label) < 64 for label in host.split(".")):
        return host.encode("ascii")
    return host


class Connection:
    """One HTTP/1.1 connection to the server of `base` (`http://host:port`)."""

    def __init__(self, base: str, timeout: float = 10.0) -> None:
        scheme, host, port, _ = split_url(base)
        self.scheme = scheme or "http"
        self.host = host
        self.port = port or (443 if self.scheme == "https" else 80)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._reader: io.BufferedReader | None = None

    def _connect(self) -> None:
        # A bytes host goes to getaddrinfo as it is (typeshed only names str).
        address = (_resolvable(self.host), self.port)
        sock = socket.create_connection(address, self.timeout)  # type: ignore[arg-type]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.scheme == "https":
            sock = client_ssl_context().wrap_socket(sock, server_hostname=self.host)
        self.sock = sock
        self._reader = sock.makefile("rb")

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        self._write(method, path, body, headers)
        return self._read_head()

    def _write(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> None:
        if self.sock is None:
            self._connect()
        assert self.sock is not None
        host = self.host if ":" not in self.host else f"[{self.host}]"
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{self.port}"]
        if "Authorization" not in headers:
            headers = {**auth_headers(), **headers}
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body or b'')}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))

    def _read_head(self) -> Response:
        reader = self._reader
        assert reader is not None
        status_line = reader.readline(MAX_HEADER_LINE)
        if not status_line:
            raise ConnectionResetError(104, "Connection reset by peer")
        lines = []
        while True:
            line = reader.readline(MAX_HEADER_LINE)
            if not line:
                raise ProtocolError("connection closed inside the headers")
            if line in (b"\r\n", b"\n"):
                break
            lines.append(line)
        return _head(status_line, lines, reader)

    def _read_head_raw(self) -> tuple[Response, bytes]:
        """The answer's head read with `recv` (no buffered reader), and the body bytes that
        came with it."""
        sock = self.sock
        assert sock is not None
        received = bytearray()
        while True:
            end = received.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(received) > MAX_HEADER_LINE:
                raise ProtocolError("answer head too long")
            data = sock.recv(65536)
            if not data:
                if not received:
                    raise ConnectionResetError(104, "Connection reset by peer")
                raise ProtocolError("connection closed inside the headers")
            received += data
        status_line, *lines = bytes(received[:end]).split(b"\r\n")
        return _head(status_line, lines, None), bytes(received[end + 4:])

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        """Send a request and read the whole answer. A kept-alive connection the server closed
        meanwhile is re-opened once (only when nothing of the answer had arrived)."""
        for attempt in (1, 2):
            reused = self.sock is not None
            try:
                response = self._send(method, path, body, headers or {})
            except (ConnectionResetError, BrokenPipeError):
                self.close()
                if not reused or attempt == 2:
                    raise
                continue
            try:
                response.body = b"" if method == "HEAD" else b"".join(response.chunks())
            except (OSError, ValueError) as exc:
                self.close()
                raise ProtocolError(f"bad answer body: {exc}") from None
            if response.will_close or not response.framed:
                self.close()  # the body ran to the end of the connection
            return response
        raise AssertionError("unreachable")

    def open_stream(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        """Send a request and return as soon as the answer's headers are in; read the body with
        `Response.chunks()`. The connection then belongs to the stream (close it after)."""
        return self._send(method, path, body, headers or {})

    def open_body_stream(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[Response, StreamBody]:
        """Send a request and return as soon as the answer's head is in, with its body to read
        through the `StreamBody` (time-outs allowed). The connection then belongs to the
        stream (close it after)."""
        self._write(method, path, body, headers or {})
        response, pending = self._read_head_raw()
        assert self.sock is not None
        return response, StreamBody(self.sock, response, pending)

    def close(self) -> None:
        if self._reader is not None:
            try:  # noqa: SIM105 (no contextlib import: start-up time)
                self._reader.close()
            except OSError:
                pass
            self._reader = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
