"""Responses and header rules shared by every v1 endpoint (spec §2.1, §2.3).

`HTTPProblem` is a request that cannot be served; its `response()` is the one-line plain-text
answer. `Reply` is an answer with at most one line of text, as both ways of answering a request
send it: aiohttp's handler chain (`Reply.response()`) and the fast path of `mezzo.net.fastpath`
(which writes the same bytes itself). Reading and decoding a call body is
`mezzo.net.request`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
# Bodies above this are refused with 413 before they are read; the largest legitimate calls
# (ACCEPT with many tasks) are far smaller.
MAX_BODY_BYTES = 16 * 1024 * 1024


# An error message is one line of at most this many characters (`one_line`).
MAX_MESSAGE = 1000


def one_line(message: str) -> str:
    """`message` as one line: line breaks (which may come from the request's own text, quoted
    back) shown escaped, and cut to `MAX_MESSAGE` characters."""
    if "\n" in message or "\r" in message:
        message = message.replace("\r", "\\r").replace("\n", "\\n")
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 1] + "…"
    return message


class HTTPProblem(Exception):
    """A request that cannot be served: status code plus a one-line message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        message = one_line(message)
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self) -> web.Response:
        return text_response(self.status, self.message, self.headers)

    def reply(self) -> Reply:
        return Reply(self.status, self.message, self.headers)


@dataclass(frozen=True, slots=True)
class Reply:
    """A status, with one line of text/plain (`message`) or no body at all (None)."""

    status: int
    message: str | None = None
    headers: Mapping[str, str] | None = None

    def response(self) -> web.Response:
        if self.message is None:
            return web.Response(status=self.status, headers=self.headers)
        return text_response(self.status, self.message, dict(self.headers) if self.headers else None)


def text_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """A text/plain answer; an error's message (4xx, 5xx) is made `one_line`."""
    if status >= 400:
        message = one_line(message)
    return web.Response(status=status, text=message, content_type="text/plain", headers=headers)


def accepts_json(accept: str | None) -> bool:
    """`Accept` missing means anything; otherwise JSON (or a wildcard covering it) must be
    listed without `q=0`."""
    if accept is None or not accept.strip():
        return True
    for part in accept.split(","):
        media, *params = part.split(";")
        if media.strip().lower() not in (JSON, "application/*", "*/*"):
            continue
        if not any(_is_zero_q(param) for param in params):
            return True
    return False


def _is_zero_q(param: str) -> bool:
    name, _, value = param.partition("=")
    if name.strip().lower() != "q":
        return False
    try:
        return float(value.strip()) == 0.0
    except ValueError:
        return False


def json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type=JSON)
