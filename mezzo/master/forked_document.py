"""Big documents made away from the master's event loop: by a forked copy of the master.

`/master/state` and the operator API's GET_STATE (and the other streamed calls) at thousands of
agents take hundreds of milliseconds of CPU to make (issue 12: 0.3 s in process at 9,000 agents
and 72,000 tasks, 0.7 s on a busy master's loop). Made in slices on the loop
(`mezzo.master.slices`), they share the loop with everything else, so the document waits for
the master's other work and the other work waits for the document.

Here the master forks instead. The child is a copy-on-write snapshot of the master at that
instant: it makes the document from its copy and writes it on the request's connection, then
exits. The parent goes on with its loop the moment `fork()` returns (7-22 ms at 9,000 agents:
the page tables are copied, not the memory), and another CPU does the making. Only another
CPU: on the master's own the copy costs 3-4x the making on the loop (the pages it copies, the
caches the two share) and takes that CPU from the loop, so `--forked_documents auto` forks only
when one is free (`spare_cpu`; docs/benchmarks.md, "Tenth pass"). This is how Redis writes its snapshots; the document is as consistent as the in-loop
one (more: one instant, not the state as it changed between slices).

The protocol with the HTTP shell:
- The shell has sent the response's head (status and headers, chunked transfer encoding) and
  waited until the connection's buffer is empty, so that nothing of the parent's is still to
  go out on it.
- The child writes the body as HTTP/1.1 chunks on its copy of the socket (non-blocking, as the
  parent's; it waits with `poll()`), never the last chunk, and exits 0 when all is written
  (1 when the client went away or `CHILD_TIMEOUT` passed).
- The parent waits for the child's exit without blocking the loop (a pidfd on the loop), then
  writes the last chunk through its own writer, so that the connection's framing and
  keep-alive stay its HTTP server's. Until then it writes nothing on that connection (HTTP/1.1
  answers one request at a time per connection).

The child touches nothing of the parent's: not the loop or its selector, not the signal
wake-up fd (a signal to the child would otherwise wake the parent's loop), not the logging
locks; it closes every descriptor but its connection at once. Python's reference counts make the child copy the pages it reads;
that costs the child (the other CPU) and some memory for as long as it lives, not the parent.
"""

from __future__ import annotations

import asyncio
import gc
import os
import select
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

# Documents of a master with fewer entries (agents plus running and completed tasks) are made
# on the loop: a fork and a process cost a few milliseconds, which a small document does not
# save (1,000 agents and 8,000 tasks: ~25 ms of CPU). At 20,000 entries a document is ~0.1 s.
MIN_ENTRIES = 20_000
# How long a child may take to write its document (a client that stopped reading).
CHILD_TIMEOUT = 120.0
# The child's exit codes other than 0.
CLIENT_GONE = 1
FAILED = 2
# How much nicer than the master the child runs.
CHILD_NICENESS = 10
# The child writes the document in chunks of about this size.
CHUNK_BYTES = 256 << 10


def available() -> bool:
    """Whether this platform can fork and watch a child on the loop (Linux)."""
    return sys.platform == "linux" and hasattr(os, "fork") and hasattr(os, "pidfd_open")


def spare_cpu() -> bool:
    """Whether a copy would have a CPU of its own: the master may run on two CPUs or more, and
    the load average (1 minute) leaves one of them free. Without one the copy takes its CPU
    from the master's loop: on a two-vCPU machine whose CPUs the master and the benchmark's
    load generators fill, a document made by a copy took 4.9 s and held the master's
    requests up to 0.9 s, against 1.3 s and 77 ms made on the loop (docs/benchmarks.md)."""
    cpus = len(os.sched_getaffinity(0))
    return cpus >= 2 and os.getloadavg()[0] <= cpus - 1


@dataclass(frozen=True)
class Forked:
    """How a forked document went: `written` (the child wrote it all), `client_gone` (it
    stopped because the client went away or stopped reading), `seconds` from the
    fork to the child's exit, `fork_seconds` the parent spent in `fork()` (its loop's stall);
    the child's own account: its CPU seconds, and the seconds it waited for the client to take
    what it wrote (0.0 when it could not tell)."""

    written: bool
    client_gone: bool
    seconds: float
    fork_seconds: float
    pid: int
    child_cpu: float = 0.0
    child_waiting: float = 0.0


