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

stdout and stderr are appended to ``<sandbox>/stdout`` and ``<sandbox>/stderr``; the working
directory is the sandbox.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
from pathlib import Path

from mezzo.agent.containerizer.paths import stderr_path, stdout_path
from mezzo.agent.containerizer.records import ContainerConfig, LaunchError, LaunchInfo

# Waits for one line on stdin (the barrier), then execs "$@" with stdin on /dev/null. `read`
# fails on EOF, i.e. when the agent aborts the launch.
SHIM = 'read _ || exit 127; exec "$@" </dev/null'
SHIM_ARGV0 = "mezzo-launch"


class Child:
    """A container's root process: spawned by us (a child) or adopted after a restart."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None, barrier: int | None):
        self.pid = pid
        self.popen = popen
        self._barrier = barrier
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
        self.close()

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self.pidfd, sig)

    def reap(self) -> int | None:
        """The raw wait status once exited (children only); None for an adopted process."""
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

    def spawn(self, config: ContainerConfig, info: LaunchInfo, barrier: bool) -> Child:
        argv = [*info.wrapper, *config.command()]
        if barrier:
            argv = ["/bin/sh", "-c", SHIM, SHIM_ARGV0, *argv]
        env = dict(os.environ if config.env is None else config.env)
        env.update(info.env)
        user_kwargs = self._user(config)
        sandbox = config.sandbox
        sandbox.mkdir(parents=True, exist_ok=True)
        read_end = write_end = None
        if barrier:
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            with open(stdout_path(sandbox), "ab") as out, open(stderr_path(sandbox), "ab") as err:
                if user_kwargs:
                    self._chown(sandbox, user_kwargs["user"], user_kwargs["group"])
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
        except OSError as e:
            if write_end is not None:
                os.close(write_end)
            raise LaunchError(f"cannot start {argv[0]!r}: {e.strerror or e}") from e
        finally:
            if read_end is not None:
                os.close(read_end)
        return Child(popen.pid, popen, write_end)

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
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp session ...
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 3 and int(fields[3]) == sid:
            members.append(int(entry.name))
    return members


def kill_session(sid: int, sig: int) -> None:
    """Signal the process group and every other process still in the session."""
    kill_process_group(sid, sig)
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
