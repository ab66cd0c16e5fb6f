"""The probes of checks and health checks (`checks_core.py` decides when; this module runs
them): a COMMAND in a subprocess, an HTTP(S) GET and a TCP connect on non-blocking sockets.
Stdlib only (`_socket`, `posix`, `select`; `ssl` only for an HTTPS probe), for the built-in
executors' start-up time.

`ProbeRunner` is driven by an executor's poll loop: `start(probe_id, spec)` begins a probe
(an immediate `ProbeDone` if it cannot start), `poll_fds()` lists what to wait for,
`ready(fd, events)` advances the probe owning `fd` and returns the `ProbeDone`s of probes that
ended, `abort(probe_id)` stops one (SIGKILL to a command's process group, which is then reaped
in the background; a socket closed). Timeouts are the core's: it aborts a probe that is late.

- COMMAND: `posix_spawn` of the command in its own process group, stdin `/dev/null`, stdout
  and stderr on the executor's stderr (Mesos's checker does the same), in the task's directory
  and environment. Result: the exit code; killed by a signal is an error.
- HTTP: ``GET <path> HTTP/1.1`` with ``Connection: close`` to ``host:port``; the status code
  of the response once its head has arrived. 3xx with a `Location` on the same host (a path or
  an ``http(s)://`` URL naming 127.0.0.1, ::1 or localhost) is followed, at most
  MAX_REDIRECTS times, as ``curl -L`` does for Mesos; HTTPS without certificate checks
  (``curl -k``). A refused or broken connection is an error.
- TCP: a connection established is True, refused or failed is False.
"""

import _signal
import _socket
import posix
import select

if __package__:  # imported as mezzo.executor.checks_probe (tests, tools)
    from . import checks_core as checks
else:  # run by the agent as a script: this directory is sys.path[0] (see command.py)
    import checks_core as checks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_REDIRECTS = 10
MAX_HEAD_BYTES = 65536
_USER_AGENT = "mezzo-health-check"
_POLLOUT = select.POLLOUT
_POLLIN = select.POLLIN
_LOCAL_HOSTS = ("127.0.0.1", "::1", "[::1]", "localhost")
# `ssl`'s "try again when the socket is ready" errors (named: `ssl` is imported only for HTTPS).
_TLS_WANT = ("SSLWantReadError", "SSLWantWriteError")


def _signal_name(sig: int) -> str:
    for name in dir(_signal):
        if name.startswith("SIG") and not name.startswith("SIG_") and getattr(_signal, name) == sig:
            return name
    return str(sig)


class _Command:
    """A COMMAND probe's process."""

    def __init__(self, probe_id: object, pid: int, pidfd: int | None) -> None:
        self.probe_id = probe_id
        self.pid = pid
        self.pidfd = pidfd


