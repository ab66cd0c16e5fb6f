"""Request checks and responses shared by every v1 endpoint (spec §2.1, §2.3).

`read_call_body` applies the content rules in the order Mesos does and raises `HTTPProblem`,
whose `response()` is the one-line plain-text answer. Handlers then decode the body with
`mezzo.api.codec` and map `DecodeError` to 400.
"""

from __future__ import annotations

from aiohttp import web

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
# Bodies above this are refused with 413 before they are read; the largest legitimate calls
# (ACCEPT with many tasks) are far smaller.
MAX_BODY_BYTES = 16 * 1024 * 1024


class HTTPProblem(Exception):
    """A request that cannot be served: status code plus a one-line message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self) -> web.Response:
        return text_response(self.status, self.message, self.headers)


def text_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain", headers=headers)


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def accepts_json(accept: str | None) -> bool:
    """`Accept` missing means anything; otherwise JSON must be acceptable."""
    if not accept:
        return True
    for part in accept.split(","):
        media = _media_type(part)
        if media in (JSON, "application/*", "*/*"):
            return True
    return False


async def read_call_body(
    request: web.Request, *, check_accept: bool = False, max_bytes: int = MAX_BODY_BYTES
) -> bytes:
    """Validate method and headers of a v1 call and return its body."""
    if request.method != "POST":
        raise HTTPProblem(405, f"Expecting 'POST', received '{request.method}'", {"Allow": "POST"})
    content_type = request.headers.get("Content-Type")
    if not content_type:
        raise HTTPProblem(400, "Expecting 'Content-Type' to be present")
    media = _media_type(content_type)
    if media == PROTOBUF:
        raise HTTPProblem(415, "Content-Type 'application/x-protobuf' is not supported; use 'application/json'")
    if media != JSON:
        raise HTTPProblem(415, f"Expecting 'Content-Type' of {JSON} or {PROTOBUF}")
    if check_accept and not accepts_json(request.headers.get("Accept")):
        raise HTTPProblem(406, f"Expecting 'Accept' to allow {JSON}")
    if request.content_length is not None and request.content_length > max_bytes:
        raise HTTPProblem(413, f"Request body of {request.content_length} bytes exceeds {max_bytes}")
    body = await request.content.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise HTTPProblem(413, f"Request body exceeds {max_bytes} bytes")
    if not body:
        raise HTTPProblem(400, "Request body is empty")
    return body


def json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type=JSON)
