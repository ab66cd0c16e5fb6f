"""The built-in default executor's loop (stdlib only); `default.py` beside it is the entry point
the agent runs, and documents the launch contract.

The loop carries out `DefaultExecutorCore`'s actions (`default_core.py` decides everything; its
docstring describes the behaviour) and turns what happens into the core's next events, like the
command executor's loop (`command_executor.py`, whose wire, helpers and process model it
shares): one thread, one ``poll`` over the stream socket and a pidfd per task process; UPDATE
calls on a second keep-alive connection. Each task is started with ``posix_spawn`` in its own
process group inside the executor's session (the agent's session kill still reaches it; a kill
signals the task's tree, not the executor or the other tasks), with the default dispositions of
SIGPIPE/SIGXFSZ, its working directory and MESOS_SANDBOX its own sandbox directory, and its
stdout and stderr appended to files there. The executor's container (its cgroups and limits)
holds every task: the agent sized it for the executor and all its tasks.
"""

import _signal
import posix
import select
import sys
import time

if __package__:  # imported as mezzo.executor.default_executor (tests, tools)
    from . import checks_core as checks
    from . import checks_probe as probes
    from . import command_events as ev
    from . import command_executor as base
    from . import command_wire as wire
    from . import default_core as core
    from . import default_events as dev
else:  # run by the agent as a script: this directory is sys.path[0] (see default.py)
    import checks_core as checks
    import checks_probe as probes
    import command_events as ev
    import command_executor as base
    import command_wire as wire
    import default_core as core
    import default_events as dev

__all__ = ["DefaultExecutor", "main"]

_VERBOSE = False  # MEZZO_EXECUTOR_VERBOSE, set by main()
_REAP_POLL_SECONDS = 0.01  # without pidfds (Linux < 5.3)
_OUTPUT_FLAGS = posix.O_WRONLY | posix.O_CREAT | posix.O_APPEND  # no O_CLOEXEC: stdio


def log(message: str) -> None:
    sys.stderr.write(f"mezzo-default-executor[{posix.getpid()}]: {message}\n")
    sys.stderr.flush()


def debug(message: str) -> None:
    if _VERBOSE:
        log(message)


def config_from_env(env: dict[str, str]) -> core.Config:
    config = base.config_from_env(env)
    config.sandbox = env.get("MESOS_SANDBOX") or env.get("MESOS_DIRECTORY") or posix.getcwd()
    config.agent_host = base.split_endpoint(env["MESOS_AGENT_ENDPOINT"])[0]
    return config


class DefaultExecutor:
    """The loop: sockets, the tasks' processes and the clock around one `DefaultExecutorCore`."""

    def __init__(self, env: dict[str, str]) -> None:
        # The agent's token for this executor: sent on every call, never given to the tasks.
        self.token = env.get(base.TOKEN_ENV) or None
        # The executor's environment: each task's, under its own variables.
        self.env = {k: v for k, v in env.items() if k != base.TOKEN_ENV}
        self.host, self.port = base.split_endpoint(env["MESOS_AGENT_ENDPOINT"])
        wire.use_tls_from(env)  # HTTPS to a TLS agent (LIBPROCESS_SSL_*)
        self.machine = core.DefaultExecutorCore(  # the state machine: every decision
            config_from_env(env), time.monotonic(), new_uuid=wire.new_uuid, wall_clock=time.time
        )
        self.calls = wire.CallConnection(self.host, self.port, self.token)
        self.stream: wire.EventStream | None = None
        self.pidfds: dict[int, int] = {}  # pidfd -> pid
        self.exit_code: int | None = None
        # The tasks' checks' probes (commands in each task's sandbox and environment).
        self.probes = probes.ProbeRunner(self.env)

    def run(self) -> int:
        self.feed(ev.Tick())
        while self.exit_code is None:
            deadline = self.machine.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            pids = self.machine.pids()
            without_pidfd = len(self.pidfds) < len(pids)
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
            event = dev.decode_event(raw)
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
        """Feed the exit of every task process that has ended."""
        for pid, task_id in self.machine.pids().items():
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
            self.feed(dev.TaskExited(task_id, status))

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
                    return ev.ConnectFailed(str(exc), base.jitter())
                return ev.Connected()
            case ev.PostUpdate(uuid, call):
                try:
                    code = self.calls.post(wire.dumps(call).encode())
                except (OSError, EOFError, ValueError) as exc:
                    return ev.UpdateRefused(uuid, str(exc))
                return ev.UpdateAccepted(uuid) if code == 202 else ev.UpdateRefused(uuid, f"HTTP {code}")
            case dev.SpawnTasks(specs):
                return dev.TasksSpawned([self.spawn(spec) for spec in specs])
            case checks.RunProbe(probe_id, spec):
                return self.probes.start(probe_id, spec)
            case checks.AbortProbe(probe_id):
                self.probes.abort(probe_id)
            case ev.Signal(pid, sig):
                try:  # noqa: SIM105 - contextlib would cost an import at start-up
                    posix.killpg(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            case ev.Debug(message):
                debug(message)
            case ev.Log(message):
                log(message)
            case ev.Exit(code):
                self.exit_code = code
            case _:
                raise TypeError(f"not a default executor action: {action!r}")
        return None

    def spawn(self, spec: dev.TaskSpec) -> tuple[str, int | None, str | None]:
        """Start one task in its sandbox; (task id, pid, None) or (task id, None, why not)."""
        env = dict(self.env)
        env.update(spec.env)
        try:
            _makedirs(spec.sandbox)
            program = base.resolve(spec.program, env)
            actions = [
                (posix.POSIX_SPAWN_OPEN, 1, f"{spec.sandbox}/stdout", _OUTPUT_FLAGS, 0o644),
                (posix.POSIX_SPAWN_OPEN, 2, f"{spec.sandbox}/stderr", _OUTPUT_FLAGS, 0o644),
            ]
            cwd = posix.getcwd()
            posix.chdir(spec.sandbox)  # the child inherits it (posix_spawn has no chdir here)
            try:
                pid = posix.posix_spawn(
                    program,
                    spec.argv,
                    env,
                    file_actions=actions,
                    setpgroup=0,  # own group: a kill reaches the task's tree only
                    setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),
                )
            finally:
                posix.chdir(cwd)
        except (OSError, ValueError, TypeError) as exc:
            return spec.task_id, None, str(exc)
        try:  # noqa: SIM105 - contextlib would cost an import at start-up
            self.pidfds[posix.pidfd_open(pid)] = pid
        except (AttributeError, OSError):  # pragma: no cover - Linux < 5.3
            pass
        return spec.task_id, pid, None


def _makedirs(path: str) -> None:
    """`os.makedirs(path, exist_ok=True)` without importing `os`."""
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        if not prefix:
            continue
        try:  # noqa: SIM105
            posix.mkdir(prefix, 0o755)
        except FileExistsError:
            pass


def main(env: dict[str, str] | None = None) -> int:
    """Run the executor in this process with `env` (default: the process environment)."""
    global _VERBOSE
    if env is None:
        env = base.environ()
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
        executor = DefaultExecutor(env)
    except (ValueError, KeyError) as exc:
        log(f"bad environment: {exc}")
        return 1
    # SIGTERM from the agent (container destroy): take the tasks down with us.
    _signal.signal(_signal.SIGTERM, lambda *_: _terminate(executor))
    return executor.run()


def _terminate(executor: DefaultExecutor) -> None:
    for pid in executor.machine.pids():
        try:  # noqa: SIM105
            posix.killpg(pid, _signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    posix._exit(1)


if __name__ == "__main__":
    sys.exit(main())
