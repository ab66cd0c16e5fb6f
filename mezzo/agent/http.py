"""The agent's read endpoints: `/state`, `/metrics/snapshot`, `/version`, `/health`, `/flags`,
`/files/browse`, `/files/read`, and the operator API `POST /api/v1` (minimal set, spec §7.2).

Owns the JSON shapes of spec §8.3 (agent state) and the `slave/*` metrics keys of §8.2, and
the file access rules: `/files/*` take Mesos's `path` (absolute, as shown in `/state`
`directory`), `offset` and `length` query parameters; a path is served only if, with symlinks
resolved, it lies inside a sandbox under `<work_dir>/slaves` — anything else is 403, a missing
file 404; a path with a NUL byte, longer than PATH_MAX or with a name longer than NAME_MAX, and
an offset or length that is not an integer from -1 up to 2^63-1, are 400. One virtual path is
served besides: `/slave/log`, the agent's own log (`<log_dir>/mezzo-agent.INFO`) when it was
started with `--log_dir` (404 without), as Mesos's agent attaches it; it is authorized by
`access_mesos_logs` where sandboxes are by `access_sandboxes`. And each executor's sandbox is
also served at Mesos's virtual path `/frameworks/<framework>/executors/<executor>/runs/latest`
(its latest run, live or completed, for as long as the agent keeps it; nothing outside that
sandbox through it), authorized as the sandbox itself.
"""

from __future__ import annotations

import json
import mimetypes
import os
import pwd
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from mezzo.agent.agent import VERSION, Agent
from mezzo.agent.container_api import RECORDIO, ContainerAPI
from mezzo.agent.core import CAPABILITIES as AGENT_CAPABILITIES
from mezzo.agent.flags import attributes_to_json
from mezzo.agent.operator_extras import AgentOperatorExtras
from mezzo.agent.state import Executor, ExecutorPhase, Framework
from mezzo.api import operator as op
from mezzo.api.codec import to_builtins
from mezzo.api.common import ExecutorType, Task
from mezzo.core.metrics import DaemonMetrics, prometheus_text, system_metrics
from mezzo.net.files import attachment, check_path
from mezzo.net.http import HTTPProblem, text_response
from mezzo.net.logging_level import LoggingLevel
from mezzo.net.request import read_call, require_json_accept
from mezzo.resources import Resources

BUILD_TIME = time.time()
MAX_READ_LENGTH = 16 * 1024 * 1024
_OFF_T_MAX = 2**63 - 1
# The agent's own log with --log_dir (`mezzo.core.daemon_logging`), and the virtual path the
# files endpoints, LIST_FILES and READ_FILE serve it at (Mesos's).
AGENT_LOG_FILE = "mezzo-agent.INFO"
LOG_PATH = "/slave/log"


def _json(body: Any, request: web.Request, status: int = 200) -> web.Response:
    text = json.dumps(body, separators=(",", ":"))
    jsonp = request.query.get("jsonp")
    if jsonp:
        return web.Response(status=status, text=f"{jsonp}({text});", content_type="text/javascript")
    return web.Response(status=status, text=text, content_type="application/json")


def _by_role(reserved: Resources) -> dict[str, Resources]:
    """Reserved resources grouped by the role they are reserved to (the top of the stack)."""
    out: dict[str, Resources] = {}
    for item in reserved:
        out[item.role] = out.get(item.role, Resources()) + Resources([item])
    return out


def resources_json(resources: Resources) -> dict[str, Any]:
    """Mesos's `{"cpus":..,"mem":..,"disk":..,"gpus":..,"ports":"[31000-32000]"}` form."""
    out: dict[str, Any] = {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0}
    for name, amount in resources.quantities().items():
        ranges = resources.ranges(name)
        if ranges:
            out[name] = "[" + ", ".join(f"{b}-{e}" for b, e in ranges) + "]"
        else:
            out[name] = amount
    return out


# May the requester view it? (ACL action, the object's user) -> bool; see mezzo.agent.auth.
Viewer = Callable[[str, "str | None"], bool]


def _everything(action: str, user: str | None) -> bool:
    return True


