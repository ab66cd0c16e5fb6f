"""The built-in command executor's loop (stdlib only); `command.py` beside it is the entry point
the agent runs, and documents the launch contract.

The executor is four modules: `command_wire.py` (HTTP/1.1 client, chunked decoding, RecordIO,
JSON, durations), `command_events.py` (the typed events and actions), `command_core.py` (every
decision: `CommandExecutorCore.handle(event, now) -> actions` and `next_deadline()`; its
docstring describes the behaviour) and this loop, which carries the core's actions out and
turns what happens into the core's next events. They live
beside `command.py` as modules, not in the script, so that their bytecode is cached: a script
given to `python` is compiled on every start (~7.5 ms for the old one-file executor).

One thread, one ``poll`` loop over the stream socket and a pidfd of the task; UPDATE calls go
over a second keep-alive connection (spec §2.7) with TCP_NODELAY (Nagle + delayed ACKs would
add ~40 ms per call). The task is started with ``posix_spawn`` in its **own process group**
inside the executor's session (so the agent's session kill still reaches it, and a kill signals
the whole task tree but not the executor), with the default dispositions of SIGPIPE/SIGXFSZ.
Exit codes: 0 normal, 1 gave up (recovery timeout, bad environment).
"""

import _signal
import posix  # not `os`: its import (posixpath, stat, _collections_abc) costs ~1.5 ms
import select
import sys
import time

if __package__:  # imported as mezzo.executor.command_executor (tests, tools)
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

# The wire helpers, also offered here (tests use them through this module).
Dechunker = wire.Dechunker
RecordReader = wire.RecordReader
b64, unb64, dumps, loads = wire.b64, wire.unb64, wire.dumps, wire.loads
new_uuid, split_endpoint = wire.new_uuid, wire.split_endpoint

__all__ = [
    "CommandExecutor",
    "Dechunker",
    "RecordReader",
    "b64",
    "dumps",
    "loads",
    "main",
    "new_uuid",
    "parse_duration",
    "split_endpoint",
    "unb64",
]

_VERBOSE = False  # MEZZO_EXECUTOR_VERBOSE, set by main()
# Mesos's variable for the agent-minted executor token (mezzo.security.executor_tokens; not
# imported: this script runs without the package, for start-up time).
TOKEN_ENV = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
# Without a pidfd (Linux < 5.3) the loop polls for the task's exit this often.
_REAP_POLL_SECONDS = 0.01


