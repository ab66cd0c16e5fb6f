"""HA test and benchmark helpers: real `mezzo master --zk` processes and leader-following agents.

- `HaMaster`: one master process contending in ZooKeeper (`--port 0`, `--port_file`), with its
  log in a file, killable by pid (`kill()` is SIGKILL, as in the failover scenarios);
- `HaCluster`: N such masters on one election path; `wait_leader()` polls every live master's
  `/metrics/snapshot` (`master/elected`) and `/master/state` (200 once the registry is
  recovered) under a deadline;
- `FollowingEmulatedAgent`: the emulated agent (real agent protocol, no executors) whose master
  URL is whatever a shared leader source says now, so 1,000 agents can follow a failover with
  one ZooKeeper detector between them instead of 1,000 sessions.

Everything started here is stopped by `close()`; processes are only ever signalled by the pids
this module started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from mezzo.net.client import StreamRefused
from mezzo.testing import processes
from mezzo.testing.emulated_agent import EmulatedAgent

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]


def http_get(url: str, timeout: float = 2.0) -> tuple[int, dict[str, str], bytes]:
    """GET without following redirects: (status, headers, body); status 0 when unreachable."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except (OSError, urllib.error.URLError):
        return 0, {}, b""


until = processes.wait_until


@dataclass
class HaMaster:
    """A `mezzo master --zk` process."""

    name: str
    zk: str
    work_dir: Path
    extra: list[str] = field(default_factory=list)
    # What runs `mezzo` (e.g. under a profiler: `mezzo.testing.profiled`).
    launcher: list[str] = field(default_factory=lambda: [processes.MEZZO])
    proc: subprocess.Popen[bytes] | None = None
    port: int | None = None

    @property
    def log_path(self) -> Path:
        return self.work_dir / f"{self.name}.log"

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.hostport}"

    def start(self, timeout: float = 30.0) -> None:
        port_file = self.work_dir / f"{self.name}.port"
        port_file.unlink(missing_ok=True)
        self.proc = processes.spawn(
            [*self.launcher, "master", "--ip", "127.0.0.1", "--port", "0",
             "--port_file", str(port_file), "--zk", self.zk,
             "--work_dir", str(self.work_dir / self.name), *self.extra],
            self.log_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

        def bound() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"master {self.name} exited:\n{self.log_tail()}")
            return port_file.exists()

        until(bound, timeout, f"master {self.name} to listen")
        self.port = int(port_file.read_text())

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no goodbye to ZooKeeper, its session (and node) live until they expire."""
        processes.stop_process(self.proc, signal.SIGKILL)

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> None:
        processes.stop_process(self.proc, signal.SIGTERM, timeout)  # SIGCONTs a paused one

    def metrics(self) -> dict[str, float] | None:
        status, _, body = http_get(self.url + "/metrics/snapshot")
        return json.loads(body) if status == 200 else None

    def is_serving_leader(self) -> bool:
        """Elected and recovered: `/master/state` answers 200 rather than 307/503."""
        if not self.alive:
            return False
        metrics = self.metrics()
        if not metrics or metrics.get("master/elected") != 1.0:
            return False
        return http_get(self.url + "/master/state")[0] == 200

    def state(self) -> dict[str, Any]:
        status, _, body = http_get(self.url + "/master/state", timeout=5.0)
        if status != 200:
            raise RuntimeError(f"/master/state of {self.name} answered {status}: {body[:200]!r}")
        return json.loads(body)

    def log_tail(self, lines: int = 40) -> str:
        return processes.log_tail(self.log_path, lines)


class HaCluster:
    """`count` masters contending on `zk` (a `zk://hosts/path` URL)."""

    def __init__(
        self,
        zk: str,
        count: int = 3,
        *,
        work_dir: Path | None = None,
        session_timeout: str = "2secs",
        extra: list[str] | None = None,
        launcher: list[str] | None = None,
    ) -> None:
        self.zk = zk
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="mezzo-ha-"))
        flags = ["--zk_session_timeout", session_timeout, "--quorum", str(count // 2 + 1),
                 "--allocation_interval", "100ms", "--logging_level", "INFO", *(extra or [])]
        self.masters = [HaMaster(f"m{i}", zk, self.work_dir, flags, launcher or [processes.MEZZO])
                        for i in range(count)]

    def start(self) -> None:
        for master in self.masters:
            master.start()

    def wait_leader(self, timeout: float = 30.0, exclude: HaMaster | None = None) -> HaMaster:
        """The one live master that leads and serves (exactly one must)."""

        def serving() -> HaMaster | None:
            leaders = [m for m in self.masters if m is not exclude and m.is_serving_leader()]
            assert len(leaders) <= 1, f"two serving leaders: {[m.name for m in leaders]}"
            return leaders[0] if leaders else None

        try:
            leader: HaMaster = until(serving, timeout, "a serving leader", interval=0.05)
        except TimeoutError:
            raise TimeoutError("no serving leader:\n" + "\n".join(
                f"--- {m.name}\n{m.log_tail(15)}" for m in self.masters)) from None
        return leader

    def standbys(self, leader: HaMaster) -> list[HaMaster]:
        return [m for m in self.masters if m is not leader and m.alive]

    def close(self) -> None:
        for master in self.masters:
            master.stop()

    def __enter__(self) -> HaCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LeaderSource:
    """One ZooKeeper detector shared by every agent of a process: the leader's URL now, and a
    way to wait (bounded) for the next change. Create and `start()` it inside the loop."""

    def __init__(self, zk: str, session_timeout: float = 10.0) -> None:
        from mezzo.election.zookeeper import ZooKeeperDetector

        self.detector = ZooKeeperDetector(zk, session_timeout=session_timeout)
        self._changed = asyncio.Event()
        self.changed_at: float | None = None  # time.monotonic() of the last leader change

    def start(self) -> None:
        self.detector.on_change(self._on_change, loop=asyncio.get_running_loop())
        self.detector.start()

    def close(self) -> None:
        self.detector.close()

    def _on_change(self, leader: object) -> None:
        self.changed_at = time.monotonic()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def url(self) -> str | None:
        leader = self.detector.leader()
        return None if leader is None else f"http://{leader.address}"

    async def wait_change(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)


class FollowingEmulatedAgent(EmulatedAgent):
    """An emulated agent that always talks to the master `leader_url()` names right now.

    `leader_url()` returns `http://host:port` or None (no leader known: the agent retries).
    A stream to a master that is no longer the leader breaks when that master dies or exits,
    and the agent re-registers with the new one carrying its tasks. Retries back off with
    jitter (as a real agent's registration backoff does) so that a thousand agents do not
    hammer a dead or recovering master in lockstep; with a `source`, a leader change ends the
    wait at once.
    """

    BACKOFF_INITIAL = 0.1
    BACKOFF_MAX = 1.0
    # With a `source`, a master that refuses connections is dead (or not yet listening): a
    # leader change ends the wait at once, so waiting longer costs a failover nothing, while
    # retrying it every ~0.1-1 s (a SUBSCRIBE encoded and a connect each time) cost thousands
    # of agents seconds of their processes' CPU during an election.
    DEAD_MASTER_WAIT = 2.0

    def __init__(
        self,
        leader_url: Callable[[], str | None],
        *,
        source: LeaderSource | None = None,
        **kwargs: Any,
    ) -> None:
        self._leader_url = leader_url
        self._source = source
        super().__init__("http://leader.invalid", **kwargs)

    @property  # type: ignore[override]
    def master_url(self) -> str:
        url = self._leader_url()
        if url is None:
            raise OSError("no leading master known")
        return url

    @master_url.setter
    def master_url(self, value: str) -> None:
        pass  # the base class sets a fixed URL; the leader source decides instead

    async def _run(self) -> None:
        retry = asyncio.create_task(self._retry_loop())
        backoff = self.BACKOFF_INITIAL
        try:
            while not self._stopping:
                tried = self._leader_url()
                refused = False
                try:
                    await self._subscribe_and_listen()
                except (aiohttp.ClientError, StreamRefused, OSError) as exc:
                    log.debug("agent %s: stream ended (%s)", self.agent_id, exc)
                    # aiohttp wraps the connect's error (ClientConnectorError.os_error)
                    refused = isinstance(getattr(exc, "os_error", exc), ConnectionRefusedError)
                if self.subscribed.is_set():
                    backoff = self.BACKOFF_INITIAL  # it worked until the stream broke
                self.subscribed.clear()
                if self._stopping:
                    break
                if self._leader_url() != tried:
                    backoff = self.BACKOFF_INITIAL
                    continue
                delay = random.uniform(0, backoff)
                backoff = min(backoff * 2, self.BACKOFF_MAX)
                if refused and self._source is not None:
                    delay = random.uniform(0.5, 1.0) * self.DEAD_MASTER_WAIT
                if self._source is not None:
                    await self._source.wait_change(delay)
                else:
                    await asyncio.sleep(delay)
        finally:
            retry.cancel()
