"""A master and N agents as subprocesses on this machine: `mezzo local`, `mezzo demo`, tests.

Owns starting them (each in its own session, each agent with its own work_dir, port and a
distinct `host` attribute and `ports` range so locality and port choices mean something on one
machine), waiting until every agent has registered, and stopping *everything* they started:
  1. SIGTERM the agents, then the master; SIGKILL after a grace period;
  2. kill what is left of every process that was a descendant of them (executors and tasks run
     in their own sessions, so a dead agent's children are reparented, not killed), and of
     every process carrying this cluster's marker in its environment (set on the agents, so
     inherited by executors and tasks unless a containerizer scrubs the environment).

Blocking (subprocess + urllib) on purpose: the CLI and tests use it from plain code, asyncio
code calls `start`/`stop` in a thread. Processes are started, read, polled and stopped with
`mezzo.testing.processes`, as every other test harness does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from mezzo.testing.processes import StdoutReader, log_tail, spawn, stop_processes, wait_until

MARKER = "MEZZO_LOCAL_CLUSTER"
DEFAULT_AGENT_RESOURCES = "cpus:4;mem:4096;disk:8192"
# argv that runs the `mezzo` command with this interpreter (no reliance on PATH).
MEZZO_ARGV = [sys.executable, "-c", "import sys; from mezzo.cli.main import main; main()"]


class ClusterError(RuntimeError):
    """The cluster could not be started (a process exited or did not come up in time)."""


def ephemeral_port_start() -> int:
    """The first port the kernel hands out for outgoing connections (Linux default 32768)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def ports_span_for(agents: int, base: int) -> int:
    """Ports per agent: up to 1,000 each, all below the ephemeral range. All agents share one
    host here, so their ranges must not overlap; and a task cannot bind a port that an outgoing
    connection (any client on the machine) happens to use as its local port, which is why
    Mesos's default range, 31000-32000, ends below 32768."""
    room = ephemeral_port_start() - base
    if room < agents:  # an unusual kernel setting: fall back to Mesos's default region
        room = 32768 - base
    return max(1, min(1000, room // max(agents, 1)))


@dataclass
class ClusterSpec:
    agents: int = 3
    work_dir: str | None = None  # None: a fresh temporary directory, removed on stop
    master_port: int = 0
    ip: str = "127.0.0.1"
    agent_resources: str = DEFAULT_AGENT_RESOURCES
    # Each agent gets ports [base + i*span, base + i*span + span - 1] unless resources name ports.
    # None: as many as fit below the kernel's ephemeral ports (see `ports_span_for`).
    ports_base: int = 31000
    ports_span: int | None = None
    master_args: list[str] = field(default_factory=list)
    agent_args: list[str] = field(default_factory=list)
    # Headers of the cluster's own requests to the master (its credential when it is secured).
    master_headers: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 30.0
    stop_grace: float = 10.0
    # Where the processes' stderr goes: None inherits ours; otherwise log files in work_dir.
    quiet: bool = True


@dataclass
class Node:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes]
    url: str = ""
    log_path: Path | None = None


class LocalCluster:
    def __init__(self, spec: ClusterSpec | None = None) -> None:
        self.spec = spec or ClusterSpec()
        self.marker = uuid.uuid4().hex
        self._own_dir = self.spec.work_dir is None
        self.work_dir = Path(self.spec.work_dir or tempfile.mkdtemp(prefix="mezzo-local-"))
        self.master: Node | None = None
        self.agents: list[Node] = []
        self._nodes: list[Node] = []  # every process started, in start order
        self._descendants: dict[int, psutil.Process] = {}
        self._stop_lock = threading.Lock()
        self._stopped = False

    # ------------------------------------------------------------------ addresses

    @property
    def master_url(self) -> str:
        assert self.master is not None, "cluster not started"
        return self.master.url

    @property
    def master_address(self) -> str:
        """HOST:PORT, the form `--master` takes."""
        return self.master_url.split("://", 1)[-1].rstrip("/")

    # ------------------------------------------------------------------ start

    def start(self) -> LocalCluster:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        spec = self.spec
        self.work_dir.mkdir(parents=True, exist_ok=True)
        master_dir = self.work_dir / "master"
        master_dir.mkdir(exist_ok=True)
        self.master = self._spawn(
            "master",
            [
                "master",
                "--ip",
                spec.ip,
                "--port",
                str(spec.master_port),
                "--work_dir",
                str(master_dir),
                *spec.master_args,
            ],
        )
        for i in range(1, spec.agents + 1):
            agent_dir = self.work_dir / f"agent-{i}"
            agent_dir.mkdir(exist_ok=True)
            resources = spec.agent_resources
            if "ports" not in resources:
                span = spec.ports_span or ports_span_for(spec.agents, spec.ports_base)
                lo = spec.ports_base + (i - 1) * span
                resources = f"{resources};ports:[{lo}-{lo + span - 1}]"
            self.agents.append(
                self._spawn(
                    f"agent-{i}",
                    [
                        "agent",
                        "--master",
                        self.master_address,
                        "--ip",
                        spec.ip,
                        "--port",
                        "0",
                        "--work_dir",
                        str(agent_dir),
                        "--resources",
                        resources,
                        "--attributes",
                        f"host:agent-{i};rack:rack-{(i - 1) % 2 + 1}",
                        *spec.agent_args,
                    ],
                )
            )
        self.wait_for_agents(spec.agents, spec.start_timeout)

    def _spawn(self, name: str, args: list[str]) -> Node:
        env = dict(os.environ)
        env[MARKER] = self.marker
        log_path = self.work_dir / f"{name}.log" if self.spec.quiet else None
        # Each in its own session (our Ctrl-C is ours to handle, not theirs), dying with us so
        # that a SIGKILLed `mezzo local` does not leave a master and agents behind.
        proc = spawn([*MEZZO_ARGV, *args], log_path, stdout=subprocess.PIPE, env=env,
                     die_with_parent=True)
        node = Node(name=name, argv=args, proc=proc, log_path=log_path)
        self._nodes.append(node)  # before waiting for it, so a failure still stops it
        node.url = self._read_url(node)
        return node

    def _read_url(self, node: Node) -> str:
        """The `listening on http://IP:PORT` line; stdout is drained in the background after
        it, so the child never blocks on a full pipe."""
        reader = StdoutReader(node.proc)
        url = reader.wait_url(self.spec.start_timeout)
        if url is None:
            line = reader.lines[0].strip() if reader.lines else ""
            detail = self._tail(node)
            raise ClusterError(
                f"{node.name} did not start (exit {node.proc.poll()}): {line or 'no output'}"
                + (f"\n{detail}" if detail else "")
            )
        return url.rstrip("/")

    @staticmethod
    def _tail(node: Node, lines: int = 15) -> str:
        return log_tail(node.log_path, lines)

    # ------------------------------------------------------------------ queries

    def state(self, timeout: float = 5.0) -> dict:
        """The master's `/master/state` as JSON."""
        request = urllib.request.Request(f"{self.master_url}/master/state", headers=self.spec.master_headers)
        context = None
        if self.master_url.startswith("https://"):
            from mezzo.security.tls import process_tls

            # A TLS cluster (LIBPROCESS_SSL_* in this environment): trust its CA.
            context = process_tls().client_context()
        with urllib.request.urlopen(request, timeout=timeout, context=context) as r:
            return json.loads(r.read())

    def wait_for_agents(self, count: int, timeout: float) -> dict:
        last_error = "no answer"

        def ready() -> dict | None:
            nonlocal last_error
            for node in self._nodes:
                if node.proc.poll() is not None:
                    raise ClusterError(
                        f"{node.name} exited with {node.proc.returncode}\n{self._tail(node)}"
                    )
            try:
                state = self.state()
            except (OSError, ValueError) as e:
                last_error = str(e)
                return None
            active = [a for a in state.get("slaves", []) if a.get("active", True)]
            if len(active) >= count:
                return state
            last_error = f"{len(active)} of {count} agents registered"
            return None

        try:
            state: dict = wait_until(ready, timeout, f"{count} agents", interval=0.1)
        except TimeoutError:
            raise ClusterError(f"cluster not ready after {timeout:.0f}s: {last_error}") from None
        return state

    # ------------------------------------------------------------------ stop

    def _remember_descendants(self) -> None:
        for node in self._nodes:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(node.proc.pid).children(recursive=True):
                    self._descendants.setdefault(child.pid, child)

    def marked_processes(self) -> list[psutil.Process]:
        """Live processes (other than us) whose environment carries this cluster's marker."""
        found = []
        me = os.getpid()
        for proc in psutil.process_iter():
            if proc.pid == me:
                continue
            with contextlib.suppress(psutil.Error):
                if proc.environ().get(MARKER) == self.marker:
                    found.append(proc)
        return found

    def stop(self) -> None:
        """Stop every process of the cluster (idempotent, safe from a signal handler thread)."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            self._remember_descendants()
            # Agents first (while the master can still see them go), then the master.
            agents = [n for n in self._nodes if n.name != "master"]
            masters = [n for n in self._nodes if n.name == "master"]
            for group in (agents, masters):
                stop_processes([n.proc for n in group], signal.SIGTERM, self.spec.stop_grace,
                               group=True)
            self._remember_descendants()
            leftovers = list(self._descendants.values()) + self.marked_processes()
            for proc in leftovers:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(leftovers, timeout=5)
            if self._own_dir:
                shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
