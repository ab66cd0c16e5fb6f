"""The launcher: start a container's root process, adopt one after a restart, signal it.

Process model (spec §6.1): every container runs in its **own session and process group**
(``setsid``), so an executor may ``killpg(0, ...)`` without touching the agent, and the agent
can signal the whole container through its process group. The root process's pid is the
session id and process group id, which also guards recovery against pid reuse: a checkpointed
pid is only adopted while ``getsid(pid) == pid`` (a session leader cannot leave its session).

Isolation before the first instruction: when an isolator must act before the executor runs
(cgroups, rlimits), the process starts as a tiny ``/bin/sh`` shim that blocks reading a pipe
(its stdin); the agent writes the pid into the cgroups, applies rlimits, then releases the
barrier and the shim ``exec``\\ s the command with stdin redirected to ``/dev/null``. If the
agent closes the pipe without releasing, the shim exits 127 without running anything.
Cost, measured on the development VM: ~0.2 ms to spawn (vfork+exec), ~1 ms to run ``true``
end to end through the barrier. The shim is a shell, not Python: a Python helper would add
~20 ms of interpreter start-up per launch, and ``preexec_fn`` would run Python between fork and
exec (unsafe in a threaded agent, and it disables CPython's vfork fast path).

stdout and stderr go where the container logger (`logger.py`) says: appended to
``<sandbox>/stdout`` and ``<sandbox>/stderr`` by default, or through pipes to a rotating logger
process; the working directory is the sandbox.

A container given its own stdio (``ContainerConfig.stdio``: the pipes or pty of the agent's
I/O switchboard, for nested containers and exec sessions) always starts through the shim; its
barrier line is written to the container's own stdin, which the command then keeps; with a
pty the barrier comes on a pipe instead (a terminal would echo it) and the command re-opens
the slave on all three streams, which makes it its controlling terminal.

The built-in command executor (a ``ContainerConfig`` marked ``fork_server``) is not exec'd but
forked from a warm interpreter, the command executor's fork server (`forkserver.py`), unless an
isolator wraps the command; the process model above, the barrier included, is the same.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from mezzo.agent.containerizer.forkserver import (
    ForkServer,
    ForkServerError,
    ForkServerUnavailable,
)
from mezzo.agent.containerizer.logger import ContainerLogger, SandboxLogger
from mezzo.agent.containerizer.paths import stderr_path, stdout_path
from mezzo.agent.containerizer.records import ContainerConfig, LaunchError, LaunchInfo

log = logging.getLogger(__name__)

# Waits for one line on stdin (the barrier), then execs "$@" with stdin on /dev/null. `read`
# fails on EOF, i.e. when the agent aborts the launch.
SHIM = 'read _ || exit 127; exec "$@" </dev/null'
SHIM_ARGV0 = "mezzo-launch"
# Containers with their own stdio (`ContainerConfig.stdio`): the barrier line arrives first on
# their stdin, which the command then keeps. With a pty, the command re-opens the slave ($1) as
# a session leader, which makes it the controlling terminal, on all three streams.
SHIM_STDIO = 'read _ || exit 127; exec "$@"'
SHIM_TTY = 'read _ || exit 127; t=$1; shift; exec "$@" <>"$t" >&0 2>&0'


class Child:
    """A container's root process: spawned by us (a child) or adopted after a restart."""

    def __init__(
        self,
        pid: int,
        popen: subprocess.Popen[bytes] | None,
        barrier: int | None,
        reaper: Callable[[], int | None] | None = None,
    ):
        self.pid = pid
        self.popen = popen
        self._barrier = barrier
        # How to collect the exit status of a process someone else forked for us (the fork
        # server); None for our own children (popen) and adopted processes.
        self._reaper = reaper
        # A pidfd becomes readable when the process exits, child or not (Linux >= 5.3); it
        # also pins the pid, so signals sent through it never hit a recycled pid.
        self.pidfd = os.pidfd_open(pid)

    @classmethod
    def adopt(cls, pid: int) -> Child:
        """Re-attach to a live root process launched by a previous agent; LaunchError if gone
        or if the pid now belongs to another process (it no longer leads its own session)."""
        try:
            child = cls(pid, None, None)
            sid = os.getsid(pid)
        except ProcessLookupError as e:
            raise LaunchError(f"process {pid} is gone") from e
        if sid != pid:
            os.close(child.pidfd)
            raise LaunchError(f"pid {pid} is not a container root (session {sid}): reused pid")
        return child

    def release(self) -> None:
        """Let the shim exec the command (every isolator has run)."""
        if self._barrier is not None:
            try:
                os.write(self._barrier, b"go\n")
            finally:
                os.close(self._barrier)
                self._barrier = None

    def abort(self) -> None:
        """Kill a process that never passed the barrier, and reap it."""
        if self._barrier is not None:
            os.close(self._barrier)
            self._barrier = None
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait()
        elif self._reaper is not None:
            self._reaper()
        self.close()

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self.pidfd, sig)

    def reap(self) -> int | None:
        """The raw wait status once exited (children only); None for an adopted process."""
        if self._reaper is not None:
            reaper, self._reaper = self._reaper, None
            return reaper()
        if self.popen is None:
            return None
        try:
            _, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return None
        # Keep Popen consistent so it never warns or re-waits the pid.
        self.popen.returncode = os.waitstatus_to_exitcode(status)
        return status

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


