"""Shared helpers for the SDK and CLI tests: a real `mezzo master` subprocess on port 0.

(Named test_* only so it sits with the tests that use it; it defines no tests.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

MEZZO = [sys.executable, "-c", "from mezzo.cli.main import main; main()"]


class MasterProc:
    """`mezzo master --port 0` (or a given port) with an in-memory registry; kill() always."""

    def __init__(self, log_dir: Path, port: int = 0) -> None:
        self.log_path = log_dir / f"master-{os.getpid()}-{port}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *MEZZO,
                "master",
                "--ip",
                "127.0.0.1",
                "--port",
                str(port),
                "--registry",
                "in_memory",
                "--allocation_interval",
                "100ms",
            ],
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("listening on http://"):
            self.kill()
            raise RuntimeError(f"master did not start: {line!r}; log: {self.log()}")
        self.url = line.removeprefix("listening on ")
        self.address = self.url.removeprefix("http://")
        self.port = int(self.address.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


async def until(pred: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `pred` (sync or async) until truthy; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.02)
