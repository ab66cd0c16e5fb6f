"""Client side of the v1 streaming APIs: open a SUBSCRIBE stream and iterate its records, or
open a message socket (`mezzo.net.message_socket`, the agent's connection to its master).

Used by the agent (to the master), the scheduler and executor SDKs and the tests. Records are
yielded as raw JSON bytes; callers decode them with `mezzo.api.codec` into their event type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import aiohttp

from mezzo.api.recordio import RecordIODecoder

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class StreamRefused(Exception):
    """The server answered a SUBSCRIBE with something other than a 200 stream."""

    def __init__(self, status: int, message: str, location: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.location = location


@dataclass
class OpenStream:
    """An open subscription: its response headers and an async iterator of records."""

    response: aiohttp.ClientResponse
    headers: Mapping[str, str] = field(default_factory=dict)

    async def records(self) -> AsyncIterator[bytes]:
        decoder = RecordIODecoder()
        async for chunk in self.response.content.iter_any():
            for record in decoder.feed(chunk):
                yield record

    def close(self) -> None:
        self.response.close()


async def open_stream(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
) -> OpenStream:
    """POST a SUBSCRIBE-style call and return the stream; raise StreamRefused on non-200."""
    response = await session.post(
        url,
        data=body,
        headers={**JSON_HEADERS, **(headers or {})},
        allow_redirects=False,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
    )
    if response.status != 200:
        text = await response.text()
        response.release()
        raise StreamRefused(response.status, text.strip(), response.headers.get("Location"))
    return OpenStream(response, dict(response.headers))


async def post_call(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """POST one non-streaming call; return (status, body)."""
    async with session.post(
        url,
        data=body,
        headers={"Content-Type": "application/json", **(headers or {})},
        allow_redirects=False,
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as response:
        return response.status, await response.read()


def socket_url(base_url: str, path: str) -> str:
    """`http(s)://host:port` + path as the `ws(s)://` URL of a message socket."""
    scheme, sep, rest = base_url.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}{sep}{rest.rstrip('/')}{path}"


async def open_socket(
    session: aiohttp.ClientSession,
    url: str,
    first: bytes,
    headers: Mapping[str, str] | None = None,
) -> aiohttp.ClientWebSocketResponse:
    """Open a message socket at `url` (ws:// or wss://) and send `first` (the subscribing
    call) on it; StreamRefused when the server refuses the handshake (its status and, as far
    as aiohttp keeps it, why). The session's headers (credentials) and TLS apply."""
    try:
        socket = await session.ws_connect(
            url, headers=headers, autoping=True, heartbeat=None, compress=0,
            max_msg_size=64 * 1024 * 1024, timeout=aiohttp.ClientWSTimeout(ws_close=10.0),
        )
    except aiohttp.WSServerHandshakeError as exc:
        location = exc.headers.get("Location") if exc.headers else None
        raise StreamRefused(exc.status, exc.message, location) from None
    try:
        await socket.send_bytes(first)
    except BaseException:
        await socket.close()
        raise
    return socket
