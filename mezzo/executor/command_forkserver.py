"""The command executor's fork server: one warm interpreter that forks a command executor per
container, instead of the agent starting a fresh interpreter for each (~10 ms of CPU apiece).

Started by the agent's launcher (`mezzo/agent/containerizer/forkserver.py`) as
``python -S -E command.py --fork-server FD`` where FD is its end of an ``AF_UNIX``
``SOCK_SEQPACKET`` socket pair. It imports the executor (`command_executor`, `command_core`,
`command_wire`: stdlib only), answers ``{"ready": true}`` and then serves one request at a time,
each a JSON message, until the agent closes its end (then it exits; executors already forked
keep running, exactly like executors of an agent that went away):

``{"op": "spawn", "env": {...}, "cwd": "...", "user": [uid, gid, [groups]] | null}``
    with 2 or 3 file descriptors (SCM_RIGHTS): the container's stdout, stderr and, when the
    agent isolates before the executor runs, the read end of its barrier pipe. Forks a child
    that becomes what the launcher's exec'd executor would be, in subprocess's order: stdout
    and stderr on the sandbox files, cwd the sandbox, its own session (``setsid``), the user
    switch; only then is ``{"pid": n}`` answered (a failure so far is answered
    ``{"error": "..."}`` and the child is gone: the agent execs instead). The child then waits
    at the barrier for a line (EOF: exit 127 without running anything, the agent aborted the
    launch), puts stdin on /dev/null, takes exactly ``env`` as its environment (the C
    library's too) with a fresh interpreter's signal dispositions, and runs
    `command_executor.main(env)` (the default executor's fork server, started as
    ``default.py --fork-server FD``, runs `default_executor.main(env)` instead).
``{"op": "wait", "pid": n}``
    Reaps the child (the agent asks once its pidfd said the process ended) and answers
    ``{"status": <raw wait status>}``, or ``{"status": null}`` if it is not a child of ours.

Only the agent's launcher talks to it; a malformed request is answered with an error.
"""

import _signal
import _socket
import gc
import posix
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

if __package__:  # imported as mezzo.executor.command_forkserver (tests, tools)
    from . import command_executor
    from .command_wire import dumps, loads
else:  # run by the agent as a script: this directory is sys.path[0] (see command.py)
    import command_executor
    from command_wire import dumps, loads

# What a forked child runs: the command executor, or what `main(..., run=)` was given.
_run = command_executor.main

MAX_MESSAGE_BYTES = 1 << 20  # an environment larger than this is refused
MAX_FDS = 3
_INT_BYTES = 4  # SCM_RIGHTS carries C ints


def serve(fd: int) -> int:
    """Serve requests on the socket `fd` until the agent closes it; the exit status."""
    sock = _socket.socket(fileno=fd)
    # Every object so far (the imported executor) moves to a generation the collector never
    # scans: a forked child's collections would otherwise touch each one and copy its page.
    gc.freeze()
    sock.send(b'{"ready":true}')
    while True:
        try:
            data, ancillary, _flags, _address = sock.recvmsg(
                MAX_MESSAGE_BYTES, _socket.CMSG_SPACE(MAX_FDS * _INT_BYTES)
            )
        except InterruptedError:  # pragma: no cover - retried by Python since PEP 475
            continue
        except OSError:
            return 0
        fds = _received_fds(ancillary)
        if not data:  # the agent closed its end
            _close_all(fds)
            return 0
        try:
            reply = handle(sock, loads(data), fds)
        except (ValueError, TypeError, KeyError, OSError) as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            _close_all(fds)
        try:
            sock.send(dumps(reply).encode())
        except OSError:
            return 0


def handle(sock: _socket.socket, request: object, fds: list[int]) -> dict:
    if not isinstance(request, dict):
        raise ValueError("a request is a JSON object")
    op = request.get("op")
    if op == "spawn":
        return {"pid": spawn(sock, request, fds)}
    if op == "wait":
        pid = request["pid"]
        if not isinstance(pid, int):
            raise TypeError("pid must be an integer")
        try:
            _, status = posix.waitpid(pid, 0)
        except ChildProcessError:
            return {"status": None}
        return {"status": status}
    raise ValueError(f"unknown op {op!r}")


