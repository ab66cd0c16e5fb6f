"""The I/O shell shared by the built-in executors' loops (`command_executor.py`,
`default_executor.py`); stdlib only, like them (``python -S -E``, no `os`, no `socket`).

`ExecutorLoop` owns what both loops do whatever they run: the agent's connections (the event
stream and the keep-alive connection for UPDATE calls, spec §2.7), the link's actions
(`Subscribe`, `PostUpdate`) and their answers, the signals to the tasks' process groups, the
checks' probes, the one ``poll`` loop over the stream socket, a pidfd per task process and the
probes' descriptors, the reaping of task processes, SIGTERM and `main`'s environment checks.
A subclass builds its core (`self.machine`: `pids()` and the core interface `handle` and
`next_deadline`), spawns its tasks in `perform_task` and names the event a reaped process is
(`exited`). Every decision stays in the cores (`command_core.py`, `default_core.py`).
"""

import _signal
import posix  # not `os`: its import (posixpath, stat, _collections_abc) costs ~1.5 ms
import select
import sys
import time

if __package__:  # imported as mezzo.executor.executor_loop (tests, tools)
    from . import checks_core as checks
    from . import checks_probe as probes
    from . import command_core as core
    from . import command_events as ev
    from . import command_wire as wire
else:  # run by the agent as a script: this directory is sys.path[0] (see command.py)
    import checks_core as checks
    import checks_probe as probes
    import command_core as core
    import command_events as ev
    import command_wire as wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_VERBOSE = False  # MEZZO_EXECUTOR_VERBOSE, set by main()
_program = "mezzo-executor"  # the log prefix, set by main() to the executor's
# Mesos's variable for the agent-minted executor token (mezzo.security.executor_tokens; not
# imported: this script runs without the package, for start-up time).
TOKEN_ENV = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
# Without a pidfd (Linux < 5.3) the loop polls for the tasks' exits this often.
_REAP_POLL_SECONDS = 0.01


def log(message: str, program: str | None = None) -> None:
    sys.stderr.write(f"{program or _program}[{posix.getpid()}]: {message}\n")
    sys.stderr.flush()


def debug(message: str) -> None:
    if _VERBOSE:
        log(message)


def parse_duration(text: str | None, default: float) -> float:
    """A Mesos duration from the environment in seconds; `default` if absent or invalid."""
    if not text:
        return default
    try:
        return wire.parse_duration(text)
    except ValueError:
        log(f"ignoring invalid duration {text.strip()!r}; using {default}s")
        return default


def environ() -> dict[str, str]:
    """The process environment as `os.environ` decodes it (utf-8, surrogateescape)."""
    return {
        key.decode("utf-8", "surrogateescape"): value.decode("utf-8", "surrogateescape")
        for key, value in posix.environ.items()
    }


def jitter() -> float:
    return 0.5 + 0.5 * posix.urandom(1)[0] / 255.0


def resolve(program: str, env: dict[str, str]) -> str:
    """execvp-style lookup of `program` on the task's PATH (posix_spawnp would use ours)."""
    if "/" in program:
        return program
    for directory in env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":"):
        candidate = f"{directory or '.'}/{program}"
        try:
            regular = posix.stat(candidate).st_mode & 0o170000 == 0o100000  # stat.S_ISREG
        except (OSError, ValueError):
            continue
        if regular and posix.access(candidate, posix.X_OK):
            return candidate
    raise FileNotFoundError(f"{program!r} not found on PATH")


