"""The pieces of `mezzo run`'s standard-library path, checked against the SDK they stand in for:

- `mezzo.cli.offer_fit`: the plain-scalar fast path takes exactly what the SDK's `take` takes
  (property test over random offers), and other texts go through the SDK;
- `mezzo.cli.http1`: framing (Content-Length, chunked, streamed), keep-alive with a re-open after
  the server closed an idle connection, redirects followed by `mezzo.cli.common.get`, against
  a real aiohttp server on loopback.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from mezzo.api.codec import convert, to_builtins
from mezzo.api.common import Offer
from mezzo.cli import common
from mezzo.cli.common import CliError
from mezzo.cli.http1 import Connection
from mezzo.cli.offer_fit import plain_scalars, take_from_offer, take_scalars
from mezzo.scheduler.offers import take

# ---------------------------------------------------------------------------- offer_fit

NAMES = ("cpus", "mem", "disk")


def _scalar(name: str, value: float, role: str | None, revocable: bool) -> dict[str, Any]:
    resource: dict[str, Any] = {"name": name, "type": "SCALAR", "scalar": {"value": value}}
    if role is not None:
        resource["role"] = role
    if revocable:
        resource["revocable"] = {}
    return resource


resources = st.lists(
    st.builds(
        _scalar,
        st.sampled_from(NAMES),
        st.integers(0, 20_000).map(lambda v: v / 1000),
        st.sampled_from([None, "*", "eng"]),
        st.booleans(),
    ),
    max_size=6,
).map(lambda rs: list({(r["name"], r.get("role"), "revocable" in r): r for r in rs}.values()))

wanted_texts = st.dictionaries(
    st.sampled_from(NAMES), st.integers(0, 12_000).map(lambda v: v / 1000), min_size=1
).map(lambda d: ";".join(f"{k}:{v:g}" for k, v in d.items()))


def offer_of(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": {"value": "o1"},
        "framework_id": {"value": "f1"},
        "agent_id": {"value": "a1"},
        "hostname": "h",
        "resources": items,
    }


def canonical(items: list[dict[str, Any]] | None) -> list[str] | None:
    """Merge per identity and sort, so that only what was taken is compared."""
    if items is None:
        return None
    totals: dict[str, float] = {}
    for item in items:
        fields = {"role": "*", **{k: v for k, v in item.items() if k != "scalar"}}  # no role: *
        identity = json.dumps(fields, sort_keys=True)
        totals[identity] = round(totals.get(identity, 0.0) + item["scalar"]["value"], 3)
    return sorted(f"{k}={v:g}" for k, v in totals.items() if v)


@settings(max_examples=300, deadline=None)
@given(resources, wanted_texts)
def test_fast_path_takes_what_the_sdk_takes(items: list[dict[str, Any]], wanted: str) -> None:
    offer = offer_of(items)
    scalars = plain_scalars(wanted)
    assert scalars is not None
    ours = take_scalars(items, scalars)
    sdk = take(convert(offer, Offer), wanted)
    theirs = None if sdk is None else to_builtins(sdk.to_wire(refinement=False, with_allocation=True))
    assert canonical(ours) == canonical(theirs)


def test_plain_scalars() -> None:
    assert plain_scalars("cpus:0.1;mem:32") == {"cpus": 100, "mem": 32000}
    assert plain_scalars(" cpus : 1 ; cpus:0.5 ;") == {"cpus": 1500}
    for other in ("cpus(eng):1", "ports:[1-2]", "s:{a}", '[{"name":"cpus"}]', "gpus:1", "", "cpus:-1"):
        assert plain_scalars(other) is None, other


def test_other_texts_go_through_the_sdk() -> None:
    offer = offer_of(
        [
            _scalar("cpus", 2.0, "*", False),
            {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31010}]},
             "role": "*"},
        ]
    )
    taken = take_from_offer(offer, "cpus:1;ports:[31005-31006]")
    assert taken is not None
    assert {r["name"] for r in taken} == {"cpus", "ports"}
    assert take_from_offer(offer, "ports:[40000-40001]") is None


# ---------------------------------------------------------------------------- http1


class Server:
    """A real aiohttp server on a loopback port, in its own thread."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        self.port = 0
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        assert ready.wait(10)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def server() -> Iterator[Server]:
    async def length(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query.get("n", "10")))

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"2\nab", b"3\ncd", b"e"):
            await response.write(part)
        await response.write_eof()
        return response

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"body": (await request.read()).decode(), "peer": request.transport.get_extra_info("peername")[1]})  # type: ignore[union-attr]

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": f"//{request.host}/length?n=3"})

    async def failing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="No such thing\nmore")

    app = web.Application()
    app.router.add_get("/length", length)
    app.router.add_get("/chunked", chunked)
    app.router.add_post("/echo", echo)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/failing", failing)
    s = Server(app)
    yield s
    s.close()


