"""Test helpers for the agent: real `mezzo master` / `mezzo agent` subprocesses and a minimal
v1 scheduler (raw HTTP, asyncio) that launches tasks and collects their status updates.

Processes are started by `mezzo.testing.processes.spawn` (own session, stderr to a log), their
first stdout line (`listening on URL`) gives their address, and `kill()` stops them (by default
with SIGKILL, to test recovery).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from mezzo.agent.containerizer.launcher import kill_session
from mezzo.api.codec import decode, encode
from mezzo.api.scheduler import Event
from mezzo.net.client import OpenStream, open_stream, post_call
from mezzo.testing import processes

MEZZO = [processes.MEZZO]
free_port = processes.free_port


@dataclass
class Proc:
    """A mezzo daemon started as a subprocess; `url` comes from its first stdout line."""

    popen: subprocess.Popen[str]
    url: str
    log_path: Path
    lines: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def address(self) -> str:
        return self.url.split("://", 1)[-1]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        processes.stop_process(self.popen, sig)

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ""


def start(argv: Sequence[str], log_path: Path, timeout: float = 20.0) -> Proc:
    """Start `mezzo <argv>`, wait for `listening on URL` (or exit) and return it."""
    log_path.unlink(missing_ok=True)
    popen = processes.spawn(
        [*MEZZO, *argv], log_path, stdout=subprocess.PIPE, text=True, cwd=log_path.parent
    )
    reader = processes.StdoutReader(popen)
    url = reader.wait_url(timeout)
    if url is None:
        with contextlib.suppress(ProcessLookupError):
            popen.kill()
        raise RuntimeError(f"{argv[0]} did not start (exit {popen.poll()}):\n{log_path.read_text()}")
    return Proc(popen, url, log_path, reader.lines)


def start_master(tmp: Path, *extra: str) -> Proc:
    return start(
        ["master", "--ip", "127.0.0.1", "--port", "0", "--registry", "in_memory",
         "--work_dir", str(tmp / "master"), "--allocation_interval", "100ms", *extra],
        tmp / "master.log",
    )


def start_agent(tmp: Path, master: str, *extra: str, port: int = 0, name: str = "agent") -> Proc:
    return start(
        ["agent", "--master", master, "--ip", "127.0.0.1", "--port", str(port),
         "--work_dir", str(tmp / name), "--registration_backoff_factor", "100ms",
         "--status_update_retry_interval", "1secs", *extra],
        tmp / f"{name}.log",
    )


def operator_call(url: str, body: dict[str, Any], timeout: float = 10) -> tuple[int, str]:
    """POST one v1 operator call (JSON) to `url` + /api/v1 (blocking): (status, body text),
    an HTTP error's included."""
    request = urllib.request.Request(url + "/api/v1", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def agent_call(agent: Proc, body: dict[str, Any]) -> dict[str, Any]:
    """POST one v1 operator call to `agent`; its JSON answer (asserts a 200)."""
    async with aiohttp.ClientSession() as s, s.post(
        agent.url + "/api/v1", json=body, headers={"Accept": "application/json"}
    ) as r:
        assert r.status == 200, await r.text()
        answer: dict[str, Any] = await r.json()
        return answer


async def executor_pids(agent: Proc) -> dict[str, int]:
    """The pid of every executor `agent` runs, by executor id (GET_CONTAINERS)."""
    out = await agent_call(agent, {"type": "GET_CONTAINERS"})
    return {
        c["executor_id"]["value"]: c["container_status"]["executor_pid"]
        for c in out["get_containers"]["containers"]
        if "executor_pid" in c.get("container_status", {})
    }


class ProcessCluster:
    """A `mezzo master` and `mezzo agent`s under `tmp`, every agent started with `agent_args`
    (and its own `--cgroups_root` if `cgroups_root` is given); `close()` stops them all and
    removes what they left (executors in their own sessions, cgroups). A context manager:
    a test's fixture is ``with ProcessCluster(tmp_path, ...) as c: yield c``."""

    def __init__(self, tmp: Path, *agent_args: str, cgroups_root: str | None = None) -> None:
        self.tmp = tmp
        self.cgroups_root = cgroups_root
        self.agent_args = [*agent_args]
        if cgroups_root is not None:
            self.agent_args += ["--cgroups_root", cgroups_root]
        self.master = start_master(tmp)
        self.agents: list[Proc] = []

    def agent(self, *extra: str, port: int = 0) -> Proc:
        proc = start_agent(self.tmp, self.master.address, *self.agent_args, *extra, port=port)
        self.agents.append(proc)
        return proc

    def close(self) -> None:
        for a in self.agents:
            a.kill()
        kill_leftovers(self.tmp / "agent")
        self.master.kill()
        if self.cgroups_root is not None:
            remove_cgroups(self.cgroups_root)

    def __enter__(self) -> ProcessCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MiniScheduler:
    """Just enough of a v1 scheduler: subscribe, wait for offers, launch, collect updates
    (acknowledging each), kill, send messages."""

    def __init__(self, master_url: str, *, checkpoint: bool = False, name: str = "test",
                 auto_ack: bool = True, framework_info: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.master_url = master_url
        self.headers = headers or {}  # e.g. the Authorization of a secured master
        # Fields that replace the defaults of the FrameworkInfo sent (roles, principal...).
        self.framework_info = framework_info or {}
        self.checkpoint = checkpoint
        self.name = name
        self.auto_ack = auto_ack
        self.framework_id: str | None = None
        self.stream_id: str | None = None
        self.offers: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.operation_updates: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self._session: aiohttp.ClientSession | None = None
        self._stream: OpenStream | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._acks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> MiniScheduler:
        self._session = aiohttp.ClientSession(headers=self.headers)
        body = {
            "type": "SUBSCRIBE",
            "subscribe": {"framework_info": {
                "user": "root", "name": self.name, "checkpoint": self.checkpoint,
                "capabilities": [{"type": "TASK_KILLING_STATE"}],
                **self.framework_info,
            }},
        }
        self._stream = await open_stream(
            self._session, self.master_url + "/api/v1/scheduler", encode(body)
        )
        self.stream_id = self._stream.headers.get("Mesos-Stream-Id")
        self._reader = asyncio.create_task(self._read())
        await self.wait_for(lambda: self.framework_id is not None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.call({"type": "TEARDOWN"})
        if self._reader is not None:
            self._reader.cancel()
        if self._stream is not None:
            self._stream.close()
        if self._session is not None:
            await self._session.close()

    def drop_connection(self) -> None:
        """The scheduler's connection breaks (no TEARDOWN): the subscription stream closes."""
        if self._reader is not None:
            self._reader.cancel()
        if self._stream is not None:
            self._stream.close()

    async def _read(self) -> None:
        import json

        assert self._stream is not None
        async for record in self._stream.records():
            event = json.loads(record)
            decode(record, Event)  # the master's events must decode as v1 events
            self.events.append(event)
            kind = event.get("type")
            if kind == "SUBSCRIBED":
                self.framework_id = event["subscribed"]["framework_id"]["value"]
            elif kind == "OFFERS":
                self.offers.extend(event["offers"]["offers"])
            elif kind == "UPDATE":
                status = event["update"]["status"]
                self.updates.append(status)
                if self.auto_ack and "uuid" in status:
                    ack = asyncio.create_task(self.acknowledge(status))
                    self._acks.add(ack)
                    ack.add_done_callback(self._acks.discard)
            elif kind == "MESSAGE":
                self.messages.append(event["message"])
            elif kind == "UPDATE_OPERATION_STATUS":
                self.operation_updates.append(event["update_operation_status"]["status"])
            self._changed.set()

    async def wait_for(self, pred: Any, timeout: float = 30.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = pred()
            if value:
                return value
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met; updates={self.updates}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))

    async def call(self, body: dict[str, Any]) -> tuple[int, bytes]:
        assert self._session is not None and self.framework_id is not None
        body = {"framework_id": {"value": self.framework_id}, **body}
        headers = {"Mesos-Stream-Id": self.stream_id or ""}
        return await post_call(
            self._session, self.master_url + "/api/v1/scheduler", encode(body), headers
        )

    async def acknowledge(self, status: dict[str, Any]) -> None:
        await self.call({
            "type": "ACKNOWLEDGE",
            "acknowledge": {"agent_id": status["agent_id"], "task_id": status["task_id"],
                            "uuid": status["uuid"]},
        })

    async def launch(self, tasks: list[dict[str, Any]], timeout: float = 30.0) -> dict[str, Any]:
        """Launch on the first offer; tasks get `agent_id` filled. Returns the offer used."""
        offer = await self.wait_for(lambda: self.offers and self.offers.pop(0), timeout)
        for t in tasks:
            t["agent_id"] = offer["agent_id"]
        status, body = await self.call({
            "type": "ACCEPT",
            "accept": {"offer_ids": [offer["id"]],
                       "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
                       "filters": {"refuse_seconds": 0.1}},
        })
        assert status == 202, body
        return offer

    async def launch_group(
        self,
        groups: list[tuple[dict[str, Any], list[dict[str, Any]]]],
        timeout: float = 30.0,
        offer: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """ACCEPT the first offer (or `offer`) with one LAUNCH_GROUP per (executor, tasks);
        tasks get `agent_id`, executors `framework_id` filled. Returns the offer used."""
        if offer is None:
            offer = await self.wait_for(lambda: self.offers and self.offers.pop(0), timeout)
        operations = []
        for executor, tasks in groups:
            executor.setdefault("framework_id", {"value": self.framework_id})
            for t in tasks:
                t["agent_id"] = offer["agent_id"]
            operations.append({
                "type": "LAUNCH_GROUP",
                "launch_group": {"executor": executor, "task_group": {"tasks": tasks}},
            })
        status, body = await self.call({
            "type": "ACCEPT",
            "accept": {"offer_ids": [offer["id"]], "operations": operations,
                       "filters": {"refuse_seconds": 0.1}},
        })
        assert status == 202, body
        return offer

    def states(self, task_id: str) -> list[str]:
        return [u["state"] for u in self.updates if u["task_id"]["value"] == task_id]

    async def wait_state(self, task_id: str, state: str, timeout: float = 30.0) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for u in self.updates:
                if u["task_id"]["value"] == task_id and u["state"] == state:
                    return u
            return None

        return await self.wait_for(find, timeout)


def command_task(task_id: str, shell: str, cpus: float = 0.1, mem: float = 32,
                 **extra: Any) -> dict[str, Any]:
    return {
        "name": task_id, "task_id": {"value": task_id},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
        ],
        "command": {"shell": True, "value": shell},
        **extra,
    }


def default_executor(executor_id: str, cpus: float = 0.1, mem: float = 32, disk: float = 10,
                     **extra: Any) -> dict[str, Any]:
    """An ExecutorInfo of type DEFAULT (the built-in default executor) for LAUNCH_GROUP."""
    return {
        "type": "DEFAULT", "executor_id": {"value": executor_id},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
            {"name": "disk", "type": "SCALAR", "scalar": {"value": disk}},
        ],
        **extra,
    }


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def kill_leftovers(work_dir: Path) -> None:
    """Kill every container root recorded under an agent's work_dir (runtime pid files and
    checkpointed forked.pid files), with its whole session, and any process working inside
    the work_dir."""
    pids: set[int] = set()
    for pattern in ("containers/*/pid", "meta/slaves/*/frameworks/*/executors/*/runs/*/pids/forked.pid"):
        for path in work_dir.glob(pattern):
            with contextlib.suppress(OSError, ValueError):
                pids.add(int(path.read_text().strip()))
    for pid in pids:
        with contextlib.suppress(OSError):
            if os.getsid(pid) == pid:
                # The session, not only the group: a command executor's task has a process
                # group of its own inside its executor's session.
                kill_session(pid, signal.SIGKILL)
    # Whatever still works inside the work_dir (a task whose executor is already gone, so that
    # its session can no longer be found from a pid file).
    root = str(work_dir.resolve()) + os.sep
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            with contextlib.suppress(OSError):
                if (os.readlink(f"/proc/{name}/cwd").removesuffix(" (deleted)") + os.sep).startswith(root):
                    os.kill(int(name), signal.SIGKILL)


def remove_cgroups(root: str) -> None:
    """Remove `<mount>/<root>` and its children in every hierarchy (after their processes)."""
    from mezzo.agent.containerizer.isolators.cgroupfs import mounted_hierarchies

    for h in mounted_hierarchies():
        base = h.mount / root
        if not base.is_dir():
            continue
        for child in sorted(base.iterdir(), reverse=True):
            if child.is_dir():
                _rmdir_retry(child)
        _rmdir_retry(base)


def _rmdir_retry(path: Path) -> None:
    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            with contextlib.suppress(OSError):
                for line in (path / "cgroup.procs").read_text().split():
                    os.kill(int(line), signal.SIGKILL)
            time.sleep(0.05)
