"""The executor API: `POST /api/v1/executor` (also `/slave(1)/api/v1/executor`), spec §6.

Owns the HTTP side of executor calls: reading and decoding (`mezzo.net.request` with
`mezzo.api.executor`), the status codes of spec §6 (400 malformed call or unknown
framework/executor, 403 call before SUBSCRIBE, 501 type UNKNOWN, 503 while recovering) and the
SUBSCRIBE stream. What a call *does* is the Agent's.

SUBSCRIBE: the stream starts with SUBSCRIBED (executor_info, framework_info with id, agent_info
with id, container_id), then the launches queued for the executor. A second SUBSCRIBE closes
the previous stream; an executor being shut down gets a single SHUTDOWN and the stream closes.
On re-subscription after an agent restart, the agent replays the executor's
`unacknowledged_updates`, and tasks the agent launched but the executor does not list in
`unacknowledged_tasks` while still STAGING are lost (TASK_LOST, REASON_AGENT_RESTARTED).

UPDATE: answered 202 once the update is recorded (checkpointed for checkpointing frameworks);
the ACKNOWLEDGED event echoing the executor's uuid follows on the stream.
"""

from __future__ import annotations

import logging

from aiohttp import web

from mezzo.agent.agent import Agent
from mezzo.agent.state import Executor, ExecutorPhase, Framework
from mezzo.api import executor as exe
from mezzo.api.codec import encode
from mezzo.api.common import ContainerID, Reason, Source, TaskState, TaskStatus
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
        if call.type == exe.CallType.UNKNOWN:
            return text_response(501, "Received 'UNKNOWN' call")
        if call.type == exe.CallType.HEARTBEAT:
            return web.Response(status=202)
        agent = self.agent
        if agent.recovering and (
            agent.flags.recover == "cleanup" or call.type != exe.CallType.SUBSCRIBE
        ):
            return text_response(503, "Agent has not finished recovery")
        fw = agent.frameworks.get(call.framework_id.value)
        if fw is None:
            return text_response(400, "Framework cannot be found")
        ex = fw.executors.get(call.executor_id.value)
        if ex is None:
            return text_response(400, "Executor cannot be found")
        match call.type:
            case exe.CallType.SUBSCRIBE:
                assert call.subscribe is not None
                return await self.subscribe(request, fw, ex, call.subscribe)
            case exe.CallType.UPDATE:
                assert call.update is not None
                if ex.phase == ExecutorPhase.REGISTERING:
                    return text_response(403, "Executor is not subscribed")
                return self.update(fw, ex, call.update.status)
            case exe.CallType.MESSAGE:
                assert call.message is not None
                if ex.phase == ExecutorPhase.REGISTERING:
                    return text_response(403, "Executor is not subscribed")
                agent.message_to_framework(fw, ex, call.message.data)
                return web.Response(status=202)
        return text_response(400, f"Unsupported call {call.type}")

    # --- SUBSCRIBE ------------------------------------------------------------------------

    async def subscribe(
        self, request: web.Request, fw: Framework, ex: Executor, sub: exe.Subscribe
    ) -> web.StreamResponse:
        agent = self.agent
        stream = RecordStream(request)
        await stream.open()
        if fw.terminating or ex.phase in (ExecutorPhase.TERMINATING, ExecutorPhase.TERMINATED):
            stream.send(encode(exe.Event(type=exe.EventType.SHUTDOWN)))
            stream.close("executor is shutting down")
            return await stream.serve()
        previous = ex.stream
        ex.stream = stream
        if previous is not None:
            previous.close("replaced by a new subscription")
        if ex.registration_timer is not None:
            ex.registration_timer.cancel()
            ex.registration_timer = None
        ex.phase = ExecutorPhase.RUNNING
        log.info("executor %s of framework %s subscribed", ex.id, fw.id)
        fw_info = fw.info
        stream.send(
            encode(
                exe.Event(
                    type=exe.EventType.SUBSCRIBED,
                    subscribed=exe.Subscribed(
                        executor_info=ex.info,
                        framework_info=fw_info,
                        agent_info=agent.info,
                        container_id=ContainerID(value=ex.container_id),
                    ),
                )
            )
        )
        if ex.recovered:
            ex.recovered = False
            self._lose_unknown_staging(fw, ex, sub)
        for unacked in sub.unacknowledged_updates:
            self._record(fw, ex, unacked.status)
        agent.deliver_queued(fw, ex)
        stream.closed.add_done_callback(lambda _: self._stream_closed(ex, stream))
        return await stream.serve()

    def _lose_unknown_staging(self, fw: Framework, ex: Executor, sub: exe.Subscribe) -> None:
        known = {t.task_id for t in sub.unacknowledged_tasks}
        known.update(u.status.task_id for u in sub.unacknowledged_updates)
        for task in list(ex.launched.values()):
            if task.state == TaskState.TASK_STAGING and task.task_id not in known:
                status = self.agent.agent_status(
                    task.task_id, TaskState.TASK_LOST, Reason.REASON_AGENT_RESTARTED,
                    "Task launched during agent restart", ex.id,
                )
                self.agent.executor_status(fw, ex, status)

    @staticmethod
    def _stream_closed(ex: Executor, stream: RecordStream) -> None:
        if ex.stream is stream:
            ex.stream = None

    # --- UPDATE ---------------------------------------------------------------------------

    def update(self, fw: Framework, ex: Executor, status: TaskStatus) -> web.Response:
        agent = self.agent
        problem = None
        if status.source is None:
            status.source = Source.SOURCE_EXECUTOR
        if status.source != Source.SOURCE_EXECUTOR:
            problem = f"Received update with source {status.source}, expecting SOURCE_EXECUTOR"
        elif status.state == TaskState.TASK_STAGING:
            problem = "Received TASK_STAGING from executor"
        elif status.executor_id is not None and status.executor_id != ex.id:
            problem = f"ExecutorID in the status ({status.executor_id}) does not match the caller"
        if problem is not None:
            agent.metrics["invalid_status_updates"] += 1
            return text_response(400, problem)
        error = self._record(fw, ex, status)
        if error is not None:
            agent.metrics["invalid_status_updates"] += 1
            return text_response(400, error)
        return web.Response(status=202)

    def _record(self, fw: Framework, ex: Executor, status: TaskStatus) -> str | None:
        """Record, forward, and acknowledge to the executor (also for duplicates)."""
        agent = self.agent
        if status.timestamp is None:
            status.timestamp = agent.clock.now()
        if ex.command and status.state == TaskState.TASK_FAILED:
            # The OOM killer may kill the task before the containerizer notices: the command
            # executor then reports a plain failure; the kernel's record says why.
            limitation = agent.containerizer.limitation(ex.container_id)
            if limitation is not None:
                try:
                    status.reason = Reason(limitation.reason)
                except ValueError:
                    status.reason = Reason.REASON_CONTAINER_LIMITATION
                status.message = f"{limitation.message} ({status.message or 'task failed'})"
        try:
            agent.executor_status(fw, ex, status)
        except ValueError as e:
            return str(e)
        assert status.uuid is not None
        agent.send_to_executor(
            ex,
            exe.Event(
                type=exe.EventType.ACKNOWLEDGED,
                acknowledged=exe.Acknowledged(task_id=status.task_id, uuid=status.uuid),
            ),
        )
        return None
