"""The executor API: `POST /api/v1/executor` (also `/slave(1)/api/v1/executor`), spec §6.

Owns the HTTP side of executor calls: reading and decoding (`mezzo.net.request` with
`mezzo.api.executor`), the status codes of spec §6 (400 malformed call or unknown
framework/executor, 403 call before SUBSCRIBE, 501 type UNKNOWN, 503 while recovering) and the
SUBSCRIBE stream.

SUBSCRIBE answers a RecordIO stream; UPDATE and MESSAGE answer 202. What a call *does*
(and which calls are refused with 400 / 403 / 503) is the core's: this module decodes, builds
the typed event (`mezzo.agent.events`), hands it to the agent (`Agent.handle`) and encodes the
answer; a `CallRefused` becomes its status and one-line message.
"""

from __future__ import annotations

import logging

from aiohttp import web

from mezzo.agent.agent import Agent
from mezzo.agent.containerizer import Limitation
from mezzo.agent.core import CallRefused
from mezzo.agent.events import (
    ExecutorDisconnected,
    ExecutorMessage,
    ExecutorSubscribed,
    ExecutorUpdate,
)
from mezzo.api import executor as exe
from mezzo.api.common import TaskState
from mezzo.net.http import HTTPProblem, text_response
from mezzo.net.request import read_call, require_json_accept
from mezzo.net.stream import RecordStream, streaming_problem

log = logging.getLogger(__name__)

EXECUTOR_API_PATHS = ("/api/v1/executor", "/slave(1)/api/v1/executor")


class ExecutorAPI:
    """aiohttp handler for the executor endpoint of one agent."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def add_routes(self, app: web.Application) -> None:
        for path in EXECUTOR_API_PATHS:
            app.router.add_route("*", path, self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            call = await read_call(request, exe.decode_call, "executor::Call")
            if call.type == exe.CallType.SUBSCRIBE:
                require_json_accept(request)  # only SUBSCRIBE is answered with a body
        except HTTPProblem as problem:
            return problem.response()
        if call.type == exe.CallType.SUBSCRIBE:
            # Before the executor's stream is replaced: HTTP/1.0 cannot carry the new one.
            problem_response = streaming_problem(request)
            if problem_response is not None:
                return problem_response
        agent = self.agent
        refusal = self._claims_refusal(request, call)
        if refusal is not None:
            return text_response(403, refusal)
        try:
            match call.type:
                case exe.CallType.UNKNOWN:
                    return text_response(501, "Received 'UNKNOWN' call")
                case exe.CallType.HEARTBEAT:
                    return web.Response(status=202)
                case exe.CallType.SUBSCRIBE:
                    assert call.subscribe is not None
                    if agent.recovering and agent.flags.recover == "cleanup":
                        return text_response(503, "Agent has not finished recovery")
                    return await self.subscribe(request, call, call.subscribe)
                case exe.CallType.UPDATE:
                    assert call.update is not None
                    status = call.update.status
                    agent.handle(
                        ExecutorUpdate(
                            call.framework_id, call.executor_id, status,
                            self._limitation(call, status.state),
                        )
                    )
                    return web.Response(status=202)
                case exe.CallType.MESSAGE:
                    assert call.message is not None
                    agent.handle(
                        ExecutorMessage(call.framework_id, call.executor_id, call.message.data)
                    )
                    return web.Response(status=202)
        except CallRefused as refused:
            return text_response(refused.status, refused.message)
        return text_response(400, f"Unsupported call {call.type}")

    def _claims_refusal(self, request: web.Request, call: exe.Call) -> str | None:
        """An authenticated executor may speak only for its own framework, executor and
        container (Mesos's verifyExecutorClaims); unknown ones are left to the core (400).
        HEARTBEAT carries no meaningful ids and is answered before, as in Mesos."""
        if call.type in (exe.CallType.HEARTBEAT, exe.CallType.UNKNOWN):
            return None
        ex = self.agent.core.executor(call.framework_id, call.executor_id)
        if ex is None:
            return None
        return self.agent.security.executor_call_refusal(
            request, call.framework_id.value, call.executor_id.value, ex.container_id)

    async def subscribe(
        self, request: web.Request, call: exe.Call, sub: exe.Subscribe
    ) -> web.StreamResponse:
        stream = RecordStream(request)
        # Refused (CallRefused) before the stream opens: the caller answers the status.
        self.agent.handle(ExecutorSubscribed(call.framework_id, call.executor_id, sub, stream))
        stream.closed.add_done_callback(
            lambda _: self.agent.handle(
                ExecutorDisconnected(call.framework_id, call.executor_id, stream)
            )
        )
        await stream.open()
        return await stream.serve()

    def _limitation(self, call: exe.Call, state: TaskState) -> Limitation | None:
        """A limit breach the kernel already recorded for a command executor's container
        (the OOM killer may end the task before the containerizer notices), for a failure."""
        if state != TaskState.TASK_FAILED:
            return None
        ex = self.agent.core.executor(call.framework_id, call.executor_id)
        if ex is None or not ex.command:
            return None
        return self.agent.containerizer.limitation(ex.container_id)