def spawn(sock: _socket.socket, request: dict, fds: list[int]) -> int:
    env = request["env"]
    cwd = request["cwd"]
    user = request.get("user")
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise TypeError("env must map names to strings")
    if not isinstance(cwd, str):
        raise TypeError("cwd must be a string")
    if len(fds) not in (2, 3):
        raise ValueError(f"expected stdout, stderr and maybe a barrier, got {len(fds)} fds")
    sys.stderr.flush()  # nothing buffered here may be written twice
    # The child reports on this pipe once it is the container's root process: EOF alone means
    # it is (the agent may then signal its group and check getsid(pid) == pid), a message
    # means it failed to become one and exits.
    ready_read, ready_write = posix.pipe()
    pid = posix.fork()
    if pid:
        posix.close(ready_write)
        try:
            failure = _read_all(ready_read)
        finally:
            posix.close(ready_read)
        if failure:
            posix.waitpid(pid, 0)
            raise OSError(failure.decode("utf-8", "replace"))
        return pid
    # The child: never return into the server's loop.
    code = 1
    try:
        sock.close()
        posix.close(ready_read)
        try:
            _become_container_root(cwd, user, fds)
        except BaseException as exc:
            posix.write(ready_write, f"{type(exc).__name__}: {exc}".encode())
            posix._exit(127)
        posix.close(ready_write)
        code = _run_executor(env, fds)
    except BaseException:
        sys.excepthook(*sys.exc_info())
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            posix._exit(code)
    return 0  # pragma: no cover - unreachable


def _become_container_root(cwd: str, user: object, fds: list[int]) -> None:
    """What subprocess does for the launcher before exec, in its order."""
    posix.dup2(fds[0], 1)
    posix.dup2(fds[1], 2)
    posix.chdir(cwd)
    posix.setsid()  # its own session and process group (start_new_session)
    if user is not None:
        uid, gid, groups = user
        posix.setgroups(groups)
        posix.setregid(gid, gid)
        posix.setreuid(uid, uid)


def _run_executor(env: dict, fds: list[int]) -> int:
    # As the launcher's shim: wait for one line; EOF means the launch was aborted.
    if len(fds) == 3 and not _read_line(fds[2]):
        posix._exit(127)
    null = posix.open("/dev/null", posix.O_RDONLY)
    posix.dup2(null, 0)
    posix.close(null)
    _close_all(fds)
    _replace_environment(env)
    # The dispositions of a fresh interpreter (the server changes none; this keeps it so).
    for sig in (_signal.SIGTERM, _signal.SIGCHLD, _signal.SIGHUP):
        _signal.signal(sig, _signal.SIG_DFL)
    return _run(dict(env))


def _read_all(fd: int) -> bytes:
    data = b""
    while chunk := posix.read(fd, 4096):
        data += chunk
    return data


def _read_line(fd: int) -> bool:
    data = b""
    while not data.endswith(b"\n"):
        chunk = posix.read(fd, 64)
        if not chunk:
            return False
        data += chunk
    return True


def _replace_environment(env: dict[str, str]) -> None:
    """Make `env` this process's environment: `posix.environ` and the C library's."""
    encoded = {
        k.encode("utf-8", "surrogateescape"): v.encode("utf-8", "surrogateescape")
        for k, v in env.items()
    }
    for name in list(posix.environ):
        if name not in encoded:
            posix.unsetenv(name)
            del posix.environ[name]
    for name, value in encoded.items():
        posix.putenv(name, value)
        posix.environ[name] = value


def _received_fds(ancillary: list) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(data) - len(data) % _INT_BYTES
            for i in range(0, usable, _INT_BYTES):
                fds.append(int.from_bytes(data[i : i + _INT_BYTES], sys.byteorder, signed=True))
    return fds


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:  # noqa: SIM105 - contextlib would cost an import
            posix.close(fd)
        except OSError:
            pass


def main(argv: list[str], run: "Callable[[dict], int] | None" = None) -> int:
    """Serve on the socket FD in `argv`; forked children run `run` (default: the command
    executor's `main`)."""
    global _run
    if run is not None:
        _run = run
    if len(argv) != 1 or not argv[0].isdigit():
        command_executor.log("usage: command.py --fork-server FD")
        return 2
    return serve(int(argv[0]))
