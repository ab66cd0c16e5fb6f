"""The one request-decoding path (`mezzo.net.request`): every kind of bad body or header gets
its 4xx and one-line message, over real HTTP on loopback (raw sockets, so framing can be bad)."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from mezzo.api import scheduler
from mezzo.api.codec import encode
from mezzo.net.http import HTTPProblem, text_response
from mezzo.net.request import new_app, read_call, read_form, require_json_accept

LIMIT = 4096
GOOD = b'{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}'


async def handler(request: web.Request) -> web.StreamResponse:
    try:
        call = await read_call(request, scheduler.decode_call, "scheduler::Call", max_bytes=LIMIT)
        require_json_accept(request)
    except HTTPProblem as problem:
        return problem.response()
    return text_response(200, str(call.type))


async def form_handler(request: web.Request) -> web.StreamResponse:
    try:
        form = await read_form(request, max_bytes=LIMIT)
    except HTTPProblem as problem:
        return problem.response()
    return text_response(200, repr(form))


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, int]]:
    app = new_app()
    app.router.add_route("*", "/call", handler)
    app.router.add_post("/form", form_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield "127.0.0.1", port
    await runner.cleanup()


async def raw_request(
    address: tuple[str, int], body: bytes, headers: dict[str, str] | None = None,
    method: str = "POST", path: str = "/call",
) -> tuple[int, bytes]:
    """Send one request as bytes; return (status, body) of the answer (0: connection closed)."""
    fields = {"Host": "x", "Content-Type": "application/json", "Connection": "close"}
    fields.update(headers or {})
    if "Transfer-Encoding" not in fields and "Content-Length" not in fields:
        fields["Content-Length"] = str(len(body))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in fields.items() if v != "<absent>"
    )
    reader, writer = await asyncio.open_connection(*address)
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    if not answer:
        return 0, b""
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1]


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


CASES = [
    # name, body, headers, status, message fragment
    ("good", GOOD, {}, 200, b"SUBSCRIBE"),
    ("gzip", gzip.compress(GOOD), {"Content-Encoding": "gzip"}, 200, b"SUBSCRIBE"),
    ("deflate", zlib.compress(GOOD), {"Content-Encoding": "deflate"}, 200, b"SUBSCRIBE"),
    ("chunked", chunked(GOOD[:10], GOOD[10:]), {"Transfer-Encoding": "chunked"}, 200, b"SUBSCRIBE"),
    ("get", b"", {"Content-Length": "0"}, 405, b"Expecting 'POST'"),
    ("no content type", GOOD, {"Content-Type": "<absent>"}, 400, b"'Content-Type' to be present"),
    ("text content type", GOOD, {"Content-Type": "text/plain"}, 415, b"Expecting 'Content-Type'"),
    ("protobuf", GOOD, {"Content-Type": "application/x-protobuf"}, 415, b"not supported"),
    ("brotli", GOOD, {"Content-Encoding": "br"}, 415, b"Unsupported 'Content-Encoding' 'br'"),
    ("made-up encoding", GOOD, {"Content-Encoding": "foo"}, 415, b"'foo'"),
    ("gzip that is not", GOOD, {"Content-Encoding": "gzip"}, 400, b"Failed to inflate gzip"),
    ("gzip truncated", gzip.compress(GOOD)[:-12], {"Content-Encoding": "gzip"}, 400, b"truncated"),
    ("gzip bomb", gzip.compress(b" " * (LIMIT * 50)), {"Content-Encoding": "gzip"}, 413, b"inflated"),
    ("too long", b" " * (LIMIT + 1), {}, 413, b"exceeds"),
    ("too long chunked", chunked(b" " * LIMIT, b" "), {"Transfer-Encoding": "chunked"}, 413, b"exceeds"),
    ("empty", b"", {}, 400, b"empty"),
    ("deep", b"[" * 5000 + b"]" * 5000, {}, 413, b"exceeds"),
    ("deep but small", b"[" * 101 + b"]" * 101, {}, 400, b"nested deeper than 100"),
    ("deep object", b'{"a":' * 200 + b"1" + b"}" * 200, {}, 400, b"nested deeper than 100"),
    ("trailing garbage", GOOD + b" xx", {}, 400, b"Failed to parse body into JSON: trailing"),
    ("trailing garbage, bad enum", b'{"type":"GET_HEALTH"} xx', {}, 400, b"Failed to parse body"),
    ("truncated", GOOD[:-5], {}, 400, b"Failed to parse body into JSON"),
    ("bad utf-8", b'{"type":"SUBSCRIBE\xff"}', {}, 400, b"UTF-8"),
    ("bad utf-8 in an unknown field's name", GOOD[:-1] + b',"zz\xff":1}', {}, 400, b"invalid UTF-8"),
    ("NaN literal", b'{"type":"SUBSCRIBE","x":NaN}', {}, 400, b"Failed to parse body"),
    ("type is a list", b'{"type":["SUBSCRIBE"]}', {}, 400, b"Failed to validate scheduler::Call: invalid field $.type"),
    ("type is an object", b'{"type":{"a":1}}', {}, 400, b"Failed to validate scheduler::Call: invalid field $.type"),
    ("unknown type", b'{"type":"FROB"}', {}, 400, b"Failed to validate scheduler::Call"),
    ("not an object", b"[1]", {}, 400, b"Failed to validate"),
    ("no payload", b'{"type":"SUBSCRIBE"}', {}, 400, b"Failed to validate scheduler::Call"),
    ("accept html", GOOD, {"Accept": "text/html"}, 406, b"Expecting 'Accept'"),
    ("accept json q=0", GOOD, {"Accept": "application/json;q=0"}, 406, b"Expecting 'Accept'"),
    ("accept wildcard", GOOD, {"Accept": "text/html, */*;q=0.1"}, 200, b"SUBSCRIBE"),
    ("bad call, bad accept", b'{"type":[1]}', {"Accept": "text/html"}, 400, b"Failed to validate"),
]


@pytest.mark.parametrize(("name", "body", "headers", "status", "fragment"), CASES,
                         ids=[c[0] for c in CASES])
async def test_bad_input_gets_its_status_and_a_one_line_message(
    server: tuple[str, int], name: str, body: bytes, headers: dict[str, str], status: int,
    fragment: bytes,
) -> None:
    method = "GET" if name == "get" else "POST"
    got, text = await raw_request(server, body, headers, method)
    assert got == status, text
    assert fragment in text
    assert b"\n" not in text.strip()


async def test_a_body_arriving_in_pieces_is_read_whole(server: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*server)
    writer.write(b"POST /call HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(GOOD))
    for i in range(0, len(GOOD), 7):
        writer.write(GOOD[i : i + 7])
        await writer.drain()
        await asyncio.sleep(0.01)
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer


async def test_a_malformed_chunk_is_refused_without_a_server_error(server: tuple[str, int]) -> None:
    status, body = await raw_request(server, b"zz\r\n{}\r\n0\r\n\r\n", {"Transfer-Encoding": "chunked"})
    # aiohttp's parser answers it; its message (bytes and a caret on three lines) is one line.
    assert status == 400
    assert body.strip() and b"\n" not in body.strip(), body


async def test_a_body_cut_short_by_the_client_is_not_a_server_error(server: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*server)
    writer.write(b"POST /call HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 500\r\n\r\n" + GOOD)
    writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer


def test_encode_round_trip_of_the_good_call() -> None:
    call = scheduler.decode_call(GOOD)
    assert scheduler.decode_call(encode(call)).type == scheduler.CallType.SUBSCRIBE


FORMS = [
    (b"frameworkId=abc&frameworkId=def", 200, b"{'frameworkId': 'abc'}"),
    (b"frameworkId=%C3%A9", 200, b"{'frameworkId': '\xc3\xa9'}"),
    (b"frameworkId=\xff", 400, b"Unable to decode query string"),
    (b"frameworkId=%FF", 400, b"Unable to decode query string"),
    (b"--xx\r\ngarbage", 200, b"{'--xx\\r\\ngarbage': ''}"),  # a multipart body is no form
    (b"x" * (LIMIT + 1), 413, b"exceeds"),
]


@pytest.mark.parametrize(("body", "status", "fragment"), FORMS)
async def test_a_legacy_form_body_is_a_query_string_or_a_400(
    server: tuple[str, int], body: bytes, status: int, fragment: bytes
) -> None:
    got, text = await raw_request(server, body, {"Content-Type": "multipart/form-data; boundary=xx"},
                                  path="/form")
    assert got == status, text
    assert fragment in text