async def write_document(fd: int, pieces: Iterator[bytes]) -> Forked:
    """Fork; the child writes `pieces` as HTTP/1.1 chunks on `fd` (a non-blocking socket whose
    response head has been sent) and exits; returns once it has, without blocking the loop.
    Raises OSError only when the fork itself fails (nothing was written)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    report, reported = os.pipe()  # the child's account of its time
    _hold_full_collections()
    try:
        pid = os.fork()
    except OSError:
        _release_full_collections()
        os.close(report)
        os.close(reported)
        raise
    if pid == 0:  # the child
        os.close(report)
        _write_and_exit(fd, pieces, reported)
    os.close(reported)
    forked = loop.time()
    try:
        done = await _wait_for_child(loop, pid, start, forked)
        account = os.read(report, 64).split()  # written before the child exited
        if len(account) == 2:
            return replace(done, child_cpu=float(account[0]), child_waiting=float(account[1]))
        return done
    finally:
        os.close(report)
        _release_full_collections()


# While a child lives, every page either process writes is copied first. A collection of the
# parent's oldest generation writes to every object it walks, so it would copy the whole heap
# (a full collection at 9,000 agents: 156 ms alone, 266 ms with a child making a document on
# the same CPU; a 681 ms stall in a run at 9,000 agents). So the parent makes no full
# collection while a child lives (a few seconds at most); the young and middle generations are
# collected as ever (their objects are mostly newer than the fork). Not `gc.freeze()`: its
# `unfreeze()` would also hand back to the collector what the daemon froze at start-up.
_children = 0
_thresholds: tuple[int, int, int] | None = None
NO_FULL_COLLECTION = 1 << 30


def _hold_full_collections() -> None:
    global _children, _thresholds
    if _children == 0:
        _thresholds = gc.get_threshold()
        gc.set_threshold(_thresholds[0], _thresholds[1], NO_FULL_COLLECTION)
    _children += 1


def _release_full_collections() -> None:
    global _children, _thresholds
    _children -= 1
    if _children == 0 and _thresholds is not None:
        gc.set_threshold(*_thresholds)
        _thresholds = None


async def _wait_for_child(loop: asyncio.AbstractEventLoop, pid: int, start: float, forked: float) -> Forked:
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # cannot watch it: wait in a thread
        status = await asyncio.to_thread(_wait, pid)
    else:
        exited: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, readable)
        try:
            await exited
        except asyncio.CancelledError:
            os.kill(pid, signal.SIGKILL)
            raise
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            if not exited.done():
                _wait(pid)  # killed above: reap it
        status = _wait(pid)
    return Forked(status == 0, status == CLIENT_GONE, loop.time() - start, forked - start, pid)


def _wait(pid: int) -> int:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:  # already reaped
        return FAILED
    return os.waitstatus_to_exitcode(status)


def _write_and_exit(fd: int, pieces: Iterator[bytes], report: int) -> None:
    """The child: write the document, report its time on `report`, exit. Never returns,
    whatever happens."""
    code = FAILED
    writer: _ChunkWriter | None = None
    try:
        gc.disable()  # a collection would walk (and copy) the whole heap for nothing
        # Below the master: on a CPU the two share, the loop comes first and the document
        # takes what is left (`spare_cpu` is a one-minute average; a burst can start meanwhile).
        os.nice(CHILD_NICENESS)
        # The pages it copies are memory the master did not need: if the machine runs out,
        # the kernel is to kill the copy, not the master.
        _first_to_kill()
        signal.set_wakeup_fd(-1)
        # Nothing of the master's but this connection: a copy holding the listening socket
        # or an agent's connection would keep it open after the master closed it (or died,
        # as a deposed leader does: clients would wait on its port instead of being refused).
        _close_all_but(0, 1, 2, fd, report)
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGALRM):
            signal.signal(number, signal.SIG_DFL)
        # A watchdog: whatever holds the child up (a lock some other thread of the master held
        # at the fork), the kernel ends it, and the parent answers for the document.
        signal.alarm(int(CHILD_TIMEOUT) + 5)
        writer = _ChunkWriter(fd, CHILD_TIMEOUT)
        pending: list[bytes] = []
        size = 0
        for piece in pieces:
            pending.append(piece)
            size += len(piece)
            if size >= CHUNK_BYTES:
                writer.chunk(b"".join(pending))
                pending, size = [], 0
        if size:
            writer.chunk(b"".join(pending))
        code = 0
    except (OSError, TimeoutError):  # the client went away, or stopped reading
        code = CLIENT_GONE
    except BaseException:  # a bug: the parent logs it as such
        code = FAILED
    finally:
        try:
            waiting = writer.waiting if writer is not None else 0.0
            os.write(report, b"%.6f %.6f" % (time.process_time(), waiting))
        finally:
            os._exit(code)


def _first_to_kill() -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")
    except OSError:
        pass  # not Linux's procfs: the copy is still short-lived


def _close_all_but(*kept: int) -> None:
    start = 0
    for keep in sorted(set(kept)):
        if keep > start:
            os.closerange(start, keep)
        start = keep + 1
    os.closerange(start, max(os.sysconf("SC_OPEN_MAX"), start + 1))


class _ChunkWriter:
    """Writes HTTP/1.1 chunks on a non-blocking socket fd, waiting for room with `poll()`."""

    def __init__(self, fd: int, timeout: float) -> None:
        self.fd = fd
        self.waiting = 0.0  # seconds spent waiting for room
        self.poll = select.poll()
        self.poll.register(fd, select.POLLOUT)
        self.timeout_ms = int(timeout * 1000)

    def chunk(self, data: bytes) -> None:
        self._write(b"%x\r\n" % len(data) + data + b"\r\n")

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = os.write(self.fd, view)
            except BlockingIOError:
                started = time.monotonic()
                events = self.poll.poll(self.timeout_ms)
                self.waiting += time.monotonic() - started
                if not events:
                    raise TimeoutError("the client did not read the document") from None
                if events[0][1] & (select.POLLERR | select.POLLHUP):
                    raise ConnectionResetError("the client went away") from None
                continue
            view = view[sent:]