def config_from_env(env: dict[str, str]) -> core.Config:
    """The link's configuration (spec §6.1); the default executor adds its sandbox."""
    return core.Config(
        env["MESOS_FRAMEWORK_ID"],
        env["MESOS_EXECUTOR_ID"],
        checkpoint=core.as_bool(env.get("MESOS_CHECKPOINT"), False),
        shutdown_grace=parse_duration(env.get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"), 5.0),
        backoff_max=parse_duration(env.get("MESOS_SUBSCRIPTION_BACKOFF_MAX"), 2.0),
        recovery_timeout=parse_duration(env.get("MESOS_RECOVERY_TIMEOUT"), 900.0),
    )


class ExecutorLoop:
    """The loop: sockets, the tasks' processes and the clock around one executor core."""

    PROGRAM = "mezzo-executor"  # the log prefix
    KIND = "executor"  # in the error for an action nobody carries out
    machine: "Any"  # the core; set by the subclass

    def __init__(self, env: dict[str, str]) -> None:
        # The agent's token for this executor: sent on every call, never given to the tasks
        # (Mesos's executor library erases it from the environment too).
        self.token = env.get(TOKEN_ENV) or None
        # The executor's environment: each task's, under its own variables.
        self.env = {k: v for k, v in env.items() if k != TOKEN_ENV}
        self.host, self.port = wire.split_endpoint(env["MESOS_AGENT_ENDPOINT"])
        wire.use_tls_from(env)  # HTTPS to a TLS agent (LIBPROCESS_SSL_*)
        self.calls = wire.CallConnection(self.host, self.port, self.token)
        self.stream: wire.EventStream | None = None
        self.pidfds: dict[int, int] = {}  # pidfd -> pid
        self.exit_code: int | None = None
        # The tasks' checks' probes (commands in each task's environment and sandbox).
        self.probes = probes.ProbeRunner(self.env)

    # ---------------------------------------------------------------- the subclass's part

    def pids(self) -> "dict[int, Any]":
        """The task processes to reap: pid -> what `exited` needs to name the task."""
        raise NotImplementedError

    def exited(self, key: "Any", status: int) -> object:
        """The core's event for the reaped process of `key` (`pids`) with wait `status`."""
        raise NotImplementedError

    def perform_task(self, action: object) -> "tuple[bool, object | None]":
        """Carry out an action of the subclass's own (spawns): (handled, the answer)."""
        return False, None

    def watch(self, pid: int) -> None:
        """Poll a pidfd of the new task process `pid` (without one: poll on a timer)."""
        try:  # noqa: SIM105 - contextlib would cost an import at start-up
            self.pidfds[posix.pidfd_open(pid)] = pid
        except (AttributeError, OSError):  # pragma: no cover - Linux < 5.3
            pass

    # ---------------------------------------------------------------- the loop

    def run(self) -> int:
        self.feed(ev.Tick())
        while self.exit_code is None:
            deadline = self.machine.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            without_pidfd = len(self.pidfds) < len(self.pids())
            if without_pidfd:  # pragma: no cover - Linux < 5.3
                timeout = min(timeout if timeout is not None else 1.0, _REAP_POLL_SECONDS)
            if self.stream is not None and self.stream.pending:
                timeout = 0.0
            if self.probes.needs_polling():  # pragma: no cover - Linux < 5.3
                timeout = min(timeout if timeout is not None else 1.0, _REAP_POLL_SECONDS)
            poller = select.poll()
            if self.stream is not None:
                poller.register(self.stream.fileno(), select.POLLIN)
            for fd in self.pidfds:
                poller.register(fd, select.POLLIN)
            probe_fds = self.probes.poll_fds()
            for fd, mask in probe_fds:
                poller.register(fd, mask)
            polled = dict(poller.poll(None if timeout is None else int(timeout * 1000) + 1))
            ready = set(polled)
            if without_pidfd or any(fd in ready for fd in self.pidfds):
                self.reap()
            for fd, _mask in probe_fds:
                if fd in polled:
                    for done in self.probes.ready(fd, polled[fd]):
                        self.feed(done)
            if self.probes.needs_polling():  # pragma: no cover - Linux < 5.3
                for done in self.probes.ready(-1, 0):
                    self.feed(done)
            if self.stream is not None and (self.stream.pending or self.stream.fileno() in ready):
                self.read_stream()
            deadline = self.machine.next_deadline()
            if deadline is not None and time.monotonic() >= deadline:
                self.feed(ev.Tick())
        self.calls.close()
        if self.stream is not None:
            self.stream.close()
        for fd in self.pidfds:
            posix.close(fd)
        self.probes.close()
        return self.exit_code

    # ---------------------------------------------------------------- events in

    def feed(self, event: object) -> None:
        """Give the core one event and carry out what it decides."""
        if self.exit_code is not None:
            return
        for action in self.machine.handle(event, time.monotonic()):
            if self.exit_code is not None:
                return
            result = self.perform(action)
            if result is not None:
                self.feed(result)  # the action's answer, before the next action

    def decode_event(self, raw: dict) -> object | None:
        """The core's event for one JSON event of the agent's stream (None: nothing)."""
        return ev.decode_event(raw)

    def read_stream(self) -> None:
        assert self.stream is not None
        reason = ""
        try:
            events, ended = self.stream.read()
        except (OSError, ValueError) as exc:
            reason = str(exc)
            events, ended = [], True
        for raw in events:
            debug(f"event {raw.get('type')}")
            event = self.decode_event(raw)
            if event is not None:
                self.feed(event)
            if self.stream is None or self.exit_code is not None:
                return
        if ended:
            self.stream.close()
            self.stream = None
            self.calls.close()
            self.feed(ev.Disconnected(reason))

    def reap(self) -> None:
        """Feed the exit of every task process that has ended (WNOHANG: a pidfd is readable
        once its process is a zombie, so nothing here waits)."""
        for pid, key in self.pids().items():
            try:
                reaped, status = posix.waitpid(pid, posix.WNOHANG)
            except ChildProcessError:
                reaped, status = pid, 0
            if not reaped:
                continue
            for fd, owner in list(self.pidfds.items()):
                if owner == pid:
                    posix.close(fd)
                    del self.pidfds[fd]
            self.feed(self.exited(key, status))

    # ---------------------------------------------------------------- actions out

    def perform(self, action: object) -> object | None:
        """Carry out one action; the event that answers it, if any."""
        match action:
            case ev.Subscribe(call):
                try:
                    self.stream = wire.EventStream.open(
                        self.host, self.port, wire.dumps(call).encode(), self.token
                    )
                except (OSError, EOFError, ValueError) as exc:
                    return ev.ConnectFailed(str(exc), jitter())
                debug("subscribed")
                return ev.Connected()
            case ev.PostUpdate(uuid, call):
                try:
                    code = self.calls.post(wire.dumps(call).encode())
                except (OSError, EOFError, ValueError) as exc:
                    return ev.UpdateRefused(uuid, str(exc))
                return ev.UpdateAccepted(uuid) if code == 202 else ev.UpdateRefused(uuid, f"HTTP {code}")
            case ev.Signal(pid, sig):
                try:  # noqa: SIM105 - contextlib would cost an import at start-up
                    posix.killpg(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            case checks.RunProbe(probe_id, spec):
                return self.probes.start(probe_id, spec)
            case checks.AbortProbe(probe_id):
                self.probes.abort(probe_id)
            case ev.Debug(message):
                debug(message)
            case ev.Log(message):
                log(message)
            case ev.Exit(code):
                self.exit_code = code
            case _:
                handled, answer = self.perform_task(action)
                if not handled:
                    raise TypeError(f"not a {self.KIND} action: {action!r}")
                return answer
        return None


def main(cls: "type[ExecutorLoop]", env: dict[str, str] | None = None) -> int:
    """Run the executor `cls` in this process with `env` (default: the process environment)."""
    global _VERBOSE, _program
    _program = cls.PROGRAM
    if env is None:
        env = environ()
    _VERBOSE = env.get("MEZZO_EXECUTOR_VERBOSE", "") not in ("", "0")
    missing = [
        name
        for name in ("MESOS_AGENT_ENDPOINT", "MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID")
        if not env.get(name)
    ]
    if missing:
        log(f"missing environment: {', '.join(missing)}")
        return 1
    sandbox = env.get("MESOS_SANDBOX") or env.get("MESOS_DIRECTORY")
    if sandbox:
        try:
            posix.chdir(sandbox)
        except OSError as exc:
            log(f"cannot enter the sandbox {sandbox}: {exc}")
    try:
        executor = cls(env)
    except (ValueError, KeyError) as exc:
        log(f"bad environment: {exc}")
        return 1
    # SIGTERM from the agent (container destroy): take the tasks down with us.
    _signal.signal(_signal.SIGTERM, lambda *_: _terminate(executor))
    return executor.run()


def _terminate(executor: ExecutorLoop) -> None:
    for pid in executor.pids():
        try:  # noqa: SIM105
            posix.killpg(pid, _signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    posix._exit(1)
