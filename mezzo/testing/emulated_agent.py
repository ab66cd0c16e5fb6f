"""An emulated agent: speaks the real master <-> agent protocol over HTTP, runs nothing.

It registers (`POST /api/v1/agent` SUBSCRIBE), answers pings, and for each RUN_TASK /
RUN_TASK_GROUP immediately reports TASK_RUNNING (and, with `finish=True`, TASK_FINISHED after
it) with fresh uuids, one update in flight per task, resending the head update every
`retry_seconds` until the master relays the scheduler's acknowledgement — the reliability
contract of a real agent, without executors. KILL_TASK answers TASK_KILLED. When its stream
breaks it re-registers with its id and the tasks it "runs". Used by tests, `bench/launch.py`
and the failover benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import aiohttp

from mezzo.api.codec import decode, encode
from mezzo.api.common import (
    AgentID,
    AgentInfo,
    FrameworkID,
    FrameworkInfo,
    Source,
    TaskInfo,
    TaskState,
    TaskStatus,
    is_terminal,
)
from mezzo.api.internal import (
    AGENT_API_PATH,
    AgentCall,
    AgentCallType,
    AgentEvent,
    AgentEventType,
    AgentPong,
    AgentStatusUpdate,
    AgentSubscribe,
    AgentTask,
    merge_status_updates,
)
from mezzo.net.client import StreamRefused, open_stream, post_call
from mezzo.resources import Resources

log = logging.getLogger("mezzo.testing.emulated_agent")


@dataclass(eq=False)
class _Task:
    info: TaskInfo
    framework_id: str
    state: TaskState = TaskState.TASK_STAGING
    # Updates not yet acknowledged, oldest first; only the head is in flight.
    pending: deque[TaskStatus] = field(default_factory=deque)
    sent_at: float = 0.0


class EmulatedAgent:
    def __init__(
        self,
        master_url: str,
        *,
        hostname: str = "emulated",
        resources: str = "cpus:8;mem:16384;disk:100000;ports:[31000-32000]",
        finish: bool = False,
        retry_seconds: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.master_url = master_url.rstrip("/")
        self.info = AgentInfo(hostname=hostname, port=5051, resources=Resources.parse(resources).to_wire())
        self.finish = finish
        self.retry_seconds = retry_seconds
        self.agent_id: str | None = None
        self.frameworks: dict[str, FrameworkInfo] = {}
        self.tasks: dict[tuple[str, str], _Task] = {}
        self.subscribed = asyncio.Event()
        self._session = session
        self._own_session = session is None
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        self.events: list[AgentEvent] = []
        self._outgoing: list[AgentCall] = []
        self._posting: set[asyncio.Task[None]] = set()
        self._uuid = (uuid.UUID(int=(i << 64) | id(self) & 0xFFFF).bytes for i in itertools.count(1))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=8, force_close=False)
            )
        self._runner = asyncio.create_task(self._run())
        await self.subscribed.wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._own_session and self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        retry = asyncio.create_task(self._retry_loop())
        try:
            while not self._stopping:
                try:
                    await self._subscribe_and_listen()
                except (aiohttp.ClientError, StreamRefused, OSError) as exc:
                    log.info("agent %s: stream ended (%s)", self.agent_id, exc)
                self.subscribed.clear()
                await asyncio.sleep(0.2)
        finally:
            retry.cancel()

    async def _subscribe_and_listen(self) -> None:
        assert self._session is not None
        sub = AgentSubscribe(agent_info=self.info)
        if self.agent_id is not None:
            self.info.id = AgentID(value=self.agent_id)
            sub.frameworks = list(self.frameworks.values())
            sub.tasks = [
                AgentTask(
                    task_id=t.info.task_id, framework_id=FrameworkID(value=t.framework_id),
                    name=t.info.name, state=t.state, resources=t.info.resources,
                )
                for t in self.tasks.values()
            ]
        body = encode(AgentCall(type=AgentCallType.SUBSCRIBE, subscribe=sub))
        stream = await open_stream(self._session, self.master_url + AGENT_API_PATH, body)
        try:
            async for record in stream.records():
                self._on_event(decode(record, AgentEvent))
        finally:
            stream.close()

    # ------------------------------------------------------------------ events

    def _on_event(self, event: AgentEvent) -> None:
        match event.type:
            case AgentEventType.SUBSCRIBED:
                assert event.subscribed is not None
                self.agent_id = event.subscribed.agent_id.value
                self.subscribed.set()
                # Re-send what was in flight (the new master has not seen it).
                for task in self.tasks.values():
                    if task.pending:
                        self._send_head(task)
            case AgentEventType.PING:
                self._post(AgentCall(type=AgentCallType.PONG, pong=AgentPong(
                    ping_id=event.ping.ping_id if event.ping else 0)))
            case AgentEventType.RUN_TASK:
                assert event.run_task is not None
                run = event.run_task
                self._launch(run.framework_info, run.task)
            case AgentEventType.RUN_TASK_GROUP:
                assert event.run_task_group is not None
                group = event.run_task_group
                for task in group.task_group.tasks:
                    self._launch(group.framework_info, task)
            case AgentEventType.KILL_TASK:
                assert event.kill_task is not None
                key = (event.kill_task.framework_id.value, event.kill_task.task_id.value)
                task = self.tasks.get(key)
                if task is not None and not is_terminal(task.state):
                    self._update(task, TaskState.TASK_KILLED)
            case AgentEventType.ACKNOWLEDGE:
                assert event.acknowledge is not None
                ack = event.acknowledge
                task = self.tasks.get((ack.framework_id.value, ack.task_id.value))
                if task is not None and task.pending and task.pending[0].uuid == ack.uuid:
                    task.pending.popleft()
                    if task.pending:
                        self._send_head(task)
                    elif is_terminal(task.state):
                        del self.tasks[(task.framework_id, task.info.task_id.value)]
            case AgentEventType.SHUTDOWN_FRAMEWORK:
                assert event.shutdown_framework is not None
                fid = event.shutdown_framework.framework_id.value
                for key in [k for k in self.tasks if k[0] == fid]:
                    del self.tasks[key]
                self.frameworks.pop(fid, None)
            case AgentEventType.SHUTDOWN:
                self._stopping = True
            case _:
                self.events.append(event)

    def _launch(self, framework_info: FrameworkInfo, info: TaskInfo) -> None:
        assert framework_info.id is not None
        fid = framework_info.id.value
        self.frameworks[fid] = framework_info
        task = _Task(info=info, framework_id=fid)
        self.tasks[(fid, info.task_id.value)] = task
        self._update(task, TaskState.TASK_RUNNING)
        if self.finish:
            self._update(task, TaskState.TASK_FINISHED)

    def _update(self, task: _Task, state: TaskState) -> None:
        task.state = state
        status = TaskStatus(
            task_id=task.info.task_id, state=state, source=Source.SOURCE_EXECUTOR,
            agent_id=AgentID(value=self.agent_id or ""), timestamp=time.time(), uuid=next(self._uuid),
        )
        task.pending.append(status)
        if len(task.pending) == 1:
            self._send_head(task)

    def _send_head(self, task: _Task) -> None:
        task.sent_at = time.monotonic()
        self._post(AgentCall(
            type=AgentCallType.STATUS_UPDATE,
            status_update=AgentStatusUpdate(
                framework_id=FrameworkID(value=task.framework_id), status=task.pending[0],
                latest_state=task.state,
            ),
        ))

    def _post(self, call: AgentCall) -> None:
        # Calls made in one loop iteration go out together, status updates merged into one
        # STATUS_UPDATE call, as a real agent's sender does.
        call.agent_id = AgentID(value=self.agent_id or "")
        self._outgoing.append(call)
        if len(self._outgoing) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        calls, self._outgoing = self._outgoing, []
        loop = asyncio.get_running_loop()
        for call in merge_status_updates(calls):
            task = loop.create_task(self._post_now(encode(call)))
            self._posting.add(task)
            task.add_done_callback(self._posting.discard)

    async def _post_now(self, body: bytes) -> None:
        assert self._session is not None
        with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
            await post_call(self._session, self.master_url + AGENT_API_PATH, body)

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(min(self.retry_seconds, 1.0))
            if not self.subscribed.is_set():
                continue
            now = time.monotonic()
            for task in list(self.tasks.values()):
                if task.pending and now - task.sent_at >= self.retry_seconds:
                    self._send_head(task)
