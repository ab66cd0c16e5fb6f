"""The daemons' own log (master and agent): `--logging_level` and `--log_dir`, as Mesos's.

Mesos's master and agent take the same two logging flags (docs/configuration/master.md and
agent.md, docs/logging.md): `--logging_level`, the least severe level logged (INFO, WARNING or
ERROR; default INFO), and `--log_dir`, a directory the log is also written to (nothing is
written to disk without it; stderr is logged to either way). mezzo also takes DEBUG, which
its master always accepted; levels are case-insensitive. Anything else is refused at start-up
(`LOGGING_LEVEL` is the flags' type, so the error is the usual one line naming the flag).

`configure_logging` sets up one daemon's logging: the format below on stderr and, with a log
directory (created if need be), the same lines appended to `<log_dir>/<file>`, the file the
daemon then serves as its virtual log (`/master/log`, `/slave/log`). A directory that cannot be
created or a file that cannot be opened is a one-line ConfigError. Standard library only, and
only `configure_logging` imports `logging` and `pathlib`: the flag tables, which `mezzo master
--help` and `mezzo agent --help` read, import this module for `LOGGING_LEVEL`.
"""

from __future__ import annotations

from mezzo.core.errors import ConfigError

TYPE_CHECKING = False  # (no `typing` import: see above)

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["FORMAT", "LEVELS", "LOGGING_LEVEL", "configure_logging", "parse_logging_level"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Mesos's levels (glog's severities but FATAL) and mezzo's DEBUG, least severe first.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def parse_logging_level(text: str) -> str:
    """The level `text` names, upper case; ConfigError (without the flag's name) otherwise."""
    level = text.strip().upper()
    if level not in LEVELS:
        raise ConfigError(f"expected one of INFO, WARNING, ERROR (or DEBUG), got {text!r}")
    return level


# The type of both daemons' `--logging_level` flag (`mezzo.core.flags.Flag.type`).
LOGGING_LEVEL = parse_logging_level


def configure_logging(level: str, log_dir: str | None, file_name: str) -> Path | None:
    """Log at `level` and above to stderr and, with `log_dir`, to `<log_dir>/<file_name>`
    (returned). Call once, at start-up; ConfigError if the level or the directory is bad."""
    import logging
    import sys
    from pathlib import Path

    numeric = getattr(logging, parse_logging_level(level))
    handler: logging.FileHandler | None = None
    path: Path | None = None
    if log_dir:
        path = Path(log_dir) / file_name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(path, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--log_dir: cannot write {path}: {exc.strerror or exc}") from None
    logging.basicConfig(level=numeric, stream=sys.stderr, format=FORMAT)
    if handler is not None:
        handler.setFormatter(logging.Formatter(FORMAT))
        logging.getLogger().addHandler(handler)
    return path
