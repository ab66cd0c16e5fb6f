"""Helpers shared by the client commands (`run`, `frameworks`/`agents`/`tasks`, `logs`).

Owns: the `--master` option and its resolution to a base URL (`host:port`, `http://…`,
`zk://…`), GETting JSON from masters and agents with one-line errors, locating a task's agent
and sandbox through `/master/state` and the agent's `/state`, and reading sandbox files through
the agent's files API (`/files/read?path=…&offset=…&length=…`).

HTTP goes through `mezzo.cli.http1` (no aiohttp, no urllib.request or http.client): these
commands must start at once, and one kept-alive connection per server serves all their GETs.

Errors: everything a user can cause (unreachable master, unknown task, bad address) is raised as
`CliError`, printed as one line `error: …` on stderr with exit status 1: the `friendly_errors`
decorator of the click commands does that (and turns any other exception into such a line too,
no tracebacks), as does `mezzo run`'s click-free path (`mezzo.cli.one_task`).

Standard library only at import time: `mezzo run`'s fast path imports this module without click.
The click side (`master_option`, `friendly_errors`, the defaults) is `mezzo.cli.options`,
re-exported here; the click command modules import only that one at their top.
"""

from __future__ import annotations

import json
import socket

from mezzo.cli.http1 import Connection

# Re-exported: the click side of the client commands (see the module docstring).
from mezzo.cli.options import DEFAULT_MASTER as DEFAULT_MASTER
from mezzo.cli.options import MASTER_ENV as MASTER_ENV
from mezzo.cli.options import error_message as error_message
from mezzo.cli.options import friendly_errors as friendly_errors
from mezzo.cli.options import master_option as master_option
from mezzo.core.errors import MezzoError
from mezzo.net.address import split_url

# Typing names for the checker only: importing `typing` costs `mezzo run` start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

MAX_REDIRECTS = 5

# The task states the master treats as terminal (`mezzo.api.common.TERMINAL_TASK_STATES`, as
# strings: the CLI does not import the wire types; a test keeps the two equal).
TERMINAL_STATES = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_LOST",
        "TASK_ERROR",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    }
)


def is_terminal(state: str) -> bool:
    return state in TERMINAL_STATES


class CliError(MezzoError):
    """A user-facing failure: printed as `error: <message>`, exit status 1."""

    exit_code = 1

    def format_message(self) -> str:
        return str(self)


def resolve_master(master: str, timeout: float = 10.0) -> str:
    """The base URL (`http://host:port`) of the leading master, or of the given master (a
    non-leader redirects our GETs to the leader)."""
    # Imported here: the scheduler package is only needed by commands that talk to a master.
    from mezzo.net.address import parse_master_address

    try:
        if master.startswith("zk://"):
            from mezzo.election.factory import create_detector

            detector = create_detector(master)
            detector.start()
            try:
                found, leader = detector.wait_for(lambda info: info is not None, timeout)
            finally:
                detector.close()
            if not found or leader is None:
                raise CliError(f"no leading master found in {master} within {timeout:.0f} s")
            # A TLS leader says so beside its MasterInfo (`scheme`).
            return parse_master_address(leader.address, "https" if leader.scheme == "https" else None)
        return parse_master_address(master.split(",")[0])
    except MezzoError as exc:
        raise CliError(str(exc)) from None


def display(base: str) -> str:
    """`http://127.0.0.1:5050` → `127.0.0.1:5050` for messages."""
    return base.split("://", 1)[-1]


def reason(exc: BaseException) -> str:
    """A short lower-case description of why a connection failed."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


# One kept-alive connection per server (scheme, host, port) for the life of the command.
_connections: dict[tuple[str, str, int | None], Connection] = {}


def _get_once(url: str, timeout: float) -> tuple[int, str | None, bytes]:
    """GET on the kept-alive connection to `url`'s server: (status, Location, body)."""
    scheme, host, port, path = split_url(url)
    key = (scheme, host, port)
    conn = _connections.get(key)
    if conn is None:
        conn = _connections[key] = Connection(url, timeout)
    if not path.startswith("/"):
        path = "/" + path
    response = conn.request("GET", path, headers={"Accept": "application/json"})
    return response.status, response.header("Location"), response.body


def get(url: str, what: str, timeout: float = 10.0) -> bytes:
    """GET `url`, following redirects (a standby master answers 307 to the leader); `what`
    names the server in errors ("master at 1.2.3.4:5050")."""
    for _ in range(MAX_REDIRECTS + 1):
        try:
            status, location, body = _get_once(url, timeout)
        except OSError as exc:
            raise CliError(f"cannot reach {what}: {reason(exc)}") from None
        if status in (301, 302, 303, 307, 308) and location:
            from urllib.parse import urljoin  # a redirect only: its import costs start-up

            url = urljoin(url, location)
            continue
        if status >= 400:
            lines = body.decode(errors="replace").strip().splitlines()
            detail = f": {lines[0]}" if lines else ""
            if status == 401:
                detail += (" (give a principal and secret: mezzo --principal P --secret S, or "
                           "MEZZO_PRINCIPAL and MEZZO_SECRET)")
            raise CliError(f"{what} answered HTTP {status}{detail}")
        return body
    raise CliError(f"{what} redirected more than {MAX_REDIRECTS} times")


def get_json(url: str, what: str, timeout: float = 10.0) -> Any:
    data = get(url, what, timeout)
    try:
        return json.loads(data)
    except ValueError:
        raise CliError(f"{what} sent a response that is not JSON") from None


