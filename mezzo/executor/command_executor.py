"""The built-in command executor's loop (stdlib only); `command.py` beside it is the entry point
the agent runs, and documents the launch contract.

The executor is four modules: `command_wire.py` (HTTP/1.1 client, chunked decoding, RecordIO,
JSON, durations), `command_events.py` (the typed events and actions), `command_core.py` (every
decision: `CommandExecutorCore.handle(event, now) -> actions` and `next_deadline()`; its
docstring describes the behaviour) and this loop (on `executor_loop.py`), which carries the core's actions out and
turns what happens into the core's next events. They live
beside `command.py` as modules, not in the script, so that their bytecode is cached: a script
given to `python` is compiled on every start (~7.5 ms for the old one-file executor).

One thread, one ``poll`` loop over the stream socket and a pidfd of the task; UPDATE calls go
over a second keep-alive connection (spec §2.7) with TCP_NODELAY (Nagle + delayed ACKs would
add ~40 ms per call). That plumbing is `executor_loop.py`'s, shared with the default executor;
this module spawns the task. The task is started with ``posix_spawn`` in its **own process group**
inside the executor's session (so the agent's session kill still reaches it, and a kill signals
the whole task tree but not the executor), with the default dispositions of SIGPIPE/SIGXFSZ.
Exit codes: 0 normal, 1 gave up (recovery timeout, bad environment).
"""

import _signal
import posix  # not `os`: its import (posixpath, stat, _collections_abc) costs ~1.5 ms
import sys
import time

if __package__:  # imported as mezzo.executor.command_executor (tests, tools)
    from . import command_core as core
    from . import command_events as ev
    from . import command_wire as wire
    from . import executor_loop as loop
else:  # run by the agent as a script: this directory is sys.path[0] (see command.py)
    import command_core as core
    import command_events as ev
    import command_wire as wire
    import executor_loop as loop

# The wire helpers, also offered here (tests use them through this module).
Dechunker = wire.Dechunker
RecordReader = wire.RecordReader
b64, unb64, dumps, loads = wire.b64, wire.unb64, wire.dumps, wire.loads
new_uuid, split_endpoint = wire.new_uuid, wire.split_endpoint
# The loop's helpers (`executor_loop.py`), also offered here.
TOKEN_ENV, parse_duration, environ = loop.TOKEN_ENV, loop.parse_duration, loop.environ
jitter, resolve, config_from_env = loop.jitter, loop.resolve, loop.config_from_env

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

PROGRAM = "mezzo-command-executor"


def log(message: str) -> None:
    loop.log(message, PROGRAM)


class CommandExecutor(loop.ExecutorLoop):
    """The loop (`executor_loop.ExecutorLoop`) around one `CommandExecutorCore`: its one task
    process is spawned here."""

    PROGRAM = PROGRAM
    KIND = "command executor"

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.machine = core.CommandExecutorCore(  # the state machine: every decision
            config_from_env(env), time.monotonic(), new_uuid=new_uuid, wall_clock=time.time
        )

    def pids(self) -> dict[int, None]:
        pid = self.machine.pid
        return {} if pid is None else {pid: None}

    def exited(self, key: None, status: int) -> object:
        return ev.ProcessExited(status)

    def perform_task(self, action: object) -> tuple[bool, object | None]:
        match action:
            case ev.Spawn(program, argv, env):
                return True, self.spawn(program, argv, env)
        return False, None

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
        self.watch(pid)
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
    return loop.main(CommandExecutor, env)


if __name__ == "__main__":
    sys.exit(main())
