"""Container loggers: where a container's stdout and stderr go (Mesos's ``--container_logger``).

- `SandboxLogger` (the default, Mesos's sandbox logger): both are appended to plain files
  ``<sandbox>/stdout`` and ``<sandbox>/stderr``, unbounded.
- `LogrotateLogger` (``--container_logger=org_apache_mesos_LogrotateContainerLogger``): both
  go to pipes read by a companion process (`logrotate_logger.py`) that rotates each file at
  ``max_stdout_size`` / ``max_stderr_size``, keeping the number of old files named by
  ``rotate N`` in ``logrotate_stdout_options`` / ``logrotate_stderr_options``. A container's
  environment may override the four values with ``CONTAINER_LOGGER_MAX_STDOUT_SIZE``,
  ``CONTAINER_LOGGER_LOGROTATE_STDOUT_OPTIONS``, ``CONTAINER_LOGGER_MAX_STDERR_SIZE`` and
  ``CONTAINER_LOGGER_LOGROTATE_STDERR_OPTIONS`` (Mesos's module parameters and overrides).

Mesos hands the options to the ``logrotate`` binary; we rotate ourselves and understand only
``rotate N`` (other directives are refused with a clear error rather than ignored). The
companion is started through ``/bin/sh -c '... &'`` so that it is not our child (init reaps
it) and costs the launch ~1 ms, not an interpreter start-up.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from mezzo.agent.containerizer.paths import stderr_path, stdout_path
from mezzo.agent.containerizer.records import LaunchError
from mezzo.core.errors import ConfigError
from mezzo.core.flags import parse_bytes

LOGROTATE_LOGGER = "org_apache_mesos_LogrotateContainerLogger"
SANDBOX_LOGGER = "org_apache_mesos_SandboxContainerLogger"
ENV_PREFIX = "CONTAINER_LOGGER_"
DEFAULT_MAX_SIZE = 10 * 1024 * 1024  # Mesos: 10MB
MIN_MAX_SIZE = os.sysconf("SC_PAGE_SIZE")  # Mesos: one memory page
LOGGER_SCRIPT = Path(__file__).with_name("logrotate_logger.py")

def parse_keep(options: str) -> int:
    """The number of rotated files kept, from logrotate options (``rotate N``; default 0, as
    logrotate's). ValueError on any directive but ``rotate`` and ``size`` (overridden)."""
    keep = 0
    for line in re.split(r"[\n;]", options):
        words = line.split()
        if not words:
            continue
        if words[0] == "rotate" and len(words) == 2 and words[1].isdigit():
            keep = int(words[1])
        elif words[0] != "size":
            raise ValueError(f"unsupported logrotate option {line.strip()!r} (only 'rotate N')")
    return keep


@dataclass(frozen=True)
class StreamLimits:
    max_size: int = DEFAULT_MAX_SIZE
    keep: int = 0


def stream_limits(max_size: str | None, options: str | None, what: str) -> StreamLimits:
    """Validated limits of one stream; ValueError naming ``what``."""
    size = DEFAULT_MAX_SIZE
    if max_size is not None:
        try:
            size = parse_bytes(max_size)
        except ConfigError as e:
            raise ValueError(f"max_{what}_size: {e}") from None
        if size < MIN_MAX_SIZE:
            raise ValueError(f"max_{what}_size must be at least {MIN_MAX_SIZE} bytes (one page)")
    try:
        keep = parse_keep(options or "")
    except ValueError as e:
        raise ValueError(f"logrotate_{what}_options: {e}") from None
    return StreamLimits(size, keep)


class ContainerLogger(Protocol):
    def open(self, sandbox: Path, env: Mapping[str, str]) -> contextlib.AbstractContextManager[
        tuple[BinaryIO, BinaryIO]
    ]:
        """The container's (stdout, stderr), closed in the agent once the container has them."""
        ...


class SandboxLogger:
    """Plain append-only files in the sandbox (Mesos's default)."""

    @contextlib.contextmanager
    def open(self, sandbox: Path, env: Mapping[str, str]) -> Iterator[tuple[BinaryIO, BinaryIO]]:
        with open(stdout_path(sandbox), "ab") as out, open(stderr_path(sandbox), "ab") as err:
            yield out, err


@dataclass(frozen=True)
class LogrotateLogger:
    """Rotated files written by a companion process (see the module docstring)."""

    stdout: StreamLimits = StreamLimits()
    stderr: StreamLimits = StreamLimits()

    @classmethod
    def from_flags(
        cls,
        max_stdout_size: str | None = None,
        logrotate_stdout_options: str | None = None,
        max_stderr_size: str | None = None,
        logrotate_stderr_options: str | None = None,
    ) -> LogrotateLogger:
        try:
            return cls(
                stream_limits(max_stdout_size, logrotate_stdout_options, "stdout"),
                stream_limits(max_stderr_size, logrotate_stderr_options, "stderr"),
            )
        except ValueError as e:
            raise ConfigError(f"--{e}") from None

    def limits_for(self, env: Mapping[str, str]) -> tuple[StreamLimits, StreamLimits]:
        """The flags' limits with the container's ``CONTAINER_LOGGER_*`` overrides applied."""
        out = []
        for what, default in (("stdout", self.stdout), ("stderr", self.stderr)):
            size = env.get(f"{ENV_PREFIX}MAX_{what.upper()}_SIZE")
            options = env.get(f"{ENV_PREFIX}LOGROTATE_{what.upper()}_OPTIONS")
            if size is None and options is None:
                out.append(default)
                continue
            try:
                limits = stream_limits(size, options, what)
            except ValueError as e:
                raise LaunchError(f"container logger ({ENV_PREFIX}* override): {e}") from None
            out.append(
                StreamLimits(
                    limits.max_size if size is not None else default.max_size,
                    limits.keep if options is not None else default.keep,
                )
            )
        return out[0], out[1]

    @contextlib.contextmanager
    def open(self, sandbox: Path, env: Mapping[str, str]) -> Iterator[tuple[BinaryIO, BinaryIO]]:
        limits = self.limits_for(env)
        pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(2)]
        try:
            argv = []
            for (read_end, _), path, lim in zip(
                pipes, (stdout_path(sandbox), stderr_path(sandbox)), limits, strict=True
            ):
                path.touch()  # exists at once (chown, `mezzo logs`), even before any output
                argv += [str(read_end), str(path), str(lim.max_size), str(lim.keep)]
            self._start([r for r, _ in pipes], argv)
        except BaseException:
            for r, w in pipes:
                os.close(r)
                os.close(w)
            raise
        for r, _ in pipes:
            os.close(r)
        with os.fdopen(pipes[0][1], "wb", buffering=0) as out, os.fdopen(
            pipes[1][1], "wb", buffering=0
        ) as err:
            yield out, err  # type: ignore[misc]

    @staticmethod
    def _start(read_ends: list[int], args: list[str]) -> None:
        argv = [sys.executable, "-S", "-E", str(LOGGER_SCRIPT), *args]
        try:
            shell = subprocess.Popen(
                ["/bin/sh", "-c", '"$@" &', "mezzo-logger", *argv],
                pass_fds=read_ends,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            raise LaunchError(f"cannot start the container logger: {e}") from e
        if shell.wait() != 0:
            raise LaunchError(f"cannot start the container logger (sh exited {shell.returncode})")


def create_logger(
    name: str | None,
    max_stdout_size: str | None = None,
    logrotate_stdout_options: str | None = None,
    max_stderr_size: str | None = None,
    logrotate_stderr_options: str | None = None,
) -> ContainerLogger:
    """The logger named by ``--container_logger`` (None: the sandbox logger); ConfigError."""
    if name in (None, "", SANDBOX_LOGGER):
        return SandboxLogger()
    if name == LOGROTATE_LOGGER:
        return LogrotateLogger.from_flags(
            max_stdout_size, logrotate_stdout_options, max_stderr_size, logrotate_stderr_options
        )
    raise ConfigError(f"--container_logger: unknown logger {name!r} (known: {LOGROTATE_LOGGER})")
