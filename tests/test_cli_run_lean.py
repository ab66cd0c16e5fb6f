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
