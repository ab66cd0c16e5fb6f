"""The built-in default executor's loop (stdlib only); `default.py` beside it is the entry point
the agent runs, and documents the launch contract.

The loop carries out `DefaultExecutorCore`'s actions (`default_core.py` decides everything; its
docstring describes the behaviour) and turns what happens into the core's next events, like the
command executor's loop (`command_executor.py`, whose wire, process model and I/O shell,
`executor_loop.py`, it shares): one thread, one ``poll`` over the stream socket and a pidfd
per task process; UPDATE calls on a second keep-alive connection. Each task is started with ``posix_spawn`` in its own
process group inside the executor's session (the agent's session kill still reaches it; a kill
signals the task's tree, not the executor or the other tasks), with the default dispositions of
SIGPIPE/SIGXFSZ, its working directory and MESOS_SANDBOX its own sandbox directory, and its
stdout and stderr appended to files there. The executor's container (its cgroups and limits)
holds every task: the agent sized it for the executor and all its tasks.
"""

import _signal
import posix
import sys
import time

if __package__:  # imported as mezzo.executor.default_executor (tests, tools)
    from . import command_wire as wire
    from . import default_core as core
    from . import default_events as dev
    from . import executor_loop as loop
else:  # run by the agent as a script: this directory is sys.path[0] (see default.py)
    import command_wire as wire
    import default_core as core
    import default_events as dev
    import executor_loop as loop

__all__ = ["DefaultExecutor", "main"]

PROGRAM = "mezzo-default-executor"
_OUTPUT_FLAGS = posix.O_WRONLY | posix.O_CREAT | posix.O_APPEND  # no O_CLOEXEC: stdio


def log(message: str) -> None:
    loop.log(message, PROGRAM)


def config_from_env(env: dict[str, str]) -> core.Config:
    config = loop.config_from_env(env)
    config.sandbox = env.get("MESOS_SANDBOX") or env.get("MESOS_DIRECTORY") or posix.getcwd()
    config.agent_host = wire.split_endpoint(env["MESOS_AGENT_ENDPOINT"])[0]
    return config


class DefaultExecutor(loop.ExecutorLoop):
    """The loop (`executor_loop.ExecutorLoop`) around one `DefaultExecutorCore`: the tasks'
    processes are spawned here, each into its own sandbox."""

    PROGRAM = PROGRAM
    KIND = "default executor"

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.machine = core.DefaultExecutorCore(  # the state machine: every decision
            config_from_env(env), time.monotonic(), new_uuid=wire.new_uuid, wall_clock=time.time
        )

    def pids(self) -> dict[int, str]:
        return self.machine.pids()

    def exited(self, key: str, status: int) -> object:
        return dev.TaskExited(key, status)

    def decode_event(self, raw: dict) -> object | None:
        return dev.decode_event(raw)

    def perform_task(self, action: object) -> tuple[bool, object | None]:
        match action:
            case dev.SpawnTasks(specs):
                return True, dev.TasksSpawned([self.spawn(spec) for spec in specs])
        return False, None

    def spawn(self, spec: dev.TaskSpec) -> tuple[str, int | None, str | None]:
        """Start one task in its sandbox; (task id, pid, None) or (task id, None, why not)."""
        env = dict(self.env)
        env.update(spec.env)
        try:
            _makedirs(spec.sandbox)
            program = loop.resolve(spec.program, env)
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
        self.watch(pid)
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
    return loop.main(DefaultExecutor, env)


if __name__ == "__main__":
    sys.exit(main())