class ReadEndpoints:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        # HTTP request latencies (the app's middleware records them) for `/metrics`.
        self.http_metrics = DaemonMetrics(http=True)
        self.logging = LoggingLevel()
        self.extras = AgentOperatorExtras(
            self.resolve_path, self.logging,
            self.agent.core.pending_operations, shown=self.shown_paths)
        log_dir = agent.flags.log_dir
        self.log_file = Path(log_dir) / AGENT_LOG_FILE if log_dir else None
        self.containers = ContainerAPI(agent)

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        for prefix in ("", "/slave(1)"):
            r.add_get(prefix + "/state", self.state)
            r.add_get(prefix + "/state.json", self.state)
            r.add_get(prefix + "/health", self.health)
            r.add_get(prefix + "/flags", self.flags)
            r.add_route("*", prefix + "/api/v1", self.operator)
            r.add_route("*", prefix + "/api/v1/{tail:(?!executor$).*}", self.operator)
        r.add_get("/metrics/snapshot", self.metrics)
        r.add_get("/metrics", self.prometheus)
        self.logging.add_routes(app)
        r.add_get("/version", self.version)
        r.add_get("/files/browse", self.browse)
        r.add_get("/files/browse.json", self.browse)
        r.add_get("/files/read", self.read)
        r.add_get("/files/read.json", self.read)
        r.add_get("/files/download", self.download)
        r.add_get("/files/download.json", self.download)
        r.add_get("/files/debug", self.debug)
        r.add_get("/files/debug.json", self.debug)

    # --- simple ones --------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    def version_json(self) -> dict[str, Any]:
        return {
            "version": VERSION, "build_date": time.strftime("%Y-%m-%d %H:%M:%S",
                                                            time.gmtime(BUILD_TIME)),
            "build_time": BUILD_TIME, "build_user": "mezzo",
        }

    async def version(self, request: web.Request) -> web.Response:
        return _json(self.version_json(), request)

    async def flags(self, request: web.Request) -> web.Response:
        return _json({"flags": self.agent.flags.to_wire()}, request)

    # --- state --------------------------------------------------------------------------

    def state_json(self, can: Viewer = _everything) -> dict[str, Any]:
        """`/state`; frameworks, executors and tasks filtered by `can` (view_frameworks,
        view_executors, view_tasks of the request's principal, `AgentSecurity.viewer`)."""
        a = self.agent
        used = a.used_resources()
        return {
            **self.version_json(),
            "start_time": a.start_time,
            "id": a.info.id.value if a.info.id else "",
            "pid": a.pid,
            "hostname": a.info.hostname,
            "capabilities": [*AGENT_CAPABILITIES, "TASK_KILLING_STATE"],
            "resources": resources_json(a.total),
            "reserved_resources": {
                role: resources_json(part) for role, part in _by_role(a.total.reserved()).items()},
            "unreserved_resources": resources_json(a.total.unreserved()),
            "reserved_resources_full": {
                role: to_builtins(part.to_wire())
                for role, part in _by_role(a.total.reserved()).items()},
            "unreserved_resources_full": to_builtins(a.total.unreserved().to_wire()),
            "reserved_resources_allocated": {},
            "unreserved_resources_allocated": resources_json(used),
            "attributes": attributes_to_json(a.info.attributes),
            "master_hostname": _master_hostname(a.master_info),
            "flags": a.flags.to_wire(),
            "frameworks": [self._framework_json(f, can) for f in a.frameworks.values()
                           if can("view_frameworks", f.info.user or None)],
            "completed_frameworks": [
                self._framework_json(f, can) for f in a.completed_frameworks
                if can("view_frameworks", f.info.user or None)
            ],
        }

    def _framework_json(self, fw: Framework, can: Viewer = _everything) -> dict[str, Any]:
        info = fw.info
        user = info.user or None
        return {
            "id": fw.id.value, "name": info.name, "user": info.user,
            "failover_timeout": info.failover_timeout, "checkpoint": fw.checkpoint,
            "hostname": info.hostname or "", "principal": info.principal,
            "role": info.role or "*", "roles": info.roles or [info.role or "*"],
            "capabilities": [c.type for c in info.capabilities if c.type],
            "executors": [self._executor_json(e, user, can) for e in fw.executors.values()
                          if can("view_executors", _executor_user(e, user))],
            "completed_executors": [self._executor_json(e, user, can) for e in fw.completed_executors
                                    if can("view_executors", _executor_user(e, user))],
        }

    def _executor_json(self, ex: Executor, user: str | None = None,
                       can: Viewer = _everything) -> dict[str, Any]:
        def seen(task: Any) -> bool:
            return can("view_tasks", getattr(task, "user", None) or user)

        return {
            "id": ex.id.value, "name": ex.info.name or "", "source": ex.info.source or "",
            "container": ex.container_id, "directory": str(ex.sandbox),
            "resources": resources_json(ex.resources),
            "type": "DEFAULT" if ex.command or ex.info.type == ExecutorType.DEFAULT else "CUSTOM",
            "labels": to_builtins(ex.info.labels.labels) if ex.info.labels else [],
            "tasks": [_task_json(t) for t in ex.launched.values() if seen(t)],
            "queued_tasks": [
                {"id": t.task_id.value, "name": t.name, "resources": _res(t.resources)}
                for t in ex.queued_tasks() if seen(t)
            ],
            "completed_tasks": [_task_json(t) for t in [*ex.terminated.values(), *ex.completed]
                                if seen(t)],
        }

    async def state(self, request: web.Request) -> web.Response:
        return _json(self.state_json(self.agent.security.viewer(request)), request)

    # --- metrics ------------------------------------------------------------------------

    def metrics_json(self) -> dict[str, float]:
        a = self.agent
        phases = {p: 0 for p in ExecutorPhase}
        states: dict[str, int] = {}
        for fw in a.frameworks.values():
            for ex in fw.executors.values():
                phases[ex.phase] += 1
                for t in ex.launched.values():
                    states[t.state.value] = states.get(t.state.value, 0) + 1
                states["TASK_STAGING"] = states.get("TASK_STAGING", 0) + len(ex.queued_tasks())
        used = a.used_resources()
        out: dict[str, float] = {
            "slave/registered": 1.0 if a.registered else 0.0,
            "slave/uptime_secs": a.clock.now() - a.start_time,
            "slave/recovery_errors": a.metrics["recovery_errors"],
            "slave/container_launch_errors": a.metrics["container_launch_errors"],
            "slave/valid_status_updates": a.metrics["valid_status_updates"],
            "slave/invalid_status_updates": a.metrics["invalid_status_updates"],
            "slave/valid_framework_messages": a.metrics["valid_framework_messages"],
            "slave/invalid_framework_messages": a.metrics["invalid_framework_messages"],
            "slave/frameworks_active": len(a.frameworks),
            "slave/executors_registering": phases[ExecutorPhase.REGISTERING],
            "slave/executors_running": phases[ExecutorPhase.RUNNING],
            "slave/executors_terminating": phases[ExecutorPhase.TERMINATING],
            "slave/executors_terminated": a.metrics["executors_terminated"],
        }
        for name in ("staging", "starting", "running", "killing"):
            out[f"slave/tasks_{name}"] = states.get(f"TASK_{name.upper()}", 0)
        for name in ("finished", "failed", "killed", "lost", "gone", "error", "dropped"):
            out[f"slave/tasks_{name}"] = a.task_counts.get(f"TASK_{name.upper()}", 0)
        for r in ("cpus", "gpus", "mem", "disk"):
            total, use = a.total.scalar(r), used.scalar(r)
            out[f"slave/{r}_total"] = total
            out[f"slave/{r}_used"] = use
            out[f"slave/{r}_percent"] = use / total if total else 0.0
        out.update(system_metrics())
        return out

    async def metrics(self, request: web.Request) -> web.Response:
        return _json(self.metrics_json(), request)

    async def prometheus(self, request: web.Request) -> web.Response:
        """`/metrics`: the snapshot's keys as gauges plus the HTTP latency histogram."""
        body = prometheus_text(self.metrics_json(), self.http_metrics)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # --- files --------------------------------------------------------------------------

    def _resolve(self, request: web.Request) -> Path:
        raw = request.query.get("path")
        path = self.resolve_path(raw)
        self._authorize_path(request, raw, path)
        return path

    def _authorize_path(self, request: web.Request, raw: str | None, path: Path) -> None:
        """access_mesos_logs for the agent's log, access_sandboxes for a sandbox path."""
        if _is_log_path(raw):
            self.agent.security.require(request, "access_mesos_logs", None, "access the agent's log")
        else:
            self._require_sandbox(request, path)

    def _require_sandbox(self, request: web.Request, path: Path) -> None:
        """access_sandboxes (HTTPProblem 403) for the framework whose sandbox holds `path`."""
        a = self.agent
        a.security.require_sandbox(request, path, [*a.frameworks.values(), *a.completed_frameworks])

    def _authorize_operator(self, request: web.Request, call: op.Call) -> None:
        """The ACLs of the agent's operator calls (mezzo.agent.auth); HTTPProblem 403."""
        security = self.agent.security
        if security.authorizer is None:
            return
        t = op.CallType
        if call.type == t.GET_FLAGS:
            security.require(request, "view_flags", None, "view the flags")
        elif call.type in (t.LIST_FILES, t.READ_FILE):
            raw = call.list_files.path if call.list_files is not None else (
                call.read_file.path if call.read_file is not None else None)
            self._authorize_path(request, raw, self.resolve_path(raw))

    def resolve_path(self, raw: str | None) -> Path:
        """The real path of a sandbox path or of `/slave/log`, as `/files/*`, LIST_FILES and
        READ_FILE take them (HTTPProblem if not)."""
        if not raw:
            raise HTTPProblem(400, "Expecting 'path=value' in query")
        if _is_log_path(raw):
            if self.log_file is None or not self.log_file.exists():
                raise HTTPProblem(404, "Path not found")
            return self.log_file
        virtual = self._executor_virtual(raw)
        if virtual is not None:  # the real path below the sandbox of that executor's latest run
            raw = str(virtual[1]) + raw[len(virtual[0]):]
        check_path(raw)
        root = (Path(self.agent.flags.work_dir) / "slaves").resolve()
        try:
            path = Path(raw).resolve(strict=False)
            inside = path == root or root in path.parents
            exists = inside and path.exists()
        except (OSError, RuntimeError, ValueError):  # a symlink loop, a name the OS refuses
            raise HTTPProblem(400, "Path cannot be resolved") from None
        if not inside:
            raise HTTPProblem(403, "Path is outside of the agent's sandboxes")
        if virtual is not None:
            # As Mesos serves an attached directory: nothing outside it through its name.
            sandbox = virtual[1].resolve()
            if path != sandbox and sandbox not in path.parents:
                raise HTTPProblem(403, "Path is outside of the executor's sandbox")
        if not exists:
            raise HTTPProblem(404, "Path not found")
        return path

    def _executor_virtual(self, raw: str) -> tuple[str, Path] | None:
        """For a path under an executor's virtual sandbox path, Mesos's
        `/frameworks/<framework>/executors/<executor>/runs/latest`: that prefix and the
        sandbox of the executor's latest run (a live executor, else the newest completed run
        this agent still keeps). None for any other path; 404 if no such executor is known."""
        parts = raw.split("/", 7)  # "", frameworks, F, executors, E, runs, latest, rest
        if len(parts) < 7 or parts[0] or parts[1] != "frameworks" or not parts[2] \
                or parts[3] != "executors" or not parts[4] or parts[5] != "runs" \
                or parts[6] != "latest":
            return None
        framework_id, executor_id = parts[2], parts[4]
        prefix = executor_virtual_path(framework_id, executor_id)
        agent = self.agent
        for framework in [*agent.frameworks.values(), *reversed(agent.completed_frameworks)]:
            if framework.id.value != framework_id:
                continue
            live = framework.executors.get(executor_id)
            if live is not None:
                return prefix, live.sandbox
            for executor in reversed(framework.completed_executors):
                if executor.id.value == executor_id:
                    return prefix, executor.sandbox
        raise HTTPProblem(404, "Path not found")

    def shown_paths(self, raw: str | None) -> Callable[[Path], str]:
        """How `/files/browse` and LIST_FILES show each entry listed for `raw` (worked out once
        per request): the virtual `/slave/log` for the log; under an executor's virtual
        sandbox path, the virtual path; else the real path (a sandbox's own)."""
        if _is_log_path(raw):
            return lambda path: LOG_PATH if path == self.log_file else str(path)
        virtual = self._executor_virtual(raw) if raw else None
        if virtual is None:
            return str
        prefix, sandbox = virtual[0], virtual[1].resolve()

        def shown(path: Path) -> str:  # the entries lie in the sandbox (`resolve_path`)
            return prefix if path == sandbox else f"{prefix}/{path.relative_to(sandbox)}"

        return shown

    async def download(self, request: web.Request) -> web.StreamResponse:
        """Mesos's `/files/download`: the raw file, as an attachment."""
        try:
            path = self._resolve(request)
        except HTTPProblem as p:
            return p.response()
        if path.is_dir():
            return text_response(400, "Cannot download a directory")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return web.FileResponse(path, headers={
            "Content-Type": kind, "Content-Disposition": attachment(path.name)})

    async def debug(self, request: web.Request) -> web.Response:
        """Mesos's `/files/debug`: virtual path -> real path. Every sandbox is served at its
        own path (what `/state` shows as `directory`), as Mesos attaches them; the agent's log
        at `/slave/log` with --log_dir."""
        attached: dict[str, str] = {}
        for fw in [*self.agent.completed_frameworks, *self.agent.frameworks.values()]:
            # Oldest first, so that an executor's virtual path names its latest run.
            for ex in [*fw.completed_executors, *fw.executors.values()]:
                attached[str(ex.sandbox)] = str(ex.sandbox)
                attached[executor_virtual_path(fw.id.value, ex.id.value)] = str(ex.sandbox)
        if self.log_file is not None:
            attached[LOG_PATH] = str(self.log_file)
        return _json(dict(sorted(attached.items())), request)

    async def browse(self, request: web.Request) -> web.Response:
        try:
            path = self._resolve(request)
            entries = [path] if path.is_file() else sorted(path.iterdir())
            shown = self.shown_paths(request.query.get("path"))
            listing = [_file_json(p, shown(p)) for p in entries]
        except HTTPProblem as p:
            return p.response()
        except OSError as e:  # gone or unreadable between the checks and the listing
            return text_response(404, f"Path cannot be listed: {e.strerror}")
        return _json(listing, request)

    async def read(self, request: web.Request) -> web.Response:
        """Mesos's `/files/read`: no offset (or -1) reports the size; `length` -1 or absent
        reads to the end (at most MAX_READ_LENGTH); below -1 or not an integer is 400."""
        try:
            offset = _offset_param(request, "offset")
            length = _offset_param(request, "length")
            path = self._resolve(request)
            if path.is_dir():
                raise HTTPProblem(400, "Cannot read a directory")
        except HTTPProblem as p:
            return p.response()
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if offset == -1:
                    return _json({"data": "", "offset": size}, request)
                if offset >= size or length == 0:
                    return _json({"data": "", "offset": offset}, request)
                f.seek(offset)
                data = f.read(MAX_READ_LENGTH if length == -1 else min(length, MAX_READ_LENGTH))
        except OSError as e:  # gone or unreadable between the checks and the read
            return text_response(404, f"Path cannot be read: {e.strerror}")
        return _json({"data": data.decode("utf-8", "replace"), "offset": offset}, request)

    # --- operator API -------------------------------------------------------------------

    async def operator(self, request: web.Request) -> web.StreamResponse:
        content_type = request.headers.get("Content-Type", "")
        if content_type.split(";", 1)[0].strip().lower() == RECORDIO:
            # A streaming request: only ATTACH_CONTAINER_INPUT is one (container_api).
            return await self.containers.attach_input(request)
        try:
            call = await read_call(request, op.decode_agent_call, "agent::Call")
            if call.type in ContainerAPI.SERVED:
                # These judge Accept themselves (sessions and output answer RecordIO streams).
                return await self.containers.call(request, call)
            # The call type is judged before Accept: a malformed call is 400 whatever the
            # client accepts.
            require_json_accept(request)
        except HTTPProblem as p:
            return p.response()
        assert call.type is not None  # decode_agent_call refuses a call without a known type
        try:
            self._authorize_operator(request, call)
        except HTTPProblem as p:
            return p.response()
        if call.type in AgentOperatorExtras.SERVED:
            return self.extras.call(call)
        if call.type == op.CallType.GET_CONTAINERS:
            shown = call.get_containers or {}
            return _json({"type": "GET_CONTAINERS", "get_containers": self._get_containers(
                bool(shown.get("show_nested")), bool(shown.get("show_standalone")))}, request)
        result = self.operator_result(call.type, self.agent.security.viewer(request))
        if result is None:
            if call.type == op.CallType.UNKNOWN:
                return text_response(501, "Received 'UNKNOWN' call")
            return text_response(501, f"Call {call.type} is not implemented by this agent")
        return _json({"type": str(call.type), call.type.lower(): result}, request)

    def operator_result(self, type_: op.CallType, can: Viewer = _everything) -> dict[str, Any] | None:
        """The answer to one operator call, or None for a call this agent does not serve;
        GET_STATE, GET_FRAMEWORKS, GET_EXECUTORS and GET_TASKS show what `can` allows."""
        t = op.CallType
        match type_:
            case t.GET_HEALTH:
                return {"healthy": True}
            case t.GET_FLAGS:
                return {"flags": [{"name": k, "value": v}
                                  for k, v in self.agent.flags.to_wire().items()]}
            case t.GET_VERSION:
                return {"version_info": self.version_json()}
            case t.GET_METRICS:
                return {"metrics": [{"name": k, "value": v}
                                    for k, v in self.metrics_json().items()]}
            case t.GET_STATE:
                return self._get_state(can)
            case t.GET_FRAMEWORKS:
                return self._get_frameworks(can)
            case t.GET_EXECUTORS:
                return self._get_executors(can)
            case t.GET_TASKS:
                return self._get_tasks(can)
            case t.GET_AGENT:
                return {"agent_info": to_builtins(self.agent.info)}
            case t.GET_CONTAINERS:
                return self._get_containers()
            case _:
                return None

    def _viewed(self, can: Viewer) -> list[tuple[Framework, bool]]:
        """Every framework (live ones first) with whether it is live, as `can` may view."""
        a = self.agent
        return [(f, live) for fws, live in ((a.frameworks.values(), True), (a.completed_frameworks, False))
                for f in fws if can("view_frameworks", f.info.user or None)]

    def _get_frameworks(self, can: Viewer = _everything) -> dict[str, Any]:
        viewed = self._viewed(can)
        return {
            "frameworks": [{"framework_info": to_builtins(f.info)} for f, live in viewed if live],
            "completed_frameworks": [
                {"framework_info": to_builtins(f.info)} for f, live in viewed if not live
            ],
        }

    def _get_executors(self, can: Viewer = _everything) -> dict[str, Any]:
        frameworks = [f for f, live in self._viewed(can) if live]

        def shown(f: Framework, e: Executor) -> bool:
            return can("view_executors", _executor_user(e, f.info.user or None))

        return {
            "executors": [
                {"executor_info": to_builtins(e.info)}
                for f in frameworks for e in f.executors.values() if shown(f, e)
            ],
            "completed_executors": [
                {"executor_info": to_builtins(e.info)}
                for f in frameworks for e in f.completed_executors if shown(f, e)
            ],
        }

    def _get_tasks(self, can: Viewer = _everything) -> dict[str, Any]:
        queued: list[Any] = []
        launched: list[Any] = []
        terminated: list[Any] = []
        completed: list[Any] = []
        for f, live in self._viewed(can):
            if not live:
                continue
            user = f.info.user or None

            def seen(task: Any, user: str | None = user) -> bool:
                return can("view_tasks", getattr(task, "user", None) or user)

            for e in f.executors.values():
                queued.extend(to_builtins(t) for t in e.queued_tasks() if seen(t))
                launched.extend(to_builtins(t) for t in e.launched.values() if seen(t))
                terminated.extend(to_builtins(t) for t in e.terminated.values() if seen(t))
                completed.extend(to_builtins(t) for t in e.completed if seen(t))
        return {"pending_tasks": [], "queued_tasks": queued, "launched_tasks": launched,
                "terminated_tasks": terminated, "completed_tasks": completed}

    def _get_state(self, can: Viewer = _everything) -> dict[str, Any]:
        return {"get_tasks": self._get_tasks(can), "get_executors": self._get_executors(can),
                "get_frameworks": self._get_frameworks(can)}

    def _get_containers(self, show_nested: bool = False,
                        show_standalone: bool = False) -> dict[str, Any]:
        a = self.agent
        out = []
        for f in a.frameworks.values():
            for e in f.executors.values():
                if e.phase == ExecutorPhase.TERMINATED:
                    continue
                out.append({
                    "framework_id": {"value": f.id.value},
                    "executor_id": {"value": e.id.value},
                    "executor_name": e.info.name or "",
                    "container_id": {"value": e.container_id},
                    "container_status": {"executor_pid": e.pid} if e.pid else {},
                })
        # Nested and standalone containers, when asked for (Mesos's show_nested/standalone).
        out.extend(self.containers.entries(show_nested, show_standalone))
        return {"containers": out}


