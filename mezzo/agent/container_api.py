"""The agent operator API's container calls: the asyncio shell around `mezzo.agent.nested`.

Serves, on the agent's `POST /api/v1` (Mesos's `src/slave/http.cpp`):

| call | answer |
|---|---|
| LAUNCH_CONTAINER, LAUNCH_NESTED_CONTAINER | 200 once started; 202 if the id is in use; 400 if the launch fails |
| LAUNCH_NESTED_CONTAINER_SESSION | a stream of `ProcessIO` records (RecordIO) while the container runs; the container is destroyed when the connection or its output ends |
| ATTACH_CONTAINER_OUTPUT | the same stream, for a container with a TTY or a session |
| ATTACH_CONTAINER_INPUT | a streaming *request* (`Content-Type: application/recordio`, `Message-Content-Type: application/json`): the CONTAINER_ID record, then PROCESS_IO records (stdin DATA, TTY_INFO window size, HEARTBEAT); 200 at the end of the request or of the container's output |
| WAIT_CONTAINER, WAIT_NESTED_CONTAINER | `{"type": "WAIT_CONTAINER", "wait_container": {"exit_status": <wait(2) status>}}` once it ended |
| KILL_CONTAINER, KILL_NESTED_CONTAINER | the signal (default SIGKILL) to the container's root process; 404 if not running |
| REMOVE_CONTAINER, REMOVE_NESTED_CONTAINER | deletes an ended container's sandbox and record |

Decisions (validity, sandboxes, who dies with whom) are `ContainerTree`'s; this module starts
processes through the containerizer, carries I/O through the `Switchboard`, and streams. The
agent core is only read (`roots`: the executors' containers). A nested container watches its
parent and is destroyed when the parent ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from mezzo.agent.agent import Agent
from mezzo.agent.containerizer import ContainerConfig, LaunchError, Termination
from mezzo.agent.containerizer.io_switchboard import STDOUT, Output, Switchboard
from mezzo.agent.nested import (
    NO_SWITCHBOARD,
    ContainerClass,
    ContainerTree,
    LaunchPlan,
    Phase,
    Root,
    WaitResult,
    container_name,
)
from mezzo.api import operator as op
from mezzo.api.codec import encode
from mezzo.api.common import ContainerID
from mezzo.api.recordio import RecordIODecoder, encode_record
from mezzo.core.errors import CallRefused, DecodeError, NotFoundError, ValidationError
from mezzo.net.http import JSON, HTTPProblem, json_response, text_response
from mezzo.net.stream import streaming_problem

log = logging.getLogger(__name__)

RECORDIO = "application/recordio"
PROTOBUF = "application/x-protobuf"
_T = op.CallType
# Input records are small (a chunk of a terminal's input); a bigger one is refused.
MAX_INPUT_RECORD = 16 * 1024 * 1024
# After the container's output ended, an input connection is answered this much later (Mesos's
# switchboard waits 1 s so that the client's last records are read, not cut off).
INPUT_GRACE_SECONDS = 1.0
# How often an idle output stream checks that its client is still connected.
CLIENT_CHECK_SECONDS = 1.0


class ContainerAPI:
    SERVED = frozenset({
        _T.LAUNCH_CONTAINER, _T.LAUNCH_NESTED_CONTAINER, _T.LAUNCH_NESTED_CONTAINER_SESSION,
        _T.WAIT_CONTAINER, _T.WAIT_NESTED_CONTAINER, _T.KILL_CONTAINER, _T.KILL_NESTED_CONTAINER,
        _T.REMOVE_CONTAINER, _T.REMOVE_NESTED_CONTAINER, _T.ATTACH_CONTAINER_OUTPUT,
        _T.ATTACH_CONTAINER_INPUT,
    })

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.tree = ContainerTree(agent.flags.work_dir)
        # Shared with the agent shell, which registers the executors' TTYs there.
        self._switchboards: dict[str, Switchboard] = agent.switchboards
        self._ended: dict[str, asyncio.Future[WaitResult]] = {}

    # ------------------------------------------------------------------ lookups

    def roots(self, name: str) -> Root | None:
        """The container called `name` that the agent core knows, if it is live: an
        executor's (`<container id>`), or the container of a live task of the default
        executor (`<executor's container>.<task's container>`, as its status updates name it;
        the executor runs those tasks itself, in `<executor sandbox>/tasks/<task_id>`)."""
        live = self.agent.core.live_container(name)
        return Root(name, live[0], live[1]) if live is not None else None

    def _anchor(self, name: str | None) -> str | None:
        """The nearest of `name` and its ancestors that the containerizer runs (a task of the
        default executor is not a container of its own: its executor's is): what a nested
        container shares isolation with and dies with."""
        while name:
            if name in self._running():
                return name
            name = name.rpartition(".")[0] or None
        return None

    def _running(self) -> set[str]:
        return set(self.agent.containerizer.containers())

    # ------------------------------------------------------------------ authorization

    def _authorize(self, request: web.Request, call: op.Call) -> None:
        """The call's ACL (`mezzo.agent.auth.AgentSecurity.require_container`): CallRefused
        403 when the caller may not touch that container."""
        payload = getattr(call, str(call.type).lower(), None)
        container_id = getattr(payload, "container_id", None)
        if container_id is None:
            return  # malformed: the handlers answer 400
        self._require(request, str(call.type), container_id, getattr(payload, "command", None))

    def _require(self, request: web.Request, call_type: str, container_id: ContainerID,
                 command: Any = None) -> None:
        a = self.agent
        try:
            a.security.require_container(request, call_type, container_id,
                                         [*a.frameworks.values()], command)
        except HTTPProblem as problem:
            raise CallRefused(problem.status, problem.message) from None

    # ------------------------------------------------------------------ dispatch

    async def call(self, request: web.Request, call: op.Call) -> web.StreamResponse:
        """A call whose body was a JSON document (every container call but ATTACH input)."""
        if call.type == _T.ATTACH_CONTAINER_INPUT:
            return text_response(415, f"Expecting 'Content-Type' to be {RECORDIO} for "
                                      f"ATTACH_CONTAINER_INPUT call")
        streaming = call.type in (_T.LAUNCH_NESTED_CONTAINER_SESSION, _T.ATTACH_CONTAINER_OUTPUT)
        try:
            self._authorize(request, call)
            accept = _accept(request, streaming)
            problem = streaming_problem(request) if streaming else None
            if problem is not None:
                return problem  # before anything is launched: the answer could not be a stream
            match call.type:
                case _T.LAUNCH_CONTAINER | _T.LAUNCH_NESTED_CONTAINER:
                    launch = call.launch_container or call.launch_nested_container
                    assert launch is not None
                    field_name = f"{str(call.type).lower()}.container_id"
                    if call.type == _T.LAUNCH_NESTED_CONTAINER and launch.container_id.parent is None:
                        raise CallRefused(400, f"Failed to validate agent::Call: Expecting "
                                               f"'{field_name}.parent' to be present")
                    return await self._launch(launch, ContainerClass.DEFAULT, field_name)
                case _T.LAUNCH_NESTED_CONTAINER_SESSION:
                    launch = call.launch_nested_container_session
                    assert launch is not None
                    return await self._session(request, launch, accept)
                case _T.ATTACH_CONTAINER_OUTPUT:
                    assert call.attach_container_output is not None
                    return await self._attach_output(
                        request, call.attach_container_output.container_id, accept)
                case _T.WAIT_CONTAINER | _T.WAIT_NESTED_CONTAINER:
                    ref = call.wait_container or call.wait_nested_container
                    assert ref is not None
                    return await self._wait(ref.container_id, call.type)
                case _T.KILL_CONTAINER | _T.KILL_NESTED_CONTAINER:
                    kill = call.kill_container or call.kill_nested_container
                    assert kill is not None
                    return self._kill(kill, f"{str(call.type).lower()}.container_id")
                case _T.REMOVE_CONTAINER | _T.REMOVE_NESTED_CONTAINER:
                    ref = call.remove_container or call.remove_nested_container
                    assert ref is not None
                    return await self._remove(ref.container_id, f"{str(call.type).lower()}.container_id")
                case _:
                    return text_response(501, f"Call {call.type} is not implemented by this agent")
        except CallRefused as refused:
            return text_response(refused.status, refused.message)
        except HTTPProblem as problem:
            return problem.response()

    # ------------------------------------------------------------------ launch

    async def _launch(self, launch: op.LaunchContainer, cls: ContainerClass,
                      field_name: str) -> web.Response:
        plan = self.tree.plan_launch(
            launch.container_id, launch.command, launch.container, container_class=cls,
            roots=self.roots, resources=launch.resources, field_name=field_name,
        )
        if plan is None:
            return web.Response(status=202)
        await self.start(launch.container_id, plan)
        return web.Response(status=200)

    async def start(self, container_id: ContainerID, plan: LaunchPlan) -> None:
        """Carry out a planned launch; CallRefused(400) with the reason if it fails."""
        self.tree.launching(container_id, plan)
        board: Switchboard | None = None
        try:
            if plan.switchboard:
                board = Switchboard(Path(plan.sandbox), tty=plan.tty, window=plan.window,
                                    wait_for_connection=plan.container_class == ContainerClass.DEBUG)
            else:
                Path(plan.sandbox).mkdir(parents=True, exist_ok=True)
            config = self._config(plan, board)
            pid = await self.agent.containerizer.launch(plan.name, config)
        except (LaunchError, OSError) as e:
            self.tree.launch_failed(plan.name)
            if board is not None:
                board.close()
            raise CallRefused(400, f"Failed to launch container {plan.name}: {e}") from None
        except BaseException:
            # A failure not foreseen (or a cancelled request) leaves no LAUNCHING entry behind.
            self.tree.launch_failed(plan.name)
            if board is not None:
                board.close()
            raise
        if board is not None:
            board.started()
            self._switchboards[plan.name] = board
        # A runtime pid file, as for executors: a restarted agent kills what it finds there
        # (nested and standalone containers are not recovered).
        with contextlib.suppress(OSError):
            self.agent.checkpointer.container_pid(plan.name, pid)
        self.tree.launched(plan.name, pid)
        self._ended[plan.name] = asyncio.get_running_loop().create_future()
        self.agent.spawn(self._supervise(plan))

    def _config(self, plan: LaunchPlan, board: Switchboard | None) -> ContainerConfig:
        flags = self.agent.flags
        root = self.roots(plan.name.split(".", 1)[0])
        env = dict(os.environ if flags.executor_environment_variables is None
                   else flags.executor_environment_variables)
        if plan.container_class == ContainerClass.DEBUG and root is not None and root.pid:
            env = _process_environment(root.pid) or env  # a session inherits its parent's
        env["MESOS_SANDBOX"] = plan.mesos_sandbox
        if plan.tty:
            env.setdefault("TERM", os.environ.get("TERM", "xterm"))
        env.update(plan.environment)
        user = plan.user if flags.switch_user and plan.user else None
        if user is None and root is not None and root.pid:
            user = _process_user(root.pid)  # Mesos: a nested container inherits its parent's
        return ContainerConfig(
            sandbox=Path(plan.workdir), argv=plan.argv, shell=plan.shell, env=env, user=user,
            cpus=plan.cpus, mem_mb=plan.mem_mb, parent=self._anchor(plan.parent),
            stdio=board.stdio if board is not None else None,
        )

    async def _supervise(self, plan: LaunchPlan) -> None:
        """Wait for the container (or its parent: it dies with it), then record its end."""
        containerizer = self.agent.containerizer
        own = asyncio.ensure_future(containerizer.wait(plan.name))
        watched: set[asyncio.Future[Any]] = {own}
        anchor = self._anchor(plan.parent)
        if anchor is not None:
            watched.add(asyncio.ensure_future(self._parent_ended(anchor)))
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if not own.done():
            log.info("destroying container %s: its parent %s ended", plan.name, plan.parent)
            with contextlib.suppress(Exception):
                await containerizer.destroy(plan.name)
        for f in watched:
            if f is not own:
                f.cancel()
        try:
            termination: Termination = await own
        except Exception as e:  # the containerizer lost it: report an unknown status
            termination = Termination(None, None, f"Container supervision failed: {e}")
        board = self._switchboards.pop(plan.name, None)
        if board is not None:
            await board.drain_and_close()
        limitation = termination.limitation
        result = WaitResult(
            exit_status=termination.status, message=termination.message,
            reason=limitation.reason if limitation is not None else None,
        )
        self.agent.checkpointer.remove_container(plan.name)
        self.tree.terminated(plan.name, result)
        ended = self._ended.pop(plan.name, None)
        if ended is not None and not ended.done():
            ended.set_result(result)

    async def _parent_ended(self, parent: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self.agent.containerizer.wait(parent)

    # ------------------------------------------------------------------ sessions and output

    async def _session(self, request: web.Request, launch: op.LaunchContainer,
                       accept: str) -> web.StreamResponse:
        field_name = "launch_nested_container_session.container_id"
        if launch.container_id.parent is None:
            raise CallRefused(400, f"Failed to validate agent::Call: Expecting "
                                   f"'{field_name}.parent' to be present")
        plan = self.tree.plan_launch(
            launch.container_id, launch.command, launch.container,
            container_class=ContainerClass.DEBUG, roots=self.roots, field_name=field_name,
        )
        if plan is None:
            return web.Response(status=202)
        await self.start(launch.container_id, plan)
        board = self._switchboards.get(plan.name)
        if board is None:  # it ended already; nothing was read (sessions wait for us)
            return web.Response(status=200, content_type=accept)
        try:
            return await self._stream_output(request, board, accept)
        finally:
            # The session is over (its output ended, or the client went away): destroy it.
            with contextlib.suppress(Exception):
                await self.agent.containerizer.destroy(plan.name)

    async def _attach_output(self, request: web.Request, container_id: ContainerID,
                             accept: str) -> web.StreamResponse:
        board = self._attachable(container_id, "attach_container_output.container_id")
        return await self._stream_output(request, board, accept)

    def _attachable(self, container_id: ContainerID, field_name: str) -> Switchboard:
        """The switchboard of the container an ATTACH call names. As Mesos: 404 when its root
        (the executor's or a standalone container) is unknown; 500 when the container is
        unknown, ended, or has no switchboard (the Mesos CLI relies on that status and its
        message: "Unable to attach to a task launched without a TTY")."""
        name = container_name(container_id)
        root = name.split(".", 1)[0]
        if self.roots(root) is None and root not in self.tree.containers:
            raise CallRefused(404, f"Container {name} cannot be found")
        if self.roots(name) is None:
            self.tree.attach_target(container_id, field_name, self.roots)
        board = self._switchboards.get(name)
        if board is None:
            raise CallRefused(500, NO_SWITCHBOARD)
        return board

    async def _stream_output(self, request: web.Request, board: Switchboard,
                             accept: str) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={
            "Content-Type": accept, "Message-Content-Type": JSON})
        response.enable_chunked_encoding()
        queue = board.attach_output()
        interval = self.agent.flags.http_heartbeat_interval
        heartbeat = encode_record(_heartbeat(interval))
        loop = asyncio.get_running_loop()
        try:
            await response.prepare(request)
            next_heartbeat = loop.time() + interval
            while True:
                # Wake up at least every second to notice a client that went away (a session
                # is destroyed then, as Mesos does when the connection closes).
                timeout = max(0.0, min(next_heartbeat - loop.time(), CLIENT_CHECK_SECONDS))
                try:
                    item: Output = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break
                    if loop.time() >= next_heartbeat:
                        await response.write(heartbeat)
                        next_heartbeat = loop.time() + interval
                    continue
                if item is None:
                    await response.write_eof()
                    break
                stream, data = item
                await response.write(encode_record(_data_record(stream, data)))
        except ConnectionError:
            pass  # the client went away
        finally:
            board.detach_output(queue)
        return response

    # ------------------------------------------------------------------ input

    async def attach_input(self, request: web.Request) -> web.StreamResponse:
        """ATTACH_CONTAINER_INPUT: a RecordIO request body of `agent::Call`s."""
        try:
            return await self._attach_input(request)
        except CallRefused as refused:
            return text_response(refused.status, refused.message)
        except HTTPProblem as problem:
            return problem.response()

    async def _attach_input(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            raise HTTPProblem(405, f"Expecting 'POST', received '{request.method}'",
                              {"Allow": "POST"})
        message_type = request.headers.get("Message-Content-Type")
        if not message_type:
            raise HTTPProblem(400, "Expecting 'Message-Content-Type' to be set for streaming "
                                   "requests")
        if _media(message_type) != JSON:
            raise HTTPProblem(415, f"Expecting 'Message-Content-Type' of {JSON}"
                                   + (" (protobuf is not supported)" if _media(message_type) == PROTOBUF else ""))
        if not _accepts(request.headers.get("Accept"), JSON):
            raise HTTPProblem(406, f"Expecting 'Accept' to allow {JSON}")
        records = _RecordReader(request)
        first = await records.next()
        if first is None:
            raise CallRefused(400, "Received EOF while reading request body")
        if first.type != _T.ATTACH_CONTAINER_INPUT:
            raise CallRefused(415, f"Streaming 'Content-Type' {RECORDIO} is not supported for "
                                   f"{first.type} call")
        attach = first.attach_container_input
        if attach is None or attach.type != "CONTAINER_ID" or attach.container_id is None:
            raise CallRefused(400, "Expecting 'attach_container_input.type' to be CONTAINER_ID")
        self._require(request, "ATTACH_CONTAINER_INPUT", attach.container_id)
        board = self._attachable(attach.container_id, "attach_container_input.container_id")
        if not board.claim_input():
            raise CallRefused(409, "Multiple input connections are not allowed")
        try:
            return await self._pump_input(records, board)
        finally:
            board.release_input()

    async def _pump_input(self, records: _RecordReader, board: Switchboard) -> web.Response:
        output_done = asyncio.ensure_future(asyncio.shield(board.output_done))
        try:
            while True:
                reading = asyncio.ensure_future(records.next())
                pending: set[asyncio.Future[Any]] = {reading, output_done}
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if not reading.done():
                    # The container's output ended: give the client's last records a moment.
                    done, _ = await asyncio.wait({reading}, timeout=INPUT_GRACE_SECONDS)
                    if not done:
                        reading.cancel()
                        return web.Response(status=200)
                record = reading.result()
                if record is None:
                    return web.Response(status=200)
                problem = _input_problem(record)
                if problem is not None:
                    return text_response(400, problem)
                io = record.attach_container_input.process_io  # type: ignore[union-attr]
                assert io is not None
                if io.type == "CONTROL":
                    assert io.control is not None
                    if io.control.type == "TTY_INFO":
                        rows, columns = _window_size(io.control.tty_info)
                        try:
                            board.resize(rows, columns)
                        except OSError as e:
                            return text_response(400, f"Unable to set the window size: {e.strerror or e}")
                    continue  # HEARTBEAT: nothing to do
                assert io.data is not None
                data = io.data.data or b""
                if not data and not board.tty:
                    board.close_stdin()
                    continue
                try:
                    await board.write(data)
                except OSError as e:
                    # Mesos answers 500 here; the container is gone, which is not bad input.
                    return text_response(500, f"Failed writing to stdin: {e.strerror or e}")
        finally:
            output_done.cancel()

    # ------------------------------------------------------------------ wait, kill, remove

    async def _wait(self, container_id: ContainerID, type_: op.CallType) -> web.Response:
        field_name = f"{str(type_).lower()}.container_id"
        name = container_name(container_id)
        if container_id.parent is None and self.roots(name) is not None:
            termination = await self.agent.containerizer.wait(name)
            result = WaitResult(termination.status, termination.message,
                                termination.limitation.reason if termination.limitation else None)
        else:
            entry = self.tree.wait_target(container_id, field_name)
            if entry.result is not None:
                result = entry.result
            else:
                ended = self._ended.get(entry.name)
                if ended is None:
                    raise CallRefused(404, f"Container {name} cannot be found")
                result = await asyncio.shield(ended)
        payload: dict[str, Any] = {}
        if result.exit_status is not None:
            payload["exit_status"] = result.exit_status
        if result.reason is not None:
            payload["state"] = "TASK_FAILED"
            payload["reason"] = result.reason
        if result.message:
            payload["message"] = result.message
        key = "wait_nested_container" if type_ == _T.WAIT_NESTED_CONTAINER else "wait_container"
        return json_response(encode({"type": key.upper(), key: payload}))

    def _kill(self, kill: op.KillContainer, field_name: str) -> web.Response:
        sig = signal.SIGKILL if kill.signal is None else kill.signal
        if not 0 < sig < signal.NSIG:
            raise CallRefused(400, f"Failed to validate agent::Call: invalid signal {sig}")
        name = container_name(kill.container_id)
        if kill.container_id.parent is not None or self.roots(name) is None:
            self.tree.kill_target(kill.container_id, field_name)
        try:
            self.agent.containerizer.kill(name, sig)
        except NotFoundError:
            raise CallRefused(404, f"Container '{name}' cannot be found (or is already killed)") from None
        return web.Response(status=200)

    async def _remove(self, container_id: ContainerID, field_name: str) -> web.Response:
        sandbox = self.tree.remove(container_id, field_name, self.roots)
        if sandbox is not None:
            await asyncio.to_thread(shutil.rmtree, sandbox, True)
        return web.Response(status=200)

    # ------------------------------------------------------------------ views

    def entries(self, show_nested: bool, show_standalone: bool) -> list[dict[str, Any]]:
        """Running nested containers (with their root executor's ids) and standalone ones,
        for GET_CONTAINERS' `show_nested` / `show_standalone`."""
        executors = {
            ex.container_id: (fw.id.value, ex.id.value, ex.info.name or "")
            for fw in self.agent.frameworks.values() for ex in fw.executors.values()
        }
        out = []
        for c in self.tree.containers.values():
            if c.phase != Phase.RUNNING:
                continue
            nested = c.container_id.parent is not None
            if not (show_nested if nested else show_standalone):
                continue
            entry: dict[str, Any] = {"container_id": _cid_json(c.container_id)}
            owner = executors.get(c.root)
            if owner is not None:
                entry.update({"framework_id": {"value": owner[0]},
                              "executor_id": {"value": owner[1]}, "executor_name": owner[2]})
            entry["container_status"] = {"executor_pid": c.pid} if c.pid else {}
            out.append(entry)
        return out


# ---------------------------------------------------------------------- helpers


class _RecordReader:
    """`agent::Call`s from a RecordIO request body, one at a time (None at the end)."""

    def __init__(self, request: web.Request) -> None:
        self._content = request.content
        self._decoder = RecordIODecoder(MAX_INPUT_RECORD)
        self._ready: list[bytes] = []

    async def next(self) -> op.Call | None:
        while not self._ready:
            try:
                chunk = await self._content.readany()
            except ConnectionError:
                return None  # the client went away: the end of its input
            if not chunk:
                if self._decoder.mid_record:
                    raise CallRefused(400, "Received a truncated record")
                return None
            try:
                self._ready.extend(self._decoder.feed(chunk))
            except DecodeError as e:
                raise CallRefused(400, f"Failed to decode the RecordIO stream: {e}") from None
        raw = self._ready.pop(0)
        try:
            call = op.decode_agent_call(raw)
        except (DecodeError, ValidationError) as e:
            raise CallRefused(400, f"Failed to validate agent::Call: {e}") from None
        return call


def _input_problem(call: op.Call) -> str | None:
    """Mesos's switchboard `validate()` of one input record (the first one excepted)."""
    if call.type != _T.ATTACH_CONTAINER_INPUT or call.attach_container_input is None:
        return "Expecting 'type' to be ATTACH_CONTAINER_INPUT"
    attach = call.attach_container_input
    if attach.type != "PROCESS_IO":
        return (f"Expecting 'attach_container_input.type' to be 'PROCESS_IO' instead of: "
                f"'{attach.type or 'UNKNOWN'}'")
    io = attach.process_io
    if io is None:
        return "Expecting 'attach_container_input.process_io' to be present"
    if io.type is None:
        return "Expecting 'process_io.type' to be present"
    if io.type == "CONTROL":
        if io.control is None:
            return "Expecting 'process_io.control' to be present"
        if io.control.type is None:
            return "Expecting 'process_io.control.type' to be present"
        if io.control.type == "TTY_INFO":
            if io.control.tty_info is None:
                return "Expecting 'process_io.control.tty_info' to be present"
            if not isinstance(io.control.tty_info.get("window_size"), dict):
                return "Expecting 'tty_info.window_size' to be present"
            try:
                _window_size(io.control.tty_info)
            except ValueError as e:
                return str(e)
            return None
        if io.control.type == "HEARTBEAT":
            return None if io.control.heartbeat is not None else (
                "Expecting 'process_io.control.heartbeat' to be present")
        return "'process_io.control.type' is unknown"
    if io.type == "DATA":
        if io.data is None:
            return "Expecting 'process_io.data' to be present"
        if io.data.type is None:
            return "Expecting 'process_io.data.type' to be present"
        if io.data.type != "STDIN":
            return "Expecting 'process_io.data.type' to be 'STDIN'"
        if io.data.data is None:
            return "Expecting 'process_io.data.data' to be present"
        return None
    return "'process_io.type' is unknown"


def _window_size(tty_info: dict[str, Any] | None) -> tuple[int, int]:
    size = (tty_info or {}).get("window_size") or {}
    rows, columns = size.get("rows"), size.get("columns")
    if not isinstance(rows, int) or not isinstance(columns, int) or not (
            0 <= rows < 65536 and 0 <= columns < 65536):
        raise ValueError("Expecting 'tty_info.window_size' to have 'rows' and 'columns' "
                         "between 0 and 65535")
    return rows, columns


def _data_record(stream: str, data: bytes) -> bytes:
    return encode(op.ProcessIO(type="DATA", data=op.ProcessIOData(type=stream or STDOUT, data=data)))


def _heartbeat(interval: float) -> bytes:
    return encode(op.ProcessIO(type="CONTROL", control=op.ProcessIOControl(
        type="HEARTBEAT", heartbeat={"interval": {"nanoseconds": int(interval * 1e9)}})))


def _media(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _accepts(header: str | None, media: str) -> bool:
    """Whether `Accept` allows `media` (missing means anything; q=0 refuses)."""
    if header is None or not header.strip():
        return True
    major = media.split("/", 1)[0]
    for part in header.split(","):
        kind, *params = part.split(";")
        kind = kind.strip().lower()
        if kind not in (media, f"{major}/*", "*/*"):
            continue
        if not any(p.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000")
                   for p in params):
            return True
    return False


def _accept(request: web.Request, streaming: bool) -> str:
    """The response's media type, in Mesos's order (JSON first, then RecordIO); 406 otherwise.
    A streaming response's records are JSON: `Message-Accept` must allow it."""
    header = request.headers.get("Accept")
    if _accepts(header, JSON):
        chosen = JSON
    elif streaming and _accepts(header, RECORDIO):
        chosen = RECORDIO
    else:
        allowed = f"{JSON} or {RECORDIO}" if streaming else JSON
        raise HTTPProblem(406, f"Expecting 'Accept' to allow {allowed}")
    if streaming and not _accepts(request.headers.get("Message-Accept"), JSON):
        raise HTTPProblem(406, f"Expecting 'Message-Accept' to allow {JSON}")
    return chosen


def _cid_json(cid: ContainerID) -> dict[str, Any]:
    out: dict[str, Any] = {"value": cid.value}
    if cid.parent is not None:
        out["parent"] = _cid_json(cid.parent)
    return out


def _process_environment(pid: int) -> dict[str, str] | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    env = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep:
            env[name.decode(errors="surrogateescape")] = value.decode(errors="surrogateescape")
    return env


def _process_user(pid: int) -> str | None:
    """The user a process runs as, when the agent could switch to it (root), else None."""
    if os.geteuid() != 0:
        return None
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
        return pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        return None

