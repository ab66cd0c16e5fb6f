"""Container loggers: the default sandbox files and the logrotate logger (real processes)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mezzo.agent.containerizer import ContainerConfig, Containerizer, IsolationOptions, LaunchError
from mezzo.agent.containerizer.logger import (
    LOGROTATE_LOGGER,
    LogrotateLogger,
    SandboxLogger,
    StreamLimits,
    create_logger,
    parse_bytes,
    parse_keep,
)
from mezzo.core.errors import ConfigError

PAGE = os.sysconf("SC_PAGE_SIZE")

# Numbered lines of 10 bytes ("000000042\n"): rotated files can be checked for order and loss.
WRITER = "i=0; while [ $i -lt {n} ]; do printf '%09d\\n' $i; i=$((i+1)); done"


def lines(n: int) -> bytes:
    return b"".join(b"%09d\n" % i for i in range(n))


async def until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def rotated(sandbox: Path, name: str) -> list[Path]:
    """``name.N`` ... ``name.1``, ``name``: oldest first."""
    olds = sorted(sandbox.glob(f"{name}.*"), key=lambda p: -int(p.suffix[1:]))
    return [*olds, sandbox / name]


def test_sizes_and_options_parse_like_mesos() -> None:
    assert parse_bytes("4096B") == 4096
    assert parse_bytes("4KB") == 4096
    assert parse_bytes("10MB") == 10 * 1024 * 1024
    assert parse_bytes("1GB") == 1 << 30
    with pytest.raises(ConfigError, match="invalid byte size"):
        parse_bytes("ten")
    assert parse_keep("") == 0  # logrotate's default: rotate 0
    assert parse_keep("rotate 5") == 5
    assert parse_keep("rotate 3\nsize 1MB") == 3
    with pytest.raises(ValueError, match="unsupported logrotate option 'compress'"):
        parse_keep("rotate 3\ncompress")


def test_flags_select_and_validate_the_logger() -> None:
    assert isinstance(create_logger(None), SandboxLogger)
    logger = create_logger(LOGROTATE_LOGGER, "8KB", "rotate 2", None, "rotate 1")
    assert isinstance(logger, LogrotateLogger)
    assert logger.stdout == StreamLimits(8192, 2)
    assert logger.stderr == StreamLimits(10 * 1024 * 1024, 1)
    with pytest.raises(ConfigError, match="unknown logger"):
        create_logger("org_example_Nope")
    with pytest.raises(ConfigError, match="--max_stdout_size must be at least"):
        create_logger(LOGROTATE_LOGGER, "100B")
    with pytest.raises(ConfigError, match="--logrotate_stderr_options: unsupported"):
        create_logger(LOGROTATE_LOGGER, None, None, None, "daily")


def test_container_environment_overrides_the_flags() -> None:
    logger = LogrotateLogger(StreamLimits(8192, 2), StreamLimits(8192, 2))
    env = {
        "CONTAINER_LOGGER_MAX_STDOUT_SIZE": "16KB",
        "CONTAINER_LOGGER_LOGROTATE_STDERR_OPTIONS": "rotate 7",
    }
    assert logger.limits_for(env) == (StreamLimits(16384, 2), StreamLimits(8192, 7))
    with pytest.raises(LaunchError, match="max_stdout_size"):
        logger.limits_for({"CONTAINER_LOGGER_MAX_STDOUT_SIZE": "lots"})


async def test_a_chatty_task_is_rotated_within_the_bound(tmp_path: Path) -> None:
    max_size, keep, n = PAGE, 2, 5000  # 50,000 bytes written, at most 3 pages kept
    logger = LogrotateLogger(StreamLimits(max_size, keep), StreamLimits(max_size, 0))
    c = Containerizer.create(IsolationOptions(isolation="posix/cpu"), logger)
    sandbox = tmp_path / "sandbox"
    script = WRITER.format(n=n) + "; echo oops >&2"
    await c.launch("c1", ContainerConfig(sandbox=sandbox, shell=script))
    assert (await c.wait("c1")).exit_code == 0
    expected = lines(n)
    # The logger drains the pipe and exits after the container; poll for the last line.
    await until(lambda: (sandbox / "stdout").read_bytes().endswith(expected[-10:]), what="tail")
    files = rotated(sandbox, "stdout")
    assert [p.name for p in files] == ["stdout.2", "stdout.1", "stdout"]
    assert all(p.stat().st_size <= max_size for p in files)
    kept = b"".join(p.read_bytes() for p in files)
    assert expected.endswith(kept)  # the newest output, in order, nothing lost in between
    assert len(kept) > 2 * max_size
    assert (sandbox / "stderr").read_bytes() == b"oops\n"
    assert not list(sandbox.glob("stderr.*"))


async def test_overrides_reach_the_logger_and_default_stays_plain_files(tmp_path: Path) -> None:
    logger = LogrotateLogger(StreamLimits(10 * PAGE, 0), StreamLimits(10 * PAGE, 0))
    c = Containerizer.create(IsolationOptions(isolation="posix/cpu"), logger)
    sandbox = tmp_path / "rotated"
    env = dict(os.environ)
    env["CONTAINER_LOGGER_MAX_STDOUT_SIZE"] = f"{PAGE}B"
    env["CONTAINER_LOGGER_LOGROTATE_STDOUT_OPTIONS"] = "rotate 1"
    await c.launch("c1", ContainerConfig(sandbox=sandbox, shell=WRITER.format(n=2000), env=env))
    await c.wait("c1")
    expected = lines(2000)
    await until(lambda: (sandbox / "stdout").read_bytes().endswith(expected[-10:]), what="tail")
    assert sorted(p.name for p in sandbox.glob("stdout*")) == ["stdout", "stdout.1"]
    assert (sandbox / "stdout.1").stat().st_size == PAGE

    plain = Containerizer.create(IsolationOptions(isolation="posix/cpu"))
    sandbox = tmp_path / "plain"
    await plain.launch("c2", ContainerConfig(sandbox=sandbox, shell=WRITER.format(n=2000)))
    await plain.wait("c2")
    assert (sandbox / "stdout").read_bytes() == expected
    assert not list(sandbox.glob("stdout.*"))
