"""The master's web UI, HTTP side: the static page and a read-only proxy to the agents.

- `GET /` serves `mezzo/webui/index.html`; `/static/...` the other assets of that directory
  (shipped as package data: no CDN, works offline). The page is live from the operator event
  stream (`POST /api/v1 SUBSCRIBE`); see docs/operator.md.
- `GET /agent/{agent_id}/state`, `.../files/browse`, `.../files/read`, `.../files/download`:
  the master forwards the request (query included) to that agent and answers what it answered.
  Mesos's UI reads agents directly from the browser (JSONP); a proxy instead keeps the page on
  one origin, so it works where only the master's port is reachable (a tunnel, a load balancer)
  and needs no CORS. The agent is reached at the address of its pid (`slave(1)@IP:PORT`).
  Unknown agents are 404; an agent that does not answer is 502, each with a one-line message.

Like every other path, these are answered by the leading master only: a standby answers 307 to
the leader (`mezzo.master.http`), which is how the UI "follows the leader".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from mezzo.net.http import text_response
from mezzo.security.tls import TlsConfig, client_ssl

ASSETS = Path(__file__).resolve().parent.parent / "webui"
PROXIED = ("state", "files/browse", "files/read", "files/download")
PROXY_TIMEOUT = 10.0
# Response headers passed back from the agent (hop-by-hop ones are aiohttp's business).
_PASSED_HEADERS = ("Content-Type", "Content-Disposition", "WWW-Authenticate")


class WebUi:
    def __init__(self, master: Any, tls: TlsConfig | None = None) -> None:
        self.master = master
        # With TLS the agents are reached over HTTPS, checked against the master's CA.
        self.tls = tls or TlsConfig()
        self._session: aiohttp.ClientSession | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.index)
        app.router.add_static("/static", ASSETS, show_index=False)
        for path in PROXIED:
            app.router.add_get("/agent/{agent_id}/" + path, self.proxy)
        app.on_cleanup.append(self._close)

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(ASSETS / "index.html", headers={"Cache-Control": "no-cache"})

    def agent_address(self, agent_id: str) -> str | None:
        agent = self.master.agents.get(agent_id)
        if agent is None:
            return None
        pid = agent.pid or ""
        if "@" in pid:
            return pid.split("@", 1)[1]
        return f"{agent.info.hostname}:{agent.info.port or 5051}"

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        agent_id = request.match_info["agent_id"]
        address = self.agent_address(agent_id)
        if address is None:
            return text_response(404, f"Agent '{agent_id}' is not registered with this master")
        tail = request.path.split(f"/agent/{agent_id}/", 1)[1]
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=PROXY_TIMEOUT), auto_decompress=False,
                connector=aiohttp.TCPConnector(ssl=client_ssl(self.tls) or True))
        url = f"{self.tls.scheme}://{address}/{tail}"
        # The viewer's credentials go along: a secured agent decides what it may read.
        forwarded = {k: request.headers[k] for k in ("Authorization",) if k in request.headers}
        try:
            async with self._session.get(url, params=request.query, headers=forwarded) as answer:
                body = await answer.read()
                headers = {k: answer.headers[k] for k in _PASSED_HEADERS if k in answer.headers}
                return web.Response(status=answer.status, body=body, headers=headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return text_response(502, f"Agent '{agent_id}' at {address} did not answer: "
                                      f"{type(exc).__name__}")

    async def _close(self, _: web.Application) -> None:
        if self._session is not None:
            await self._session.close()
