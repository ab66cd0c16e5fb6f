"""The one request-decoding path of every v1 call endpoint.

Every endpoint that takes a JSON call (master: `/api/v1/scheduler`, `/api/v1` operator,
`/api/v1/agent`; agent: `/api/v1` operator, `/api/v1/executor`) reads and decodes its body
here, so that bad input gets the same 4xx with a one-line message everywhere and never reaches
a handler half-decoded. The checks run in the Mesos master's order (src/master/http.cpp; the
Mesos agent looks at `Accept` before the body, issue 9 asks for the master's order there too):

 1. method: POST, else 405 (with `Allow: POST`);
 2. `Content-Type`: missing 400; not JSON 415 (protobuf is refused with 415 too);
 3. `Content-Encoding`: identity, gzip (x-gzip) or deflate, else 415; a body that does not
    inflate 400;
 4. body: a `Content-Length` over the limit 413 before anything is read; a body over the limit
    (after inflating) 413; framing the parser rejects mid-body (bad chunk, body cut short) 400;
    an empty body 400;
 5. JSON: `mezzo.api.codec` refuses bad UTF-8, bad syntax, trailing data, truncation and
    nesting deeper than 100 levels: 400 "Failed to parse body into JSON: ...";
 6. the record: wrong field types (a list as `type`, a string for a number...) and the call's
    own checks (type present, payload present, ids): 400 "Failed to validate <what>: ...". An
    unknown `type` name counts as no type;
 7. `Accept` (406), checked by the endpoint after the call is decoded, so that a malformed call
    is reported as such whatever it accepts: `require_json_accept`. (A SUBSCRIBE over HTTP/1.0,
    which cannot carry its stream, is `mezzo.net.stream.streaming_problem`'s 400.)

What a known call that the endpoint does not serve gets (501) is the endpoint's business.
`read_form` is the same path for the one legacy form endpoint (`POST /master/teardown`).

aiohttp would inflate gzip/deflate bodies itself and reject other encodings with its own 400
before any handler runs; `new_app` turns that off so that encodings are judged here.
"""

from __future__ import annotations

import logging
import urllib.parse
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.client_exceptions import ClientPayloadError
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from mezzo.core.errors import JSONSyntaxError, ValidationError
from mezzo.net.http import JSON, MAX_BODY_BYTES, PROTOBUF, HTTPProblem, accepts_json
from mezzo.net.routing import ignore_trailing_slash

T = TypeVar("T")

__all__ = ["check_json_accept", "decode_body", "media_type", "new_app", "read_body", "read_call", "read_form",
           "require_json_accept"]

# Content codings we inflate; `identity` means none.
_INFLATE_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def new_app(**kwargs: Any) -> web.Application:
    """An aiohttp application whose request bodies reach `read_body` as sent (not inflated
    by aiohttp), so Content-Encoding is checked in one place; framing aiohttp's parser refuses
    (answered 400 by aiohttp) is logged as one line, not as a traceback."""
    _quiet_framing_errors()
    handler_args = {"auto_decompress": False, **kwargs.pop("handler_args", {})}
    # Innermost: a trailing `/` reaches the same endpoint (Mesos's routing).
    kwargs["middlewares"] = [*kwargs.get("middlewares", ()), ignore_trailing_slash]
    return web.Application(handler_args=handler_args, **kwargs)


