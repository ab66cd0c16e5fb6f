"""The launcher's client of the command executor's fork server.

A command executor is a stdlib Python program; starting a fresh interpreter for each one costs
~10 ms of CPU, more than everything else a trivial task costs together. So the launcher keeps
one warm interpreter per agent, the fork server (`mezzo/executor/command_forkserver.py`, whose
docstring is the protocol), and asks it to fork each command executor. The forked executor is
what the exec'd one would be: the container's root process, leading its own session, stdio on
the sandbox files, held at the barrier while the isolators act, then running as the configured
user in the sandbox with exactly the container's environment.

Only a `ContainerConfig` marked ``fork_server`` (the agent's built-in command executor) goes
this way, and only when no isolator wraps the command (``namespaces/pid`` wraps it in
``unshare``: that container is exec'd as before). The server's children are its own, not the
agent's, so their exit statuses come back through it (``wait``) once their pidfd says they
ended. Any failure of the server (it cannot start, it died, it refused) falls back to a plain
exec for that launch; a server that died is replaced at the next launch, one that cannot start
is not tried again by this launcher.

When the agent exits, its end of the socket closes and the server exits; executors it forked
keep running, like executors of any agent that went away, and a restarted agent adopts them by
pid as usual.
"""

from __future__ import annotations

import array
import logging
import os
import socket
import subprocess
import threading
import weakref
from collections.abc import Mapping, Sequence

import msgspec

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 10.0
CALL_TIMEOUT_SECONDS = 10.0
_BUFFER_BYTES = 1 << 20


class ForkServerError(Exception):
    """The fork server failed after it was asked: whether it forked is unknown."""


class ForkServerUnavailable(ForkServerError):
    """The fork server did not act (it cannot start, or refused): exec'ing instead is safe."""


class _NotSent(ForkServerUnavailable):
    """The request could not be sent: the server is gone."""


class ForkServer:
    """One fork server process (started on first use) and the socket to it."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self._argv = list(argv)
        self._env = dict(os.environ if env is None else env)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._generation = 0  # which server forked a child: a replaced one cannot reap it
        self.broken: str | None = None  # why it cannot start: no further attempts
        self._finalizer: weakref.finalize | None = None

    # ---------------------------------------------------------------- calls

    def spawn(
        self,
        *,
        env: Mapping[str, str],
        cwd: str,
        stdout: int,
        stderr: int,
        barrier: int | None,
        user: tuple[int, int, list[int]] | None,
    ) -> tuple[int, int]:
        """Fork an executor; (pid, generation). ForkServerUnavailable if the server did not
        act, ForkServerError if it failed once asked."""
        request = {"op": "spawn", "env": dict(env), "cwd": cwd, "user": user}
        fds = [stdout, stderr] if barrier is None else [stdout, stderr, barrier]
        with self._lock:
            self._ensure_started()
            try:
                reply = self._call(request, fds)
            except _NotSent:  # it died since the last call: once more with a new one
                self._ensure_started()
                reply = self._call(request, fds)
            generation = self._generation
        pid = reply.get("pid")
        if not isinstance(pid, int):  # refused before forking (see command_forkserver.py)
            raise ForkServerUnavailable(f"fork server refused: {reply.get('error', reply)}")
        return pid, generation

    def wait(self, pid: int, generation: int) -> int | None:
        """Reap a child the server forked (it has ended); its raw wait status, None if
        unknown (the server that forked it is gone)."""
        with self._lock:
            if generation != self._generation or self._sock is None:
                return None
            try:
                reply = self._call({"op": "wait", "pid": pid}, [])
            except ForkServerError as e:
                log.warning("fork server: cannot reap %d: %s", pid, e)
                return None
        status = reply.get("status")
        return status if isinstance(status, int) else None

    def close(self) -> None:
        with self._lock:
            self._stop()

    # ---------------------------------------------------------------- internals

    def _ensure_started(self) -> None:
        if self._sock is not None:
            return
        if self.broken is not None:
            raise ForkServerUnavailable(self.broken)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            for s in (ours, theirs):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER_BYTES)
            proc = subprocess.Popen(
                [*self._argv, "--fork-server", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=self._env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # the terminal's signals are not for it
            )
        except OSError as e:
            ours.close()
            self.broken = f"cannot start the fork server: {e}"
            raise ForkServerUnavailable(self.broken) from e
        finally:
            theirs.close()
        ours.settimeout(START_TIMEOUT_SECONDS)
        try:
            ready = msgspec.json.decode(ours.recv(_BUFFER_BYTES))
        except (OSError, msgspec.DecodeError) as e:
            ours.close()
            _end(proc)
            self.broken = f"the fork server did not start: {e}"
            raise ForkServerUnavailable(self.broken) from e
        if ready != {"ready": True}:
            ours.close()
            _end(proc)
            self.broken = f"the fork server did not start: {ready!r}"
            raise ForkServerUnavailable(self.broken)
        ours.settimeout(CALL_TIMEOUT_SECONDS)
        self._sock, self._proc = ours, proc
        self._generation += 1
        self._finalizer = weakref.finalize(self, _shut, ours, proc)
        log.debug("fork server %d started", proc.pid)

    def _call(self, request: dict, fds: list[int]) -> dict:
        assert self._sock is not None
        payload = msgspec.json.encode(request)
        try:
            if fds:
                rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
                self._sock.sendmsg([payload], rights)
            else:
                self._sock.send(payload)
        except OSError as e:  # not sent (a seqpacket message goes whole or not at all)
            log.warning("fork server unreachable (%s); replacing it", e)
            self._stop()
            raise _NotSent(str(e)) from e
        try:
            data = self._sock.recv(_BUFFER_BYTES)
            if not data:
                raise EOFError("the fork server closed its socket")
            reply = msgspec.json.decode(data)
        except (OSError, EOFError, msgspec.DecodeError) as e:
            # Its state is unknown now: drop it; the next launch starts a new one.
            log.warning("fork server failed (%s); replacing it", e)
            self._stop()
            raise ForkServerError(str(e)) from e
        if not isinstance(reply, dict):
            raise ForkServerError(f"bad reply {reply!r}")
        return reply

    def _stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._sock = self._proc = None


def _shut(sock: socket.socket, proc: subprocess.Popen[bytes]) -> None:
    """Close the socket (the server exits on EOF) and reap the server."""
    sock.close()
    _end(proc)


def _end(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
