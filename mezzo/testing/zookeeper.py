"""Real ZooKeeper servers for tests: a standalone server and a 3-node ensemble on loopback.

The Debian ``zookeeper`` package is launched directly with ``java -cp <jars> QuorumPeerMain
<cfg>`` rather than through ``zkServer.sh``: the script reads /etc/zookeeper, writes logs under
/var/log and daemonises, while a direct child process gets a private config, data dir and log file
in a temp dir, and can be stopped, SIGKILLed and restarted by pid. JVM flags favour start-up time
(C1 only, serial GC, small heap): a server is ready in about a second.

Readiness is polled with the ``srvr`` four-letter word until the member reports a ``Mode:``
(standalone, leader or follower), i.e. it is actually serving, under a deadline; no bare sleeps.

``expire_session`` forces a real server-side session expiry: a second client attaches to the
same session id and password and closes it, the standard technique (the original client then
sees SESSION_EXPIRED -> KazooState.LOST when it next talks to the server).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kazoo.client import KazooClient, KazooState

from mezzo.testing import processes

JAVA_CANDIDATES = ("/usr/bin/java",)
JAR_DIRS = (Path("/usr/share/java"), Path("/usr/share/zookeeper"))
# The server's runtime dependencies in the Debian package (unversioned symlinks).
REQUIRED_JARS = ("zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "netty-all.jar")
OPTIONAL_JARS = ("slf4j-simple.jar", "metrics-core.jar", "commons-cli.jar", "snappy-java.jar")
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
JVM_FLAGS = (
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Dzookeeper.admin.enableServer=false",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
)
TICK_MS = 500  # session timeouts are bounded to [2, 20] ticks: 1 s .. 10 s

# Every process started here, so that an aborted test run (Ctrl-C, a crashed fixture) still
# leaves no JVM behind: atexit SIGKILLs whatever is still running.
_LIVE: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
    _LIVE.clear()


@dataclass(frozen=True)
class ZooKeeperInstall:
    java: str
    classpath: str


def _find_jar(name: str) -> Path | None:
    for directory in JAR_DIRS:
        candidate = directory / name
        if candidate.exists():
            return candidate
    return None


def find_zookeeper() -> tuple[ZooKeeperInstall | None, str]:
    """The java binary and server classpath, or None and the precise reason they are missing."""
    java = os.environ.get("MEZZO_JAVA") or next(
        (j for j in JAVA_CANDIDATES if os.access(j, os.X_OK)), shutil.which("java")
    )
    if java and not os.access(java, os.X_OK):
        return None, f"java at {java} (MEZZO_JAVA) is not executable"
    if not java:
        return None, "java not found (install a JRE, e.g. Debian package default-jre-headless)"
    jars: list[str] = []
    for name in REQUIRED_JARS:
        jar = _find_jar(name)
        if jar is None:
            where = " or ".join(str(d) for d in JAR_DIRS)
            return (
                None,
                f"ZooKeeper jar {name} not found in {where} (install Debian package zookeeper)",
            )
        jars.append(str(jar))
    jars.extend(str(j) for j in map(_find_jar, OPTIONAL_JARS) if j is not None)
    return ZooKeeperInstall(java=java, classpath=":".join(jars)), ""


free_ports = processes.free_ports


def four_letter_word(port: int, word: str, timeout: float = 2.0) -> str:
    """Send a four-letter command (``ruok``, ``srvr``, ``mntr``...) and return the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks: list[bytes] = []
        while chunk := s.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def server_mode(port: int) -> str | None:
    """'standalone', 'leader' or 'follower' when the server is serving; None otherwise."""
    try:
        reply = four_letter_word(port, "srvr")
    except OSError:
        return None
    for line in reply.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


wait_until = processes.wait_until