def log(message: str) -> None:
    sys.stderr.write(f"mezzo-command-executor[{posix.getpid()}]: {message}\n")
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
    return core.Config(
        env["MESOS_FRAMEWORK_ID"],
        env["MESOS_EXECUTOR_ID"],
        checkpoint=core.as_bool(env.get("MESOS_CHECKPOINT"), False),
        shutdown_grace=parse_duration(env.get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"), 5.0),
        backoff_max=parse_duration(env.get("MESOS_SUBSCRIPTION_BACKOFF_MAX"), 2.0),
        recovery_timeout=parse_duration(env.get("MESOS_RECOVERY_TIMEOUT"), 900.0),
    )


class CommandExecutor:
    """The loop: sockets, the task's process and the clock around one `CommandExecutorCore`."""

    def __init__(self, env: dict[str, str]) -> None:
        # The agent's token for this executor: sent on every call, never given to the task
        # (Mesos's executor library erases it from the environment too).
        self.token = env.get(TOKEN_ENV) or None
        # The executor's environment: the task's, under its own variables.
        self.env = {k: v for k, v in env.items() if k != TOKEN_ENV}
        self.host, self.port = split_endpoint(env["MESOS_AGENT_ENDPOINT"])
        wire.use_tls_from(env)  # HTTPS to a TLS agent (LIBPROCESS_SSL_*)
        self.machine = core.CommandExecutorCore(  # the state machine: every decision
            config_from_env(env), time.monotonic(), new_uuid=new_uuid, wall_clock=time.time
        )
        self.calls = wire.CallConnection(self.host, self.port, self.token)
        self.stream: wire.EventStream | None = None
        self.pidfd: int | None = None
        self.exit_code: int | None = None
        # The task's checks' probes (commands in the task's environment and the sandbox).
        self.probes = probes.ProbeRunner(self.env)

    def run(self) -> int:
        self.feed(ev.Tick())
        while self.exit_code is None:
            deadline = self.machine.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            waiting_without_pidfd = self.machine.pid is not None and self.pidfd is None
            if waiting_without_pidfd:  # pragma: no cover - Linux < 5.3
                timeout = min(timeout if timeout is not None else 1.0, _REAP_POLL_SECONDS)
            if self.stream is not None and self.stream.pending:
                timeout = 0.0
            if self.probes.needs_polling():  # pragma: no cover - Linux < 5.3
                timeout = min(timeout if timeout is not None else 1.0, _REAP_POLL_SECONDS)
            poller = select.poll()
            if self.stream is not None:
                poller.register(self.stream.fileno(), select.POLLIN)
            if self.pidfd is not None:
                poller.register(self.pidfd, select.POLLIN)
            probe_fds = self.probes.poll_fds()
            for fd, mask in probe_fds:
                poller.register(fd, mask)
            polled = dict(poller.poll(None if timeout is None else int(timeout * 1000) + 1))
            ready = set(polled)
            if (self.pidfd is not None and self.pidfd in ready) or waiting_without_pidfd:
                self.reap(block=not waiting_without_pidfd)
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
            event = ev.decode_event(raw)
            if event is not None:
                self.feed(event)
            if self.stream is None or self.exit_code is not None:
                return
        if ended:
            self.stream.close()
            self.stream = None
            self.calls.close()
            self.feed(ev.Disconnected(reason))

    def reap(self, *, block: bool) -> None:
        pid = self.machine.pid
        if pid is None:
            return
        try:
            reaped, status = posix.waitpid(pid, 0 if block else posix.WNOHANG)
        except ChildProcessError:
            reaped, status = pid, 0
        if not reaped:
            return
        if self.pidfd is not None:
            posix.close(self.pidfd)
            self.pidfd = None
        self.feed(ev.ProcessExited(status))

    # ---------------------------------------------------------------- actions out

    def perform(self, action: object) -> object | None:
        """Carry out one action; the event that answers it, if any."""
        match action:
            case ev.Subscribe(call):
                return self.subscribe(call)
            case ev.PostUpdate(uuid, call):
                return self.post_update(uuid, call)
            case ev.Spawn(program, argv, env):
                return self.spawn(program, argv, env)
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
                raise TypeError(f"not a command executor action: {action!r}")
        return None

    def subscribe(self, call: dict) -> object:
        try:
            self.stream = wire.EventStream.open(
                self.host, self.port, dumps(call).encode(), self.token)
        except (OSError, EOFError, ValueError) as exc:
            return ev.ConnectFailed(str(exc), jitter())
        debug("subscribed")
        return ev.Connected()

    def post_update(self, uuid: bytes, call: dict) -> object:
        try:
            code = self.calls.post(dumps(call).encode())
        except (OSError, EOFError, ValueError) as exc:
            return ev.UpdateRefused(uuid, str(exc))
        return ev.UpdateAccepted(uuid) if code == 202 else ev.UpdateRefused(uuid, f"HTTP {code}")

    def spawn(self, program: str, argv: list[str], overrides: dict[str, str]) -> object:
        env = dict(self.env)
        env.update(overrides)
        try:
            pid = posix.posix_spawn(
                resolve(program, env),
                argv,
                env,
                setpgroup=0,  # own group: a kill reaches the task tree, not the executor
                # Python ignores SIGPIPE/SIGXFSZ; the task must get the default dispositions.
                setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),
            )
        except (OSError, ValueError, TypeError) as exc:
            return ev.SpawnFailed(str(exc))
        _give_terminal(pid)
        try:
            self.pidfd = posix.pidfd_open(pid)
        except (AttributeError, OSError):  # pragma: no cover - Linux < 5.3
            self.pidfd = None
        return ev.Spawned(pid)


def _give_terminal(pgid: int) -> None:
    """With a TTY (the task's ContainerInfo has a `tty_info`), the task inherits it: make its
    process group the terminal's foreground one, so that it may read the terminal and gets
    ^C, and continue it in case it already stopped on reading (SIGTTIN) before that."""
    try:
        if not posix.isatty(0):
            return
        posix.tcsetpgrp(0, pgid)
        posix.killpg(pgid, _signal.SIGCONT)
    except OSError:
        pass


def main(env: dict[str, str] | None = None) -> int:
    """Run the executor in this process with `env` (default: the process environment)."""
    global _VERBOSE
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
        executor = CommandExecutor(env)
    except (ValueError, KeyError) as exc:
        log(f"bad environment: {exc}")
        return 1
    # SIGTERM from the agent (container destroy): take the task down with us.
    _signal.signal(_signal.SIGTERM, lambda *_: _terminate(executor))
    return executor.run()


def _terminate(executor: CommandExecutor) -> None:
    pid = executor.machine.pid
    if pid is not None:
        try:  # noqa: SIM105
            posix.killpg(pid, _signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    posix._exit(1)


if __name__ == "__main__":
    sys.exit(main())
