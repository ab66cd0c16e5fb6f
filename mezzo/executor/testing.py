"""A fake agent that speaks the executor side of the v1 API (spec §6), for executor tests.

`FakeAgent` serves `POST /api/v1/executor` on a real loopback port (aiohttp, port 0) in the
caller's event loop. It validates every call with `mezzo.api.executor.decode_call`, answers
SUBSCRIBE with a RecordIO stream that starts with SUBSCRIBED followed by the queued LAUNCH events,
records every UPDATE (and acknowledges it on the stream unless `auto_ack` is off), and lets the
test push events (LAUNCH, KILL, SHUTDOWN, ...) or drop the stream. Tests then poll the recorded
calls with `wait_for`.

It is deliberately not an agent: no containers, no checkpoints, no master. Executors under
test are started by the test (see `executor_env`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from mezzo.api.codec import to_builtins
from mezzo.api.executor import decode_call
from mezzo.core.errors import DecodeError, ValidationError
from mezzo.net.http import HTTPProblem
from mezzo.net.request import read_body, require_json_accept
from mezzo.net.stream import RecordStream

Json = dict[str, Any]


@dataclass
class RecordedUpdate:
    """One UPDATE call as the agent received it."""

    at: float  # time.monotonic() of arrival
    status: Json  # the TaskStatus as JSON builtins (uuid base64, enums as names)

    @property
    def state(self) -> str:
        return str(self.status["state"])

    @property
    def task_id(self) -> str:
        return str(self.status["task_id"]["value"])


@dataclass
class Subscription:
    at: float
    subscribe: Json  # the SUBSCRIBE payload (unacknowledged tasks and updates)
    stream: RecordStream | None = None


@dataclass
class FakeAgent:
    """See the module docstring. Use `async with FakeAgent(...) as agent:`."""

    framework_id: str = "fw-1"
    executor_id: str = "ex-1"
    agent_id: str = "agent-1"
    capabilities: list[str] = field(default_factory=list)  # framework capabilities
    auto_ack: bool = True
    checkpoint: bool = False
    launch_on_subscribe: list[Json] = field(default_factory=list)  # TaskInfo JSON
    update_status_code: int = 202  # answer to UPDATE calls (503 simulates recovery)

    def __post_init__(self) -> None:
        self.updates: list[RecordedUpdate] = []
        self.subscriptions: list[Subscription] = []
        self.messages: list[bytes] = []
        self.calls: list[Json] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._stream: RecordStream | None = None

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> FakeAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/executor", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close streams and stop listening (an agent crash, from the executor's view)."""
        for sub in self.subscriptions:
            if sub.stream is not None:
                sub.stream.close("agent stopping")
        self._stream = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def executor_env(self, **extra: str) -> dict[str, str]:
        """The MESOS_* variables an agent gives this executor (spec §6.1)."""
        env = {
            "MESOS_AGENT_ENDPOINT": self.endpoint,
            "MESOS_FRAMEWORK_ID": self.framework_id,
            "MESOS_EXECUTOR_ID": self.executor_id,
            "MESOS_CHECKPOINT": "1" if self.checkpoint else "0",
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5secs",
            "MESOS_SLAVE_ID": self.agent_id,
        }
        if self.checkpoint:
            env["MESOS_RECOVERY_TIMEOUT"] = "15mins"
            env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = "200ms"
        env.update(extra)
        return env

    # ---------------------------------------------------------------- test controls

    @property
    def connected(self) -> bool:
        return self._stream is not None and not self._stream.is_closed

    def send(self, event: Json) -> bool:
        """Send one event (JSON builtins) on the current stream."""
        if self._stream is None:
            return False
        return self._stream.send(json.dumps(event).encode())

    def launch(self, task: Json) -> bool:
        return self.send({"type": "LAUNCH", "launch": {"task": task}})

    def kill(self, task_id: str, grace_seconds: float | None = None) -> bool:
        kill: Json = {"task_id": {"value": task_id}}
        if grace_seconds is not None:
            kill["kill_policy"] = {"grace_period": {"nanoseconds": int(grace_seconds * 1e9)}}
        return self.send({"type": "KILL", "kill": kill})

    def shutdown(self) -> bool:
        return self.send({"type": "SHUTDOWN"})

    def acknowledge(self, update: RecordedUpdate) -> bool:
        return self.send(
            {
                "type": "ACKNOWLEDGED",
                "acknowledged": {
                    "task_id": update.status["task_id"],
                    "uuid": update.status["uuid"],
                },
            }
        )

    def drop_stream(self) -> None:
        """End the current stream (the executor sees end-of-stream)."""
        if self._stream is not None:
            self._stream.close("dropped by test")
            self._stream = None

    def states(self, task_id: str | None = None) -> list[str]:
        return [u.state for u in self.updates if task_id is None or u.task_id == task_id]

    async def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition"
    ) -> Any:
        """Poll `predicate` until it is truthy; AssertionError with the recorded states if not."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}; updates: {self.states()}"
                )
            await asyncio.sleep(0.005)

    # ---------------------------------------------------------------- the endpoint

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await read_body(request)
            require_json_accept(request)
            call = decode_call(body)
        except HTTPProblem as problem:
            return problem.response()
        except (DecodeError, ValidationError) as exc:
            return web.Response(status=400, text=str(exc))
        self.calls.append(json.loads(body))
        if call.framework_id.value != self.framework_id:
            return web.Response(status=400, text="Framework cannot be found")
        if call.executor_id.value != self.executor_id:
            return web.Response(status=400, text="Executor cannot be found")
        if call.type == "SUBSCRIBE":
            return await self._subscribe(request, to_builtins(call.subscribe))
        if call.type == "UPDATE":
            if self.update_status_code != 202:
                return web.Response(status=self.update_status_code, text="Agent is recovering")
            assert call.update is not None
            update = RecordedUpdate(time.monotonic(), to_builtins(call.update.status))
            self.updates.append(update)
            if self.auto_ack:
                self.acknowledge(update)
            return web.Response(status=202)
        if call.type == "MESSAGE":
            assert call.message is not None
            self.messages.append(call.message.data)
            return web.Response(status=202)
        return web.Response(status=202)

    async def _subscribe(self, request: web.Request, subscribe: Json) -> web.StreamResponse:
        sub = Subscription(time.monotonic(), subscribe)
        self.subscriptions.append(sub)
        if self._stream is not None:  # a second SUBSCRIBE closes the previous stream
            self._stream.close("re-subscribed")
        stream = RecordStream(request)
        await stream.open()
        sub.stream = stream
        self._stream = stream
        framework_info: Json = {
            "id": {"value": self.framework_id},
            "user": "root",
            "name": "test-framework",
            "checkpoint": self.checkpoint,
            "capabilities": [{"type": c} for c in self.capabilities],
        }
        self.send(
            {
                "type": "SUBSCRIBED",
                "subscribed": {
                    "executor_info": {
                        "executor_id": {"value": self.executor_id},
                        "framework_id": {"value": self.framework_id},
                        "command": {"value": "(fake)", "shell": True},
                    },
                    "framework_info": framework_info,
                    "agent_info": {
                        "id": {"value": self.agent_id},
                        "hostname": "localhost",
                        "port": self.port,
                    },
                    "container_id": {"value": f"container-{len(self.subscriptions)}"},
                },
            }
        )
        for task in self.launch_on_subscribe:
            self.launch(task)
        self.launch_on_subscribe = []
        return await stream.serve()


def status_uuid(update: RecordedUpdate) -> bytes:
    return base64.b64decode(update.status["uuid"])


def command_task(
    task_id: str,
    value: str,
    *,
    shell: bool = True,
    arguments: list[str] | None = None,
    env: dict[str, str] | None = None,
    grace_seconds: float | None = None,
    max_completion_seconds: float | None = None,
) -> Json:
    """A TaskInfo (JSON builtins) for a command task."""
    command: Json = {"value": value, "shell": shell}
    if arguments is not None:
        command["arguments"] = arguments
    if env:
        command["environment"] = {
            "variables": [{"name": k, "value": v, "type": "VALUE"} for k, v in env.items()]
        }
    task: Json = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": "agent-1"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
        "command": command,
    }
    if grace_seconds is not None:
        task["kill_policy"] = {"grace_period": {"nanoseconds": int(grace_seconds * 1e9)}}
    if max_completion_seconds is not None:
        task["max_completion_time"] = {"nanoseconds": int(max_completion_seconds * 1e9)}
    return task
