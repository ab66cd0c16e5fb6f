"""The one place tests start and stop real subprocesses (masters, agents, ZooKeeper).

Owns what every process harness needs, so that `agent_harness` (a master and agents reporting
`listening on URL`), `ha_cluster` (masters contending on ZooKeeper), `zookeeper` (the JVM
servers) and `local_cluster` (`mezzo local`) differ only in what they start:

- `MEZZO`: the `mezzo` entry point of this interpreter's environment;
- `free_port` / `free_ports`: loopback ports nobody is bound to;
- `spawn`: a process in its own session (a Ctrl-C on pytest reaches pytest, not the child), its
  stderr appended to a log file (or inherited), optionally dying with its parent;
- `StdoutReader`: a child's stdout read in a thread (it never blocks on a full pipe) until its
  `listening on URL` line;
- `wait_until` / `eventually` (async): poll a condition with a deadline (never a bare sleep);
- `stop_process` / `stop_processes`: a signal, a grace period, then SIGKILL, and always reaped;
- `is_live`: a process that runs and is not a zombie (one that exits while asked counts as gone);
- `log_tail`: the end of a log, for failure messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import psutil

MEZZO = str(Path(sys.executable).parent / "mezzo")


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports: all sockets are held open until every port is picked."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll `predicate` until it returns something truthy (returned); TimeoutError naming
    `what` after `timeout` seconds. The predicate may raise to fail at once (a process died)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


async def eventually(
    predicate: Callable[[], Any], timeout: float, what: str = "condition", interval: float = 0.02
) -> Any:
    """`wait_until` for async tests: the predicate may return an awaitable; the deadline is on
    the running loop's clock (so it follows an autojump FakeClock loop)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


def spawn(
    argv: Sequence[str],
    log_path: Path | None,
    *,
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
    text: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen[Any]:
    """Start `argv` in its own session, stdin closed, stderr appended to `log_path` (stdout
    too when `stdout` is `subprocess.STDOUT`; both inherited when `log_path` is None). With
    `die_with_parent` the child gets SIGTERM when this process dies (Linux), so a SIGKILLed
    launcher leaves nothing behind."""
    log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115 - closed below
    try:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stderr=log, text=text,
            stdout=log if stdout == subprocess.STDOUT else stdout,
            env=None if env is None else dict(env), cwd=cwd, start_new_session=True,
            preexec_fn=_set_parent_death_signal if die_with_parent else None,
        )
    finally:
        if log is not None:
            log.close()


def _set_parent_death_signal() -> None:
    """In the child: SIGTERM when the parent dies (PR_SET_PDEATHSIG); nothing off Linux."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class StdoutReader:
    """Reads a child's stdout (bytes or text) line by line in a daemon thread until it ends,
    so the child never blocks on a full pipe; keeps the lines, and the URL of the first
    `listening on URL` line (what mezzo daemons print once their port is bound)."""

    def __init__(self, proc: subprocess.Popen[Any]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.lines: list[str] = []
        self.url: str | None = None
        self.ended = threading.Event()
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[Any]) -> None:
        try:
            for raw in stream:
                line = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
                self.lines.append(line)
                if self.url is None and line.startswith("listening on "):
                    self.url = line.split("listening on ", 1)[1].strip()
        except (OSError, ValueError):
            pass
        finally:
            self.ended.set()

    def wait_url(self, timeout: float) -> str | None:
        """The URL once printed; None if the child exits, closes its stdout or takes longer
        than `timeout` seconds first."""
        deadline = time.monotonic() + timeout
        while self.url is None:
            if self.ended.is_set() or self.proc.poll() is not None \
                    or time.monotonic() > deadline:
                return self.url
            time.sleep(0.02)
        return self.url


def is_live(process: psutil.Process | int) -> bool:
    """Whether the process still runs and is not a zombie. A process may exit between any two
    reads of /proc, so every psutil error counts as gone rather than failing the caller."""
    try:
        proc = process if isinstance(process, psutil.Process) else psutil.Process(process)
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_process(
    proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Send `sig` (if it still runs), wait up to `timeout`, then SIGKILL; always reap it."""
    if proc is not None:
        stop_processes([proc], sig, timeout)


def stop_processes(
    procs: Sequence[subprocess.Popen[Any]], sig: int = signal.SIGTERM, timeout: float = 10.0,
    *, group: bool = False,
) -> None:
    """`stop_process` for several at once: `sig` to each that still runs, up to `timeout`
    seconds in all for them to end, then SIGKILL (to its whole process group if `group`: each
    leads its own session); every one is reaped."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if sig != signal.SIGKILL:
                    proc.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
                proc.send_signal(sig)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.kill()
            proc.wait(10.0)


def log_tail(path: Path | None, lines: int = 30, missing: str = "") -> str:
    """The last `lines` lines of `path` (`missing` if it cannot be read)."""
    if path is None:
        return missing
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return missing


