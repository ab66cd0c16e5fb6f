"""A minimal blocking HTTP/1.1 client on a plain socket, for the CLI's start-up budget.

Why not `http.client`: importing it costs more than the rest of `mezzo run` together (it pulls
in the `email` package to parse headers, and `ssl`), and the CLI only needs one narrow shape of
HTTP: requests with a complete body, answers framed by `Content-Length`, `chunked` or the end
of the connection, kept alive when the server allows. `https://` falls back to `ssl` (imported
only then). Headers of answers come back lower-cased.

- `Connection(base)` — one kept-alive connection (opened on first use, re-opened once if the
  server had closed an idle one); `request()` returns a `Response` with the whole body.
- `Connection.open_stream()` — a request whose answer is read incrementally: `Response.chunks()`
  yields the body as it arrives (the scheduler API's event stream).

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
from urllib.parse import urlsplit

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

    def __init__(self, status: int, headers: dict[str, str], reader: io.BufferedReader):
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
        """The body, piece by piece as it arrives; ends at the end of the body."""
        reader = self._reader
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
        parts = urlsplit(base)
        self.scheme = parts.scheme or "http"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.scheme == "https" else 80)
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
        return self._read_head()

    def _read_head(self) -> Response:
        reader = self._reader
        assert reader is not None
        status_line = reader.readline(MAX_HEADER_LINE)
        if not status_line:
            raise ConnectionResetError(104, "Connection reset by peer")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x answer: {status_line[:60]!r}")
        headers: dict[str, str] = {}
        while True:
            line = reader.readline(MAX_HEADER_LINE)
            if not line:
                raise ProtocolError("connection closed inside the headers")
            if line in (b"\r\n", b"\n"):
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if parts[0] == b"HTTP/1.0" and "keep-alive" not in headers.get("connection", "").lower():
            headers["connection"] = "close"
        return Response(int(parts[1]), headers, reader)

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

    def shutdown(self) -> None:
        """Wake a thread blocked reading this connection (it sees the end of the stream)."""
        if self.sock is not None:
            try:  # noqa: SIM105 (no contextlib import: start-up time)
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

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
