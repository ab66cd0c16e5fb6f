"""The one place tests start and stop real subprocesses (masters, agents, ZooKeeper).

Owns what every process harness needs, so that `agent_harness` (a master and agents reporting
`listening on URL`), `ha_cluster` (masters contending on ZooKeeper), `zookeeper` (the JVM
servers) and `local_cluster` (`mezzo local`) differ only in what they start:

- `MEZZO`: the `mezzo` entry point of this interpreter's environment;
- `free_port` / `free_ports`: loopback ports nobody is bound to;
- `spawn`: a process in its own session (a Ctrl-C on pytest reaches pytest, not the child), its
  stderr appended to a log file;
- `wait_until` / `eventually` (async): poll a condition with a deadline (never a bare sleep);
- `stop_process`: a signal, a grace period, then SIGKILL, and always reaped;
- `log_tail`: the end of a log, for failure messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

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
    log_path: Path,
    *,
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
    text: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
) -> subprocess.Popen[Any]:
    """Start `argv` in its own session, stdin closed, stderr appended to `log_path` (stdout
    too when `stdout` is `subprocess.STDOUT`)."""
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed here after the fork
    try:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stderr=log, text=text,
            stdout=log if stdout == subprocess.STDOUT else stdout,
            env=None if env is None else dict(env), cwd=cwd, start_new_session=True,
        )
    finally:
        log.close()


def stop_process(
    proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Send `sig` (if it still runs), wait up to `timeout`, then SIGKILL; always reap it."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if sig != signal.SIGKILL:
                proc.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
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