def test_content_length_and_keep_alive(server: Server) -> None:
    conn = Connection(server.base)
    try:
        first = conn.request("POST", "/echo", b"hello")
        second = conn.request("POST", "/echo", b"again")
        assert first.status == second.status == 200
        assert json.loads(first.body)["body"] == "hello"
        # The same kept-alive connection (same client port) served both.
        assert json.loads(first.body)["peer"] == json.loads(second.body)["peer"]
        assert conn.request("GET", "/length?n=100000").body == b"x" * 100000
    finally:
        conn.close()


def test_reopens_a_connection_the_server_closed(server: Server) -> None:
    conn = Connection(server.base)
    try:
        assert conn.request("GET", "/length?n=1").body == b"x"
        assert conn.sock is not None
        conn.sock.shutdown(2)  # as if the server had closed the idle connection
        assert conn.request("GET", "/length?n=2").body == b"xx"
    finally:
        conn.close()


def test_streamed_chunks(server: Server) -> None:
    conn = Connection(server.base)
    try:
        response = conn.open_stream("GET", "/chunked")
        assert response.status == 200 and response.chunked
        assert b"".join(response.chunks()) == b"2\nab3\ncde"
    finally:
        conn.close()


def test_get_follows_redirects_and_reports_errors(server: Server) -> None:
    assert common.get(server.base + "/redirect", "test server") == b"xxx"
    with pytest.raises(CliError, match=r"^test server answered HTTP 404: No such thing$"):
        common.get(server.base + "/failing", "test server")


def test_get_unreachable() -> None:
    with pytest.raises(CliError, match="cannot reach nobody: connection refused"):
        common.get("http://127.0.0.1:1/x", "nobody")


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "::1", "localhost", "agent-3.example.com", "EXAMPLE.org", "a" * 63]
)
def test_resolvable_host_is_what_idna_gives(host: str) -> None:
    from mezzo.cli.http1 import _resolvable

    assert _resolvable(host) == host.encode("idna")


@pytest.mark.parametrize("host", ["bücher.example", "", "a..b", "trailing.", "a" * 64])
def test_other_hosts_stay_text(host: str) -> None:
    from mezzo.cli.http1 import _resolvable

    assert _resolvable(host) == host


# ---------------------------------------------------------------------------- session


def _record(event: dict[str, Any]) -> bytes:
    body = json.dumps(event).encode()
    return str(len(body)).encode() + b"\n" + body