def _executor_user(ex: Executor, framework_user: str | None) -> str | None:
    """Whose executor this is, for view_executors: its command's user, else its framework's."""
    command = getattr(ex.info, "command", None)
    return getattr(command, "user", None) or framework_user


def _task_json(t: Task) -> dict[str, Any]:
    return {
        "id": t.task_id.value, "name": t.name, "framework_id": t.framework_id.value,
        "executor_id": t.executor_id.value if t.executor_id else "",
        "slave_id": t.agent_id.value, "state": t.state.value,
        "resources": _res(t.resources),
        "statuses": [
            {"state": s.state.value, "timestamp": s.timestamp,
             **({"message": s.message} if s.message else {}),
             **({"reason": s.reason.value} if s.reason else {})}
            for s in t.statuses
        ],
    }


def _res(resources: list[Any]) -> dict[str, Any]:
    try:
        return resources_json(Resources.from_wire(resources))
    except Exception:
        return {}


def _file_json(path: Path, shown: str) -> dict[str, Any]:
    st = path.lstat()
    return {
        "path": shown, "nlink": st.st_nlink, "size": st.st_size, "mtime": st.st_mtime,
        "mode": stat.filemode(st.st_mode), "uid": _owner(st.st_uid), "gid": str(st.st_gid),
    }


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _offset_param(request: web.Request, name: str) -> int:
    """`offset`/`length`: an integer from -1 (meaning none) up to what a file offset holds."""
    raw = request.query.get(name)
    if raw is None:
        return -1
    try:
        value = int(raw.strip())
    except ValueError:
        raise HTTPProblem(400, f"Failed to parse {name}: not an integer") from None
    if value < -1:
        raise HTTPProblem(400, f"Negative {name} provided: {value}")
    if value > _OFF_T_MAX:
        raise HTTPProblem(400, f"Failed to parse {name}: out of range")
    return value


def executor_virtual_path(framework_id: str, executor_id: str) -> str:
    """Where `/files/*` also serve an executor's latest sandbox, as Mesos's agent attaches it."""
    return f"/frameworks/{framework_id}/executors/{executor_id}/runs/latest"


def _is_log_path(raw: str | None) -> bool:
    """Does `raw` name the agent's log (`/slave/log`, trailing slashes aside)?"""
    return raw is not None and raw.rstrip("/") == LOG_PATH


def _master_hostname(info: object) -> str | None:
    return getattr(info, "hostname", None) if info is not None else None