def master_state(base: str) -> dict[str, Any]:
    return get_json(base + "/master/state", f"master at {display(base)}")


def agent_base(agent: dict[str, Any], master_base: str = "") -> str:
    """Base URL of an agent from its `/master/state` entry (`pid` is `slave(1)@ip:port`),
    over HTTPS when the master is reached over HTTPS (a TLS cluster)."""
    scheme = "https" if master_base.startswith("https://") else "http"
    pid = agent.get("pid") or ""
    if "@" in pid:
        return f"{scheme}://" + pid.split("@", 1)[1]
    return f"{scheme}://{agent.get('hostname')}:{agent.get('port', 5051)}"


def all_tasks(state: dict[str, Any], include_completed: bool = True) -> Iterator[dict[str, Any]]:
    """Every task of `/master/state` (live first, then unreachable and completed ones)."""
    frameworks = list(state.get("frameworks", []))
    if include_completed:
        frameworks += state.get("completed_frameworks", [])
    keys = ("tasks", "unreachable_tasks", "completed_tasks") if include_completed else ("tasks",)
    for key in keys:
        for fw in frameworks:
            yield from fw.get(key, [])


class Sandbox:
    """Where a task's files are: its agent's base URL and its sandbox directory."""

    def __init__(self, agent_url: str, directory: str, task: dict[str, Any] | None = None) -> None:
        self.agent_url = agent_url
        self.directory = directory
        self.task = task


def find_task(state: dict[str, Any], task_id: str) -> dict[str, Any]:
    for task in all_tasks(state):
        if task.get("id") == task_id:
            return task
    raise CliError(f"no task {task_id!r} known to the master")


def sandbox_directory(agent_state: dict[str, Any], task_id: str, executor_id: str = "") -> str:
    """The sandbox of `task_id`, from an agent's `/state`: its executor's, or for a task of a
    group in the default executor, `<executor sandbox>/tasks/<task_id>`."""
    frameworks = agent_state.get("frameworks", []) + agent_state.get("completed_frameworks", [])
    for fw in frameworks:
        for ex in fw.get("executors", []) + fw.get("completed_executors", []):
            ids = {ex.get("id")}
            for key in ("tasks", "queued_tasks", "completed_tasks"):
                ids.update(t.get("id") for t in ex.get(key, []))
            # Command executors take the task's id as their own.
            if (task_id in ids or (executor_id and executor_id in ids)) and ex.get("directory"):
                if ex.get("type") == "DEFAULT" and ex.get("id") != task_id:
                    # A task of a group: its nested container's sandbox (as Mesos's web UI).
                    return f"{ex['directory']}/tasks/{task_id}"
                return str(ex["directory"])
    raise CliError(f"the agent has no sandbox for task {task_id!r}")


def find_sandbox(master_base: str, task_id: str) -> Sandbox:
    state = master_state(master_base)
    task = find_task(state, task_id)
    agent_id = task.get("slave_id") or task.get("agent_id")
    for agent in state.get("slaves", []):
        if agent.get("id") == agent_id:
            url = agent_base(agent, master_base)
            break
    else:
        raise CliError(
            f"task {task_id!r} ran on agent {agent_id}, which the master no longer knows"
        )
    agent_state = get_json(url + "/state", f"agent at {display(url)}")
    directory = sandbox_directory(agent_state, task_id, task.get("executor_id") or "")
    return Sandbox(url, directory, task)


# What `urllib.parse.quote_plus` leaves as it is (RFC 3986's unreserved characters).
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def encode_query(params: dict[str, Any]) -> str:
    """`urllib.parse.urlencode(params)` (UTF-8, space as `+`) without importing urllib."""
    def quote(value: object) -> str:
        return "".join(
            chr(b) if b in _UNRESERVED else "+" if b == 0x20 else f"%{b:02X}"
            for b in str(value).encode("utf-8")
        )

    return "&".join(f"{quote(key)}={quote(value)}" for key, value in params.items())


def read_file(agent_url: str, path: str, offset: int = 0, length: int = 1 << 20) -> bytes:
    """One chunk of a sandbox file through the files API (empty at end of file)."""
    query = encode_query({"path": path, "offset": offset, "length": length})
    reply = get_json(f"{agent_url}/files/read?{query}", f"agent at {display(agent_url)}")
    data = reply.get("data", "") if isinstance(reply, dict) else ""
    return data.encode() if isinstance(data, str) else bytes(data)


def read_file_size(agent_url: str, path: str) -> int:
    """The current size of a sandbox file (the files API's offset -1)."""
    query = encode_query({"path": path, "offset": -1})
    reply = get_json(f"{agent_url}/files/read?{query}", f"agent at {display(agent_url)}")
    size = reply.get("offset", 0) if isinstance(reply, dict) else 0
    return size if isinstance(size, int) else 0


# Agents cap one read at whole pages (Mesos: 16 of them), so a chunk shorter than a page ends
# at the file's current end: no further read is needed to see an empty one.
SHORT_READ = 4096


def read_whole_file(agent_url: str, path: str, offset: int = 0) -> tuple[bytes, int]:
    """Everything from `offset` to the current end; returns (data, new offset)."""
    chunks: list[bytes] = []
    while True:
        chunk = read_file(agent_url, path, offset)
        chunks.append(chunk)
        offset += len(chunk)
        if len(chunk) < SHORT_READ:
            return b"".join(chunks), offset