@dataclass
class ZooKeeperServer:
    """One ZooKeeper process (standalone, or member ``myid`` of an ensemble)."""

    install: ZooKeeperInstall
    data_dir: Path
    client_port: int
    myid: int = 0
    peers: dict[int, tuple[int, int]] = field(default_factory=dict)  # myid -> (quorum, election)
    process: subprocess.Popen[bytes] | None = None

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def _write_config(self) -> Path:
        lines = [
            f"tickTime={TICK_MS}",
            "initLimit=20",
            "syncLimit=10",
            f"dataDir={self.data_dir / 'data'}",
            f"clientPort={self.client_port}",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            "maxClientCnxns=0",
            # Snapshots and logs are tiny in tests; keep purging off and fsync on (default).
        ]
        for peer, (quorum, election) in sorted(self.peers.items()):
            lines.append(f"server.{peer}=127.0.0.1:{quorum}:{election}")
        if self.peers:
            (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
            (self.data_dir / "data" / "myid").write_text(f"{self.myid}\n")
        cfg = self.data_dir / "zoo.cfg"
        cfg.write_text("\n".join(lines) + "\n")
        return cfg

    def start(self) -> None:
        """Launch the process (does not wait; see ``wait_serving``)."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cfg = self._write_config()
        # Its own session: a Ctrl-C on pytest must not reach the JVM first.
        self.process = processes.spawn(
            [self.install.java, *JVM_FLAGS, "-cp", self.install.classpath, MAIN_CLASS, str(cfg)],
            self.log_path, stdout=subprocess.STDOUT, cwd=self.data_dir,
        )
        _LIVE.add(self.process)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_serving(self, timeout: float = 30.0) -> None:
        def serving() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"ZooKeeper {self.hosts} exited with {self.process.returncode}; "
                    f"log tail:\n{self.log_tail()}"
                )
            return server_mode(self.client_port) is not None

        wait_until(serving, timeout, f"ZooKeeper {self.hosts} to serve (log: {self.log_path})")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if the JVM has not exited within ``timeout``."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to close sessions or sockets cleanly."""
        self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout: float) -> None:
        proc = self.process
        if proc is None:
            return
        processes.stop_process(proc, sig, timeout)
        _LIVE.discard(proc)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        return processes.log_tail(self.log_path, lines, missing="(no log)")


class ZooKeeperEnsemble:
    """``size`` ZooKeeper processes forming one quorum on 127.0.0.1."""

    def __init__(self, install: ZooKeeperInstall, base_dir: Path, size: int = 3) -> None:
        ports = free_ports(3 * size)
        peers = {i + 1: (ports[3 * i + 1], ports[3 * i + 2]) for i in range(size)}
        self.members = [
            ZooKeeperServer(
                install=install,
                data_dir=base_dir / f"zk{i + 1}",
                client_port=ports[3 * i],
                myid=i + 1,
                peers=peers,
            )
            for i in range(size)
        ]

    @property
    def hosts(self) -> str:
        return ",".join(m.hosts for m in self.members)

    def start(self, timeout: float = 60.0) -> None:
        for member in self.members:
            member.start()
        for member in self.members:
            member.wait_serving(timeout)

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def leader(self) -> ZooKeeperServer | None:
        return next(
            (m for m in self.members if m.running and server_mode(m.client_port) == "leader"), None
        )

    def wait_quorum(self, timeout: float = 60.0) -> None:
        """Wait until every running member serves (after a member stopped or restarted)."""
        for member in self.members:
            if member.running:
                member.wait_serving(timeout)


def start_server(base_dir: Path | None = None, timeout: float = 30.0) -> ZooKeeperServer:
    """A standalone server on a free port, serving; raises RuntimeError if ZooKeeper is absent."""
    install, reason = find_zookeeper()
    if install is None:
        raise RuntimeError(reason)
    base = base_dir or Path(tempfile.mkdtemp(prefix="mezzo-zk-"))
    server = ZooKeeperServer(install=install, data_dir=base, client_port=free_ports(1)[0])
    server.start()
    try:
        server.wait_serving(timeout)
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def running_server(base_dir: Path | None = None) -> Iterator[ZooKeeperServer]:
    server = start_server(base_dir)
    try:
        yield server
    finally:
        server.stop()


def expire_session(client: KazooClient, hosts: str, timeout: float = 20.0) -> None:
    """Make the server expire ``client``'s session and wait until the client reports LOST.

    A second connection presents the same session id and password (the server moves the session
    to it) and closes it: the server ends the session for good, exactly as on a timeout.
    """
    lost = False

    def listener(state: KazooState) -> bool:
        nonlocal lost
        if state == KazooState.LOST:
            lost = True
            return True  # remove this listener
        return False

    client.add_listener(listener)
    intruder = KazooClient(
        hosts=hosts, client_id=client.client_id, timeout=client._session_timeout / 1000
    )
    try:
        intruder.start(timeout=timeout)
    finally:
        intruder.stop()
        intruder.close()
    # The server closes the original connection when the session moves; kazoo reconnects,
    # learns of the expiry, and only then reports LOST.
    wait_until(lambda: lost, timeout, "the client to see its session expire")