class ScriptedStream:
    """A scheduler endpoint whose SUBSCRIBE answer is a chunked RecordIO stream the test
    feeds piece by piece (`send`), or ends (`end`)."""

    def __init__(self) -> None:
        self.pieces: asyncio.Queue[bytes | None] | None = None
        self.refuse: tuple[int, str] | None = None
        self.server: Server | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.refuse is not None:
            return web.Response(status=self.refuse[0], text=self.refuse[1])
        self.pieces = asyncio.Queue()
        response = web.StreamResponse(headers={"Mesos-Stream-Id": "s-1"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        while (piece := await self.pieces.get()) is not None:
            await response.write(piece)
        await response.write_eof()
        return response

    def send(self, piece: bytes | None) -> None:
        assert self.server is not None
        loop = self.server.loop

        def put() -> None:
            assert self.pieces is not None
            self.pieces.put_nowait(piece)

        loop.call_soon_threadsafe(put)


@pytest.fixture
def scripted() -> Iterator[ScriptedStream]:
    stream = ScriptedStream()
    app = web.Application()
    app.router.add_post("/api/v1/scheduler", stream.handle)
    stream.server = Server(app)
    yield stream
    if stream.pieces is not None:
        stream.send(None)  # the last stream's handler ends, so that the server can stop
    stream.server.close()


def _subscribe_in_thread(session: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(session.subscribe())
        except Exception as exc:  # handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_session_reads_events_in_its_own_thread_with_timeouts(scripted: ScriptedStream) -> None:
    """No reader thread: `next_event` reads the stream itself; records split anywhere across
    chunks come out whole; a time-out raises NoEvent and the next call goes on; silence for
    HEARTBEAT_MISSES heartbeat intervals ends the stream (None, with the reason)."""
    from mezzo.cli.session import HEARTBEAT_MISSES, NoEvent, SchedulerSession

    assert scripted.server is not None
    session = SchedulerSession(scripted.server.base, {"user": "u", "name": "n"}, 10.0)
    thread, out = _subscribe_in_thread(session)
    subscribed = _record({"type": "SUBSCRIBED", "subscribed": {
        "framework_id": {"value": "fw-1"}, "heartbeat_interval_seconds": 0.1}})
    for _ in range(100):  # the stream is open once the handler made its queue
        if scripted.pieces is not None:
            break
        threading.Event().wait(0.05)
    scripted.send(subscribed[:3])
    scripted.send(subscribed[3:])
    thread.join(10)
    assert out and out[0]["type"] == "SUBSCRIBED", out
    assert session.framework_id == {"value": "fw-1"} and session.stream_id == "s-1"
    with pytest.raises(NoEvent):
        session.next_event(0.01)
    update = _record({"type": "UPDATE", "update": {"status": {"state": "TASK_RUNNING"}}})
    heartbeat = _record({"type": "HEARTBEAT"})
    scripted.send(update[:1])
    scripted.send(update[1:7])
    scripted.send(update[7:] + heartbeat)
    assert session.next_event(10)["type"] == "UPDATE"  # type: ignore[index]
    assert session.next_event(10) == {"type": "HEARTBEAT"}
    # Nothing more: after HEARTBEAT_MISSES intervals of 0.1 s the stream is taken as dead.
    assert session.next_event(None) is None
    assert session.stream_error == f"no event for {HEARTBEAT_MISSES * 0.1:g} s"
    assert session.next_event(0.01) is None  # and stays ended
    session.close()


def test_session_sees_the_end_of_the_stream_and_refusals(scripted: ScriptedStream) -> None:
    from mezzo.cli.session import SchedulerSession, SubscribeRefused

    assert scripted.server is not None
    session = SchedulerSession(scripted.server.base, {"user": "u", "name": "n"}, 10.0)
    thread, out = _subscribe_in_thread(session)
    for _ in range(100):
        if scripted.pieces is not None:
            break
        threading.Event().wait(0.05)
    scripted.send(_record({"type": "SUBSCRIBED", "subscribed": {"framework_id": {"value": "f"}}}))
    thread.join(10)
    assert out and out[0]["type"] == "SUBSCRIBED", out
    scripted.send(None)  # the master ends the stream
    assert session.next_event(10) is None and session.stream_error is None
    session.close()

    scripted.refuse = (400, "Framework is not authorized\nmore")
    refused = SchedulerSession(scripted.server.base, {"user": "u", "name": "n"}, 10.0)
    with pytest.raises(SubscribeRefused, match=r"HTTP 400: Framework is not authorized$"):
        refused.subscribe()
    refused.close()


# ---------------------------------------------------------------------------- URLs without urllib

_URL_PARTS = st.sampled_from([
    "http://", "https://", "HTTP://", "ftp://", "//", "", "127.0.0.1", "localhost", "Agent-3.Example.COM",
    "[::1]", "[fe80::1%eth0]", "[::1", "::1", "user@host", "h_o.st", "host", ":", ":5050", ":0", ":65535",
    ":65536", ":99999", ":x", ":５０", "/", "/files/read", "?path=/a b&x=1", "#frag", "/p?q", " ", "\t", "é",
])


@settings(max_examples=2000, deadline=None)
@given(st.lists(_URL_PARTS, min_size=1, max_size=6))
def test_split_url_reads_what_urlsplit_reads(parts: list[str]) -> None:
    from urllib.parse import urlsplit

    from mezzo.net.address import split_url

    url = "".join(parts)
    try:
        expected = urlsplit(url)
        want: Any = (expected.scheme, expected.hostname or "", expected.port,
                     expected.path + ("?" + expected.query if expected.query else ""))
    except ValueError:
        want = ValueError
    try:
        got: Any = split_url(url)
    except ValueError:
        got = ValueError
    assert got == want, url


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.one_of(st.text(), st.integers()), max_size=4))
def test_encode_query_is_urlencode(params: dict[str, Any]) -> None:
    from urllib.parse import urlencode

    try:
        want = urlencode(params)
    except UnicodeEncodeError:  # a lone surrogate: neither can encode it
        with pytest.raises(UnicodeEncodeError):
            common.encode_query(params)
        return
    assert common.encode_query(params) == want


def test_run_path_imports_no_threading_queue_or_urllib() -> None:
    import subprocess
    import sys

    code = ("import sys, mezzo.cli.one_task, mezzo.cli.fast_args; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('threading', 'queue', 'urllib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
