"""The session of `mezzo exec` (see `mezzo.cli.exec` for the command and the protocol): the
task's agent and container from the master's state (`locate`), then the nested container's
output stream, its input stream and its exit status on the agent (`Session`).

Standard library only (http.client and threads), like the other client commands; imported only
when `mezzo exec` runs (not for its `--help`).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import queue
import shutil
import signal
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

from mezzo.cli.common import (
    CliError,
    agent_base,
    display,
    find_task,
    master_state,
    reason,
)
from mezzo.cli.http1 import auth_headers, client_ssl_context

HEARTBEAT_SECONDS = 30
RECORDIO = "application/recordio"
JSON = "application/json"


def locate(base: str, task_id: str) -> tuple[str, dict[str, Any]]:
    """The task's agent URL and its container id, from the master's state."""
    state = master_state(base)
    task = find_task(state, task_id)
    if task.get("state") != "TASK_RUNNING":
        raise CliError(f"task {task_id!r} is {task.get('state', 'in no known state')}, not running")
    container_id = None
    for status in task.get("statuses", []):
        container_id = (status.get("container_status") or {}).get("container_id")
        if container_id:
            break
    if not container_id:
        raise CliError(f"the master knows no container of task {task_id!r} yet; try again")
    agent_id = task.get("slave_id") or task.get("agent_id")
    for agent in state.get("slaves", []):
        if agent.get("id") == agent_id:
            return agent_base(agent, base), container_id
    raise CliError(f"task {task_id!r} runs on agent {agent_id}, which the master does not know")


def _record(message: dict[str, Any]) -> bytes:
    payload = json.dumps(message).encode()
    return b"%d\n%b" % (len(payload), payload)


def _input(process_io: dict[str, Any]) -> bytes:
    return _record({"type": "ATTACH_CONTAINER_INPUT",
                    "attach_container_input": {"type": "PROCESS_IO", "process_io": process_io}})


def _stdin_record(data: bytes) -> bytes:
    return _input({"type": "DATA", "data": {"type": "STDIN", "data": base64.b64encode(data).decode()}})


def _window_record(rows: int, columns: int) -> bytes:
    return _input({"type": "CONTROL", "control": {
        "type": "TTY_INFO", "tty_info": {"window_size": {"rows": rows, "columns": columns}}}})


class Session:
    """One exec: the output stream on the main thread, input on helper threads."""

    def __init__(self, agent_url: str, parent: dict[str, Any], command: list[str], *,
                 tty: bool, stdin: bool) -> None:
        parts = urllib.parse.urlsplit(agent_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 5051
        self.https = parts.scheme == "https"
        self.where = display(agent_url)
        self.container_id = {"parent": parent, "value": str(uuid.uuid4())}
        self.command = command
        self.tty = tty
        self.stdin = stdin
        self.inputs: queue.Queue[bytes | None] = queue.Queue()

    def _connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=client_ssl_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def run(self) -> int:
        body: dict[str, Any] = {
            "type": "LAUNCH_NESTED_CONTAINER_SESSION",
            "launch_nested_container_session": {
                "container_id": self.container_id,
                "command": {"value": self.command[0], "arguments": self.command, "shell": False},
            },
        }
        if self.tty:
            rows, columns = _terminal_size()
            body["launch_nested_container_session"]["container"] = {
                "type": "MESOS", "tty_info": {"window_size": {"rows": rows, "columns": columns}}}
        conn = self._connection()
        try:
            conn.request("POST", "/api/v1", body=json.dumps(body), headers={
                **auth_headers(), "Content-Type": JSON, "Accept": RECORDIO, "Message-Accept": JSON})
            response = conn.getresponse()
        except OSError as exc:
            raise CliError(f"cannot reach agent at {self.where}: {reason(exc)}") from None
        if response.status != 200:
            text = response.read().decode(errors="replace").strip()
            raise CliError(f"agent at {self.where} refused the command (HTTP {response.status})"
                           + (f": {text}" if text else ""))
        with self._terminal():
            if self.stdin or self.tty:
                self._start_input()
            try:
                self._copy_output(response)
            except KeyboardInterrupt:
                conn.close()  # the agent destroys a session whose connection closes
                return 130
            finally:
                self.inputs.put(None)
        conn.close()
        return self._exit_status()

    # ----------------------------------------------------------------- output

    def _copy_output(self, response: http.client.HTTPResponse) -> None:
        buffer = b""
        out, err = sys.stdout.buffer, sys.stderr.buffer
        while True:
            chunk = response.read1(65536)
            if not chunk:
                return
            buffer += chunk
            while True:
                newline = buffer.find(b"\n")
                if newline < 0:
                    break
                size = int(buffer[:newline])
                if len(buffer) < newline + 1 + size:
                    break
                record = json.loads(buffer[newline + 1: newline + 1 + size])
                buffer = buffer[newline + 1 + size:]
                if record.get("type") != "DATA":
                    continue  # HEARTBEAT
                data = record.get("data") or {}
                target = err if data.get("type") == "STDERR" else out
                target.write(base64.b64decode(data.get("data", "")))
                target.flush()

    def _exit_status(self) -> int:
        conn = self._connection()
        try:
            conn.request("POST", "/api/v1", body=json.dumps({
                "type": "WAIT_CONTAINER", "wait_container": {"container_id": self.container_id}}),
                headers={**auth_headers(), "Content-Type": JSON, "Accept": JSON})
            response = conn.getresponse()
            text = response.read()
        except OSError as exc:
            raise CliError(f"cannot reach agent at {self.where}: {reason(exc)}") from None
        finally:
            conn.close()
        if response.status != 200:
            raise CliError(f"agent at {self.where} cannot say how the command ended "
                           f"(HTTP {response.status}): {text.decode(errors='replace').strip()}")
        status = json.loads(text).get("wait_container", {}).get("exit_status")
        if status is None:
            return 1
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1

    # ----------------------------------------------------------------- input

    def _start_input(self) -> None:
        first = _record({"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
            "type": "CONTAINER_ID", "container_id": self.container_id}})
        self.inputs.put(first)
        if self.tty:
            self.inputs.put(_window_record(*_terminal_size()))
            with contextlib.suppress(ValueError):  # not the main thread: no resizes then
                signal.signal(signal.SIGWINCH,
                              lambda *_: self.inputs.put(_window_record(*_terminal_size())))
        for target in (self._read_stdin, self._heartbeats, self._send_input):
            threading.Thread(target=target, daemon=True).start()

    def _read_stdin(self) -> None:
        if not self.stdin:
            self.inputs.put(_stdin_record(b""))
            return
        fd = sys.stdin.fileno()
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                if not self.tty:
                    self.inputs.put(_stdin_record(b""))  # end of input
                return
            self.inputs.put(_stdin_record(chunk))

    def _heartbeats(self) -> None:
        record = _input({"type": "CONTROL", "control": {"type": "HEARTBEAT", "heartbeat": {
            "interval": {"nanoseconds": HEARTBEAT_SECONDS * 1_000_000_000}}}})
        stop = threading.Event()
        while not stop.wait(HEARTBEAT_SECONDS):
            self.inputs.put(record)

    def _records(self) -> Iterator[bytes]:
        while (record := self.inputs.get()) is not None:
            yield record

    def _send_input(self) -> None:
        conn = self._connection()
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn.request("POST", "/api/v1", body=self._records(), encode_chunked=True, headers={
                **auth_headers(), "Content-Type": RECORDIO, "Message-Content-Type": JSON, "Accept": JSON,
                "Transfer-Encoding": "chunked"})
            response = conn.getresponse()
            if response.status not in (200, 404):  # 404: the command ended already
                text = response.read().decode(errors="replace").strip()
                sys.stderr.write(f"mezzo exec: input refused (HTTP {response.status}): {text}\r\n")
        conn.close()

    # ----------------------------------------------------------------- terminal

    @contextlib.contextmanager
    def _terminal(self) -> Iterator[None]:
        """Raw mode on our terminal for a TTY session (the remote terminal does the echoing
        and line editing), restored however we leave."""
        if not self.tty:
            yield
            return
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        try:
            tty.setraw(fd, termios.TCSANOW)
            yield
        finally:
            termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


def _terminal_size() -> tuple[int, int]:
    size = shutil.get_terminal_size()
    with contextlib.suppress(OSError):
        size = os.get_terminal_size(sys.stdin.fileno())
    return size.lines, size.columns