class _FramingErrorsAsOneLine(logging.Filter):
    """aiohttp logs every request its parser refuses (a bad chunk size, data after
    `Connection: close`...) with a traceback at ERROR. That is the client's fault, answered 400:
    one WARNING line is enough, and keeps tracebacks in the log meaning a bug of ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            reason = _one_line(str(getattr(exc, "message", "") or exc), 200)
            record.msg = "bad HTTP framing from %s: %s"
            record.args = (record.args[0] if isinstance(record.args, tuple) and record.args else "?", reason)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _quiet_framing_errors() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _FramingErrorsAsOneLine) for f in server_log.filters):
        server_log.addFilter(_FramingErrorsAsOneLine())
    _one_line_parser_answers()


def _one_line_parser_answers() -> None:
    """aiohttp answers what its parser refuses itself (400, before any handler), with the
    parser's message as the body: several lines (the offending bytes and a caret under them).
    Bad input gets one line everywhere, so that message is folded onto one line. aiohttp has
    no hook for it: its `RequestHandler.handle_error` is wrapped, once per process."""
    original = RequestHandler.handle_error
    if getattr(original, "_mezzo_one_line", False):
        return

    def handle_error(self: RequestHandler, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None) -> StreamResponse:
        if message and 400 <= status < 500:
            message = _one_line(message)
        return original(self, request, status, exc, message)

    handle_error._mezzo_one_line = True  # type: ignore[attr-defined]
    RequestHandler.handle_error = handle_error  # type: ignore[method-assign]


def media_type(value: str) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return value.split(";", 1)[0].strip().lower()


def _content_codings(request: web.Request) -> list[str]:
    """The codings applied to the body, in the order they were applied (RFC 9110 §8.4)."""
    header = ",".join(request.headers.getall("Content-Encoding", []))
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    for coding in codings:
        if coding not in _INFLATE_WBITS:
            raise HTTPProblem(
                415, f"Unsupported 'Content-Encoding' '{coding}': expecting gzip, deflate or identity"
            )
    return codings


async def read_body(request: web.Request, *, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """Steps 1-4: check method and headers and return the (inflated) body; `HTTPProblem`
    otherwise."""
    if request.method != "POST":
        raise HTTPProblem(405, f"Expecting 'POST', received '{request.method}'", {"Allow": "POST"})
    content_type = request.headers.get("Content-Type")
    if not content_type:
        raise HTTPProblem(400, "Expecting 'Content-Type' to be present")
    media = media_type(content_type)
    if media == PROTOBUF:
        raise HTTPProblem(415, f"Content-Type '{PROTOBUF}' is not supported; use '{JSON}'")
    if media != JSON:
        raise HTTPProblem(415, f"Expecting 'Content-Type' of {JSON} or {PROTOBUF}")
    codings = _content_codings(request)
    if request.content_length is not None and request.content_length > max_bytes:
        raise HTTPProblem(413, f"Request body of {request.content_length} bytes exceeds {max_bytes}")
    body = await _read_all(request, max_bytes)
    for coding in reversed(codings):
        body = _inflate(body, coding, max_bytes)
    if not body:
        raise HTTPProblem(400, "Request body is empty")
    return body


async def _read_all(request: web.Request, max_bytes: int) -> bytes:
    """The whole body as sent, refusing more than `max_bytes` (read in chunks: a body need not
    arrive in one segment)."""
    chunks: list[bytes] = []
    size = 0
    content = request.content
    try:
        if content.is_eof():
            # All of it arrived with the head (a small call, the common case): no need to
            # iterate (and suspend) to collect it.
            body = content.read_nowait()
            if len(body) > max_bytes:
                raise HTTPProblem(413, f"Request body exceeds {max_bytes} bytes")
            return body
        async for chunk in content.iter_any():
            size += len(chunk)
            if size > max_bytes:
                raise HTTPProblem(413, f"Request body exceeds {max_bytes} bytes")
            chunks.append(chunk)
    except (HttpProcessingError, ClientPayloadError, ConnectionError) as exc:
        # Framing the parser could not follow (a bad chunk size, a body cut short by EOF):
        # the client may be gone, but if it is listening it gets a reason.
        reason = getattr(exc, "message", "") or str(exc) or type(exc).__name__
        raise HTTPProblem(400, f"Failed to read request body: {_one_line(str(reason))}") from None
    return b"".join(chunks)


def _inflate(body: bytes, coding: str, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(_INFLATE_WBITS[coding])
    try:
        out = inflater.decompress(body, max_bytes + 1)
        if len(out) > max_bytes:
            raise HTTPProblem(413, f"Request body exceeds {max_bytes} bytes once inflated")
        out += inflater.flush()
    except zlib.error as exc:
        raise HTTPProblem(400, f"Failed to inflate {coding} request body: {exc}") from None
    if not inflater.eof:
        raise HTTPProblem(400, f"Failed to inflate {coding} request body: it is truncated")
    if inflater.unused_data:
        raise HTTPProblem(400, f"Failed to inflate {coding} request body: trailing data")
    if len(out) > max_bytes:
        raise HTTPProblem(413, f"Request body exceeds {max_bytes} bytes once inflated")
    return out


async def read_form(request: web.Request, *, max_bytes: int = MAX_BODY_BYTES) -> dict[str, str]:
    """The body of a legacy form endpoint (`/master/teardown`) as Mesos reads it: a query
    string (`frameworkId=...`) whatever the Content-Type; 400 "Unable to decode query string"
    if it is not one (bad UTF-8, bad percent escapes). The first value of a repeated name
    wins."""
    codings = _content_codings(request)
    if request.content_length is not None and request.content_length > max_bytes:
        raise HTTPProblem(413, f"Request body of {request.content_length} bytes exceeds {max_bytes}")
    body = await _read_all(request, max_bytes)
    for coding in reversed(codings):
        body = _inflate(body, coding, max_bytes)
    try:
        pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPProblem(400, f"Unable to decode query string: {_one_line(str(exc))}") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def decode_body(body: bytes, decode: Callable[[bytes], T], what: str) -> T:
    """Steps 5-6: the body as a checked call (`decode` is e.g. `scheduler.decode_call`);
    `what` names it in messages (`scheduler::Call`)."""
    try:
        return decode(body)
    except JSONSyntaxError as exc:
        detail = str(exc).removeprefix("not JSON: ")
        raise HTTPProblem(400, f"Failed to parse body into JSON: {_one_line(detail)}") from None
    except ValidationError as exc:  # wrong field types (DecodeError) or the call's own checks
        raise HTTPProblem(400, f"Failed to validate {what}: {_one_line(str(exc))}") from None


def require_json_accept(request: web.Request) -> None:
    """Step 7: 406 unless the client accepts a JSON response."""
    check_json_accept(request.headers.get("Accept"))


def check_json_accept(accept: str | None) -> None:
    """Step 7 on the `Accept` header's value."""
    if not accepts_json(accept):
        raise HTTPProblem(406, f"Expecting 'Accept' to allow '{JSON}'")


async def read_call(
    request: web.Request, decode: Callable[[bytes], T], what: str, *, max_bytes: int = MAX_BODY_BYTES
) -> T:
    """Steps 1-6 in one go, for endpoints with nothing to check in between."""
    return decode_body(await read_body(request, max_bytes=max_bytes), decode, what)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