class Launcher:
    """Forks container root processes (see the module docstring for the process model)."""

    def __init__(self, logger: ContainerLogger | None = None) -> None:
        self.logger: ContainerLogger = logger or SandboxLogger()
        self._fork_servers: dict[tuple[str, ...], ForkServer] = {}

    def close(self) -> None:
        """Stop the fork servers (their executors keep running)."""
        for server in self._fork_servers.values():
            server.close()
        self._fork_servers.clear()

    def spawn(self, config: ContainerConfig, info: LaunchInfo, barrier: bool) -> Child:
        if config.stdio is not None:
            return self._spawn_with_stdio(config, info)
        argv = [*info.wrapper, *config.command()]
        if barrier:
            argv = ["/bin/sh", "-c", SHIM, SHIM_ARGV0, *argv]
        env = dict(os.environ if config.env is None else config.env)
        env.update(info.env)
        user_kwargs = self._user(config)
        sandbox = config.sandbox
        sandbox.mkdir(parents=True, exist_ok=True)
        server = self._fork_server(config) if config.fork_server and not info.wrapper else None
        read_end = write_end = None
        if barrier:
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            with self.logger.open(sandbox, env) as (out, err):
                if user_kwargs:
                    self._chown(sandbox, user_kwargs["user"], user_kwargs["group"])
                if server is not None:
                    barrier_ends = (read_end, write_end)
                    child = self._fork(server, env, sandbox, (out, err), barrier_ends, user_kwargs)
                    if child is not None:
                        return child
                popen = subprocess.Popen(
                    argv,
                    stdin=read_end if barrier else subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd=sandbox,
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                    **user_kwargs,
                )
        except (OSError, LaunchError) as e:
            if write_end is not None:
                os.close(write_end)
            if isinstance(e, LaunchError):
                raise
            raise LaunchError(f"cannot start {argv[0]!r}: {e.strerror or e}") from e
        finally:
            if read_end is not None:
                os.close(read_end)
        return Child(popen.pid, popen, write_end)

    def _spawn_with_stdio(self, config: ContainerConfig, info: LaunchInfo) -> Child:
        """A container on the agent's pipes or pty: always through the barrier shim (the
        barrier line travels on its stdin, so the command keeps that stdin afterwards)."""
        stdio = config.stdio
        assert stdio is not None
        command = [*info.wrapper, *config.command()]
        if stdio.tty is not None:
            argv = ["/bin/sh", "-c", SHIM_TTY, SHIM_ARGV0, stdio.tty, *command]
        else:
            argv = ["/bin/sh", "-c", SHIM_STDIO, SHIM_ARGV0, *command]
        env = dict(os.environ if config.env is None else config.env)
        env.update(info.env)
        user_kwargs = self._user(config)
        config.sandbox.mkdir(parents=True, exist_ok=True)
        if stdio.tty is not None:
            # The barrier travels on a pipe as the shim's stdin (not through the terminal,
            # whose line discipline would echo it): the command re-opens the tty for all three.
            stdin, barrier = os.pipe2(os.O_CLOEXEC)
        else:
            stdin, barrier = stdio.stdin, os.dup(stdio.feed)
        try:
            if user_kwargs and stdio.tty is not None:
                os.chown(stdio.tty, user_kwargs["user"], -1)  # type: ignore[arg-type]
            popen = subprocess.Popen(
                argv, stdin=stdin, stdout=stdio.stdout, stderr=stdio.stderr,
                cwd=config.sandbox, env=env, start_new_session=True, close_fds=True,
                **user_kwargs,
            )
        except OSError as e:
            os.close(barrier)
            raise LaunchError(f"cannot start {command[0]!r}: {e.strerror or e}") from e
        finally:
            if stdin != stdio.stdin:
                os.close(stdin)
        return Child(popen.pid, popen, barrier)

    def _fork_server(self, config: ContainerConfig) -> ForkServer | None:
        key = tuple(config.command())
        server = self._fork_servers.get(key)
        if server is None:
            server = self._fork_servers[key] = ForkServer(key)
        return None if server.broken else server

    @staticmethod
    def _fork(
        server: ForkServer,
        env: dict[str, str],
        sandbox: Path,
        stdio: tuple[BinaryIO, BinaryIO],
        barrier: tuple[int | None, int | None],
        user_kwargs: dict[str, object],
    ) -> Child | None:
        """The executor forked by the fork server; None (after a log line) if the server did
        not act, so that exec'ing instead is safe; LaunchError if it failed once asked."""
        user = None
        if user_kwargs:
            uid, gid, groups = user_kwargs["user"], user_kwargs["group"], user_kwargs["extra_groups"]
            assert isinstance(uid, int) and isinstance(gid, int) and isinstance(groups, list)
            user = (uid, gid, groups)
        try:
            pid, generation = server.spawn(
                env=env,
                cwd=str(sandbox),
                stdout=stdio[0].fileno(),
                stderr=stdio[1].fileno(),
                barrier=barrier[0],
                user=user,
            )
        except ForkServerUnavailable as e:
            log.warning("fork server unavailable (%s): exec'ing the command executor", e)
            return None
        except ForkServerError as e:
            raise LaunchError(f"the fork server failed: {e}") from e
        return Child(pid, None, barrier[1], reaper=lambda: server.wait(pid, generation))

    @staticmethod
    def _user(config: ContainerConfig) -> dict[str, object]:
        """Popen arguments that switch to ``config.user`` (only possible as root)."""
        if config.user is None:
            return {}
        try:
            entry = pwd.getpwnam(config.user)
        except KeyError as e:
            raise LaunchError(f"user {config.user!r} does not exist") from e
        if entry.pw_uid == os.geteuid():
            return {}
        if os.geteuid() != 0:
            raise LaunchError(f"cannot run as user {config.user!r}: the agent is not root")
        groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}

    @staticmethod
    def _chown(sandbox: Path, uid: object, gid: object) -> None:
        # Mesos chowns the sandbox to the task's user so the executor can write in it.
        assert isinstance(uid, int) and isinstance(gid, int)
        for path in (sandbox, stdout_path(sandbox), stderr_path(sandbox)):
            os.chown(path, uid, gid)


def kill_process_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def session_members(sid: int) -> list[int]:
    """Pids whose session is ``sid`` (a /proc scan: catches members that changed group)."""
    return [pid for pid, _ in sessions_members({sid})]


def sessions_members(sids: set[int]) -> list[tuple[int, int]]:
    """(pid, session) of every process in one of the sessions ``sids``, in one /proc scan.

    One getsid(2) per process rather than reading /proc/<pid>/stat: ~1 µs instead of ~15 µs
    each, and this runs at the end of every container."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            sid = os.getsid(pid)
        except OSError:  # gone meanwhile
            continue
        if sid in sids:
            members.append((pid, sid))
    return members


def kill_session(sid: int, sig: int) -> None:
    """Signal the process group and every other process still in the session."""
    kill_sessions({sid}, sig)


def kill_sessions(sids: set[int], sig: int) -> None:
    """`kill_session` for several sessions, with one /proc scan."""
    for sid in sids:
        kill_process_group(sid, sig)
    for pid, _ in sessions_members(sids):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
