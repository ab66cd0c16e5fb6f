"""The benchmarks' (and the shell probe's) minimal v1 scheduler plumbing: raw aiohttp, no SDK.

The launch benchmarks measure the master (and agent) path, so their scheduler is as thin as a
v1 client can be: one SUBSCRIBE stream read with mezzo's RecordIO decoder, calls POSTed with
the stream id, and every update that carries a uuid acknowledged at once with its own
ACKNOWLEDGE call, as pymesos and the SDK's implicit acknowledgements do. Subclasses handle the
events (`on_event`) and build their launches.

Calls are encoded with msgspec and the session sets no per-request timeout timer: this process
shares the machine's CPUs with the master it measures, and a heavier client would measure the
client. Every benchmark bounds its own waits.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import time
from typing import Any

import aiohttp
import msgspec

from mezzo.api.recordio import RecordIODecoder

JSON_HEADERS = {"Content-Type": "application/json"}


class RawScheduler:
    """Subscribe, read events, POST calls, acknowledge updates (see the module docstring)."""

    def __init__(self, master_url: str, name: str, capabilities: tuple[str, ...] = (),
                 role: str | None = None) -> None:
        self.url = master_url.rstrip("/") + "/api/v1/scheduler"
        self.name = name
        self.capabilities = capabilities
        self.role = role
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64),
                                             timeout=aiohttp.ClientTimeout(total=None))
        self.framework_id: dict[str, Any] | None = None
        self.stream_id = ""
        self._call_headers = JSON_HEADERS
        self._reader: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()

    async def subscribe(self, timeout: float = 15.0) -> None:
        info: dict[str, Any] = {"user": getpass.getuser(), "name": self.name}
        if self.role is not None:
            info["role"] = self.role
        if self.capabilities:
            info["capabilities"] = [{"type": c} for c in self.capabilities]
        body = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        resp = await self.session.post(self.url, data=msgspec.json.encode(body),
                                       headers={**JSON_HEADERS, "Accept": "application/json"})
        if resp.status != 200:
            raise RuntimeError(f"SUBSCRIBE: {resp.status} {await resp.text()}")
        self.stream_id = resp.headers["Mesos-Stream-Id"]
        self._call_headers = {**JSON_HEADERS, "Mesos-Stream-Id": self.stream_id}
        self._reader = asyncio.create_task(self._read(resp))
        deadline = time.monotonic() + timeout
        while self.framework_id is None:
            if time.monotonic() > deadline:
                raise TimeoutError("no SUBSCRIBED from the master")
            await asyncio.sleep(0.01)

    async def call(self, body: dict[str, Any]) -> None:
        body["framework_id"] = self.framework_id
        async with self.session.post(self.url, data=msgspec.json.encode(body),
                                     headers=self._call_headers) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"{body['type']}: {resp.status} {await resp.text()}")

    def call_soon(self, body: dict[str, Any]) -> None:
        """Send a call in the background (kept referenced until done; `close` waits for it)."""
        task = asyncio.get_running_loop().create_task(self.call(body))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def close(self) -> None:
        if self._calls:  # let the last acknowledgements go out
            await asyncio.wait(self._calls, timeout=2.0)
        if self._reader is not None:
            self._reader.cancel()
        await self.session.close()

    async def _read(self, resp: aiohttp.ClientResponse) -> None:
        decoder = RecordIODecoder()
        async for chunk in resp.content.iter_any():
            for record in decoder.feed(chunk):
                event = json.loads(record)
                if event["type"] == "SUBSCRIBED":
                    self.framework_id = event["subscribed"]["framework_id"]
                elif event["type"] == "UPDATE":
                    # Acknowledge first: the agent holds the task's next update until then.
                    status = event["update"]["status"]
                    if "uuid" in status:
                        self.call_soon({"type": "ACKNOWLEDGE", "acknowledge": {
                            "agent_id": status["agent_id"], "task_id": status["task_id"],
                            "uuid": status["uuid"]}})
                self.on_event(event)

    def on_event(self, event: dict[str, Any]) -> None:
        """Every event, after SUBSCRIBED is recorded and updates are acknowledged."""