class _Http:
    """An HTTP or TCP probe's connection, one step at a time."""

    def __init__(self, probe_id: object, spec: "checks.ProbeSpec") -> None:
        self.probe_id = probe_id
        self.spec = spec
        self.kind = spec.kind
        self.host = spec.host
        self.port = spec.port
        self.path = spec.path or "/"
        self.tls = spec.kind == "HTTP" and spec.scheme == "https"
        self.redirects = 0
        self.sock: Any = None
        self.phase = "connect"  # connect, handshake, send, head
        self.out = b""
        self.head = bytearray()
        self.want = _POLLOUT  # what the TLS handshake waits for

    def open(self) -> None:
        family = _socket.AF_INET6 if ":" in self.host else _socket.AF_INET
        self.sock = _socket.socket(family, _socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.phase = "connect"
        self.head = bytearray()
        try:  # noqa: SIM105 - contextlib would cost an import at start-up
            self.sock.connect((self.host, self.port))
        except (BlockingIOError, InterruptedError):
            pass  # in progress: writable once done

    def events(self) -> int:
        if self.phase in ("connect", "send"):
            return _POLLOUT
        if self.phase == "handshake":
            return self.want
        return _POLLIN

    def close(self) -> None:
        if self.sock is not None:
            try:  # noqa: SIM105 - contextlib would cost an import at start-up
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def step(self) -> "tuple[int | bool | None, str | None] | None":
        """Advance after a poll event; (result, error) once the probe is over, else None."""
        try:
            return self._step()
        except OSError as exc:
            if self.kind == "TCP":
                return False, None
            return None, f"HTTP probe of port {self.port} failed: {exc}"

    def _step(self) -> "tuple[int | bool | None, str | None] | None":
        if self.phase == "connect":
            error = self.sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
            if error:
                if self.kind == "TCP":
                    return False, None
                return None, f"cannot connect to {self.host}:{self.port}: {posix.strerror(error)}"
            if self.kind == "TCP":
                return True, None
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.out = (
                f"GET {self.path} HTTP/1.1\r\nHost: {host}:{self.port}\r\n"
                f"User-Agent: {_USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            ).encode("latin-1")
            if self.tls:
                import ssl  # only for an HTTPS probe (start-up time)

                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # curl -k, as Mesos's checker
                self.sock = context.wrap_socket(self.sock, do_handshake_on_connect=False)
                self.phase = "handshake"
                self.want = _POLLOUT
                return self._step()
            self.phase = "send"
        if self.phase == "handshake":
            import ssl

            try:
                self.sock.do_handshake()
            except ssl.SSLWantReadError:
                self.want = _POLLIN
                return None
            except ssl.SSLWantWriteError:
                self.want = _POLLOUT
                return None
            self.phase = "send"
        if self.phase == "send":
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                if type(exc).__name__ in _TLS_WANT:
                    return None
                raise
            self.out = self.out[sent:]
            if self.out:
                return None
            self.phase = "head"
            return None
        # phase "head": read until the response's head is complete.
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                if type(exc).__name__ in _TLS_WANT:
                    return None
                raise
            if not data:
                return None, "connection closed before a complete response"
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end >= 0:
                return self._response(bytes(self.head[:end]))
            if len(self.head) > MAX_HEAD_BYTES:
                return None, "response head too large"

    def _response(self, head: bytes) -> "tuple[int | bool | None, str | None] | None":
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            return None, f"unexpected response {lines[0][:80]!r}"
        code = int(parts[1])
        if 300 <= code < 400 and self.redirects < MAX_REDIRECTS:
            location = ""
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "location":
                    location = value.strip()
            target = self._redirect_target(location)
            if target is not None:
                self.close()
                self.redirects += 1
                self.tls, self.host, self.port, self.path = target
                self.open()
                return None
        return code, None

    def _redirect_target(self, location: str) -> "tuple[bool, str, int, str] | None":
        """Where a redirect leads, if it stays on this machine; None to stop there."""
        if location.startswith("/"):
            return self.tls, self.host, self.port, location
        for scheme, tls, default_port in (("http://", False, 80), ("https://", True, 443)):
            if location.startswith(scheme):
                rest = location[len(scheme):]
                authority, slash, path = rest.partition("/")
                if authority.startswith("["):
                    host, _, port_text = authority[1:].partition("]")
                    port_text = port_text.removeprefix(":")
                else:
                    host, _, port_text = authority.partition(":")
                if host not in _LOCAL_HOSTS:
                    return None
                if host == "localhost":
                    host = "127.0.0.1"
                port = int(port_text) if port_text.isdigit() else default_port
                return tls, host, port, slash + path
        return None


class ProbeRunner:
    """The probes in flight of one executor (see the module docstring)."""

    def __init__(self, env: "dict[str, str]") -> None:
        self.env = env  # the executor's environment, under each command's
        self.commands: dict[object, _Command] = {}
        self.sockets: dict[object, _Http] = {}
        self.orphans: dict[int, int | None] = {}  # aborted commands to reap: pid -> pidfd

    def start(self, probe_id: object, spec: "checks.ProbeSpec") -> "checks.ProbeDone | None":
        """Begin a probe; a `ProbeDone` right away if it cannot start."""
        if spec.kind == "COMMAND":
            return self._spawn(probe_id, spec)
        probe = _Http(probe_id, spec)
        try:
            probe.open()
        except OSError as exc:
            probe.close()
            if spec.kind == "TCP":
                return checks.ProbeDone(probe_id, False, None)
            return checks.ProbeDone(probe_id, None, f"cannot connect: {exc}")
        self.sockets[probe_id] = probe
        return None

    def abort(self, probe_id: object) -> None:
        command = self.commands.pop(probe_id, None)
        if command is not None:
            try:  # noqa: SIM105
                posix.killpg(command.pid, _signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.orphans[command.pid] = command.pidfd
            self._reap_orphans()
        probe = self.sockets.pop(probe_id, None)
        if probe is not None:
            probe.close()

    def abort_all(self) -> None:
        for probe_id in list(self.commands) + list(self.sockets):
            self.abort(probe_id)

    def poll_fds(self) -> "list[tuple[int, int]]":
        """(fd, events) to poll for."""
        fds = [(c.pidfd, _POLLIN) for c in self.commands.values() if c.pidfd is not None]
        fds += [(fd, _POLLIN) for fd in self.orphans.values() if fd is not None]
        fds += [(p.sock.fileno(), p.events()) for p in self.sockets.values()]
        return fds

    def needs_polling(self) -> bool:
        """True while a command runs without a pidfd (Linux < 5.3): call `ready(-1, 0)` often."""
        return any(c.pidfd is None for c in self.commands.values()) or any(
            fd is None for fd in self.orphans.values()
        )

    def ready(self, fd: int, events: int) -> "list[checks.ProbeDone]":
        """Advance what waits on `fd` (-1: check every command); the probes that ended."""
        done: list[checks.ProbeDone] = []
        for probe_id, command in list(self.commands.items()):
            if fd != -1 and command.pidfd != fd:
                continue
            try:
                pid, status = posix.waitpid(command.pid, posix.WNOHANG)
            except ChildProcessError:
                pid, status = command.pid, -1
            if not pid:
                continue
            del self.commands[probe_id]
            if command.pidfd is not None:
                posix.close(command.pidfd)
            done.append(_command_result(probe_id, status))
        for probe_id, probe in list(self.sockets.items()):
            if probe.sock is None or (fd != -1 and probe.sock.fileno() != fd):
                continue
            outcome = probe.step()
            if outcome is not None:
                probe.close()
                del self.sockets[probe_id]
                done.append(checks.ProbeDone(probe_id, outcome[0], outcome[1]))
        if self.orphans:
            self._reap_orphans()
        return done

    def close(self) -> None:
        self.abort_all()

    # ---------------------------------------------------------------- commands

    def _spawn(self, probe_id: object, spec: "checks.ProbeSpec") -> "checks.ProbeDone | None":
        env = dict(self.env)
        env.update(spec.env)
        try:
            program = _resolve()(spec.program, env)
            actions = [
                (posix.POSIX_SPAWN_OPEN, 0, "/dev/null", posix.O_RDONLY, 0),
                (posix.POSIX_SPAWN_DUP2, 2, 1),
            ]
            cwd = posix.getcwd() if spec.cwd else None
            if spec.cwd:
                posix.chdir(spec.cwd)  # the child inherits it (posix_spawn has no cwd)
            try:
                pid = posix.posix_spawn(
                    program, spec.argv, env, file_actions=actions, setpgroup=0,
                    setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),
                )
            finally:
                if cwd is not None:
                    posix.chdir(cwd)
        except (OSError, ValueError, TypeError) as exc:
            return checks.ProbeDone(probe_id, None, f"Failed to create subprocess: {exc}")
        try:
            pidfd: int | None = posix.pidfd_open(pid)
        except (AttributeError, OSError):  # pragma: no cover - Linux < 5.3
            pidfd = None
        self.commands[probe_id] = _Command(probe_id, pid, pidfd)
        return None

    def _reap_orphans(self) -> None:
        for pid, pidfd in list(self.orphans.items()):
            try:
                reaped, _status = posix.waitpid(pid, posix.WNOHANG)
            except ChildProcessError:
                reaped = pid
            if reaped:
                del self.orphans[pid]
                if pidfd is not None:
                    posix.close(pidfd)


def _command_result(probe_id: object, status: int) -> "checks.ProbeDone":
    if status >= 0 and posix.WIFEXITED(status):
        return checks.ProbeDone(probe_id, posix.WEXITSTATUS(status), None)
    if status >= 0 and posix.WIFSIGNALED(status):
        sig = _signal_name(posix.WTERMSIG(status))
        return checks.ProbeDone(probe_id, None, f"Command terminated with signal {sig}")
    return checks.ProbeDone(probe_id, None, "Failed to reap the command process")


def _resolve() -> "Any":
    """`executor_loop.resolve` (execvp-style PATH lookup), imported when first needed:
    that module imports this one."""
    if __package__:
        from .executor_loop import resolve
    else:
        from executor_loop import resolve
    return resolve
