"""The I/O switchboard: the standard streams of a container the agent carries over HTTP.

Mesos runs an `mesos-io-switchboard` process per container that needs one (a container with a
TTY, or a session: `IOSwitchboard::requiresServer`); mezzo does the same work inside the agent's
event loop, one `Switchboard` per container:

- it creates the container's streams: a pseudo-terminal (`tty=True`; stdout and stderr are then
  one stream, reported as STDOUT, as in Mesos) or three pipes; `stdio` is what the launcher
  gives the child (`ContainerStdio`);
- output: every chunk read from the container is appended to the sandbox's `stdout`/`stderr`
  files (what Mesos's switchboard writes to the container logger) and queued, as
  `(stream, bytes)`, to every attached output connection (`attach_output`); a session waits for
  its first output connection before it reads anything (`wait_for_connection`), so nothing is
  lost before the client is there; the end of output (EOF on every stream) ends every
  connection (`None` on its queue);
- input: one input connection at a time (`claim_input`; Mesos: 409 "Multiple input
  connections are not allowed"); `write` feeds stdin, `close_stdin` is the end of input (an
  empty DATA record without a TTY; with a TTY the client sends EOT, ^D, instead);
  `resize` sets the terminal's window size (TTY_INFO control records).

No decisions here: which container gets a switchboard is `mezzo.agent.nested`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import struct
import termios
from pathlib import Path

from mezzo.agent.containerizer.paths import stderr_path, stdout_path
from mezzo.agent.containerizer.records import ContainerStdio

STDOUT = "STDOUT"
STDERR = "STDERR"
READ_SIZE = 64 * 1024
# Output records queued per connection before the slowest reader is dropped.
MAX_QUEUED = 4096
# How long output may keep flowing after the container's root exited (its streams close when
# the last process holding them is killed with the container).
DRAIN_SECONDS = 5.0

Output = tuple[str, bytes] | None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def window_of(tty_info: dict[str, object] | None) -> tuple[int, int] | None:
    """`TTYInfo.window_size` as (rows, columns), if it is given and well-formed."""
    size = (tty_info or {}).get("window_size")
    if not isinstance(size, dict):
        return None
    rows, columns = size.get("rows"), size.get("columns")
    if isinstance(rows, int) and isinstance(columns, int) and 0 <= rows < 65536 and 0 <= columns < 65536:
        return rows, columns
    return None


class Switchboard:
    """The streams of one container (see the module docstring)."""

    def __init__(self, sandbox: Path, *, tty: bool, wait_for_connection: bool,
                 window: tuple[int, int] | None = None) -> None:
        self.tty = tty
        self._child_fds: list[int] = []
        self._readers: dict[int, str] = {}
        if tty:
            master, slave = os.openpty()
            self._feed = master
            path = os.ttyname(slave)
            self.stdio = ContainerStdio(slave, slave, slave, master, path)
            self._child_fds = [slave]
            self._readers = {master: STDOUT}
            if window is not None:
                self.resize(*window)
        else:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            self._feed = in_w
            self.stdio = ContainerStdio(in_r, out_w, err_w, in_w, None)
            self._child_fds = [in_r, out_w, err_w]
            self._readers = {out_r: STDOUT, err_r: STDERR}
        for fd in self._readers:
            os.set_blocking(fd, False)
        os.set_blocking(self._feed, False)
        sandbox.mkdir(parents=True, exist_ok=True)
        self._logs = {
            STDOUT: open(stdout_path(sandbox), "ab", buffering=0),  # noqa: SIM115
            STDERR: open(stderr_path(sandbox), "ab", buffering=0),  # noqa: SIM115
        }
        self._outputs: list[asyncio.Queue[Output]] = []
        self._wait_for_connection = wait_for_connection
        self._reading = False
        self._input_claimed = False
        self._stdin_open = True
        self._feed_closed = False
        self.output_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # ------------------------------------------------------------------ lifecycle

    def started(self) -> None:
        """The container runs: drop the agent's copies of the child's ends (so that EOF comes
        when the container closes its own), and read unless waiting for a connection."""
        for fd in self._child_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._child_fds = []
        if not self._wait_for_connection:
            self._start_reading()

    async def drain_and_close(self) -> None:
        """After the container ended: let its last output through (bounded), then close."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.output_done), DRAIN_SECONDS)
        self.close()

    def close(self) -> None:
        """Release everything (the container is gone, or never started)."""
        loop = asyncio.get_running_loop()
        for fd in list(self._readers):
            self._stop_reader(loop, fd)
        for fd in self._child_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._child_fds = []
        self._stdin_open = False
        self._close_feed()
        for f in self._logs.values():
            f.close()
        self._finish_output()

    # ------------------------------------------------------------------ output

    def attach_output(self) -> asyncio.Queue[Output]:
        """A new output connection: every chunk from now on, then None at the end."""
        queue: asyncio.Queue[Output] = asyncio.Queue()
        if self.output_done.done():
            queue.put_nowait(None)
            return queue
        self._outputs.append(queue)
        if not self._reading:
            self._start_reading()
        return queue

    def detach_output(self, queue: asyncio.Queue[Output]) -> None:
        with contextlib.suppress(ValueError):
            self._outputs.remove(queue)

    def _start_reading(self) -> None:
        self._reading = True
        loop = asyncio.get_running_loop()
        for fd, stream in self._readers.items():
            loop.add_reader(fd, self._on_readable, fd, stream)

    def _on_readable(self, fd: int, stream: str) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as e:
            # A pty master reads EIO once no process has the slave open: the end of output.
            if e.errno not in (errno.EIO, errno.EBADF):
                raise
            data = b""
        if not data:
            self._stop_reader(asyncio.get_running_loop(), fd)
            if not self._readers:
                self._finish_output()
            return
        with contextlib.suppress(OSError, ValueError):
            self._logs[stream].write(data)
        for queue in list(self._outputs):
            if queue.qsize() >= MAX_QUEUED:
                self._outputs.remove(queue)
                queue.put_nowait(None)  # a reader that fell too far behind is cut off
            else:
                queue.put_nowait((stream, data))

    def _stop_reader(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            with contextlib.suppress(Exception):
                loop.remove_reader(fd)
            if fd != self._feed:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _finish_output(self) -> None:
        if not self.output_done.done():
            self.output_done.set_result(None)
        for queue in self._outputs:
            queue.put_nowait(None)
        self._outputs = []

    # ------------------------------------------------------------------ input

    def claim_input(self) -> bool:
        """Take the one input connection; False if another one has it."""
        if self._input_claimed:
            return False
        self._input_claimed = True
        return True

    def release_input(self) -> None:
        self._input_claimed = False

    async def write(self, data: bytes) -> None:
        """Feed the container's stdin (waits while the pipe or pty is full); OSError (EPIPE,
        EIO) once nothing reads it any more."""
        if not self._stdin_open:
            raise OSError(errno.EPIPE, "stdin is closed")
        view = memoryview(data)
        loop = asyncio.get_running_loop()
        while view:
            try:
                written = os.write(self._feed, view)
            except BlockingIOError:
                ready: asyncio.Future[None] = loop.create_future()
                loop.add_writer(self._feed, _resolve, ready)
                try:
                    await ready
                finally:
                    loop.remove_writer(self._feed)
                continue
            view = view[written:]

    def close_stdin(self) -> None:
        """The end of input: close the pipe (with a pty the master stays: it carries output)."""
        self._stdin_open = False
        if not self.tty:
            self._close_feed()

    def _close_feed(self) -> None:
        if not self._feed_closed:
            self._feed_closed = True
            with contextlib.suppress(OSError):
                os.close(self._feed)

    def resize(self, rows: int, columns: int) -> None:
        """Set the terminal's window size (the container gets SIGWINCH); OSError without a
        TTY."""
        if not self.tty:
            raise OSError(errno.ENOTTY, "the container has no TTY")
        fcntl.ioctl(self._feed, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
