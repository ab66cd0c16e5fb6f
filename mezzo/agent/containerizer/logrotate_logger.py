"""The companion process of the logrotate container logger (Mesos's `mesos-logrotate-logger`).

Run as a script (``python -S -E logrotate_logger.py``; stdlib only, it imports nothing of
mezzo) by `mezzo.agent.containerizer.logger`. It reads a container's stdout and stderr from
pipes and appends them to ``<sandbox>/stdout`` and ``<sandbox>/stderr``, never letting a file
grow past its maximum size: the file full, it is rotated (``stdout`` -> ``stdout.1`` ->
... -> ``stdout.N``, the oldest dropped; with ``N`` = 0 the old content is dropped, like
``logrotate``'s ``rotate 0``). So a container uses at most ``(N + 1) * max`` bytes per stream.

It exits once every writer of both pipes has closed them (the container and all its
processes ended) and all was written. It runs in its own session, outside the container, so
a destroyed container's last output is still written, and it outlives an agent restart.

Usage: ``logrotate_logger.py FD PATH MAX_SIZE KEEP [FD PATH MAX_SIZE KEEP]``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import sys

READ_BYTES = 1 << 16


class RotatingFile:
    """Appends to ``path``, rotating it before it would exceed ``max_size`` bytes."""

    def __init__(self, path: str, max_size: int, keep: int) -> None:
        self.path = path
        self.max_size = max_size
        self.keep = keep
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._size = os.fstat(self._fd).st_size

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            room = self.max_size - self._size
            if room <= 0:
                self.rotate()
                room = self.max_size
            chunk = view[:room]
            written = os.write(self._fd, chunk)
            self._size += written
            view = view[written:]

    def rotate(self) -> None:
        # ``path`` never disappears (a reader following it sees a shorter file, not a 404):
        # the full file is hard-linked as ``path.1``, then an empty one replaces it atomically.
        os.close(self._fd)
        fresh = f"{self.path}.new"
        os.close(os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644))
        if self.keep > 0:
            for n in range(self.keep - 1, 0, -1):
                older = f"{self.path}.{n}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{n + 1}")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}.1")
            os.link(self.path, f"{self.path}.1")
        os.replace(fresh, self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._size = 0

    def close(self) -> None:
        os.close(self._fd)


def run(streams: list[tuple[int, RotatingFile]]) -> None:
    selector = selectors.DefaultSelector()
    for fd, target in streams:
        selector.register(fd, selectors.EVENT_READ, target)
    while selector.get_map():
        for key, _ in selector.select():
            data = os.read(key.fd, READ_BYTES)
            if data:
                key.data.write(data)
            else:  # every writer closed it
                selector.unregister(key.fd)
                os.close(key.fd)
                key.data.close()


def main(argv: list[str]) -> int:
    if not argv or len(argv) % 4:
        print("usage: logrotate_logger.py FD PATH MAX_SIZE KEEP [...]", file=sys.stderr)
        return 2
    streams = []
    for i in range(0, len(argv), 4):
        fd, path, max_size, keep = argv[i : i + 4]
        streams.append((int(fd), RotatingFile(path, int(max_size), int(keep))))
    run(streams)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
