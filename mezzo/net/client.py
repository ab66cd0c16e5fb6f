"""Client side of the v1 streaming APIs: open a SUBSCRIBE stream and iterate its records.

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
