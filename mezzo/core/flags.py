"""Declarative command-line flags, loaded the way Mesos loads them.

A daemon (master, agent) declares each flag once as a `Flag`: its Mesos name, its default as
Mesos prints it (a string, or None for "unset"), its help, and its type. The type does the
parsing, so every flag of a type accepts the same spellings and fails with the same message:

- `DURATION`: Mesos durations (`5secs`, `100ms`, `1.5hrs`), in seconds;
- `BYTES`: Mesos byte sizes (`512MB`, `10GB`, `64KB`, `100B`), in bytes;
- `BOOL` (`true`/`false`, also `1`/`0`, `yes`/`no`), `INT` (with a lower bound), `FLOAT`;
- `JSON_OBJECT`: a JSON object, given inline or as `file:///path/to/file.json` (Mesos reads
  a `file://` value from that file);
- `TEXT` and `WORDS` (shell words, `shlex.split`).

`FlagSet.collect()` merges the sources in Mesos's order: the default, then the environment
variable `MESOS_<NAME>` (upper case; "values are searched for first in the environment, then on
the command line", Mesos docs/configuration.md), then the command line, which wins. Only the
`MESOS_` prefix is read: mezzo is a drop-in Mesos and one prefix keeps it unambiguous which
variable configured a daemon (there is no `MEZZO_<NAME>`). Unknown `MESOS_*` variables are
ignored, as Mesos does (executors see several). Errors are one line naming the flag:
`--port: expected an integer, got 'x'`.
"""

from __future__ import annotations

import json
import re
import shlex

from mezzo.core.durations import parse_duration
from mezzo.core.errors import ConfigError

# Typing names for the checker only: `mezzo master --help` and `mezzo agent --help` import this
# module and pay for `typing` (and `dataclasses`, with `inspect` behind it) otherwise.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any, TypeVar

    T = TypeVar("T")
    # (text) -> value; raises ConfigError (or ValueError) describing the problem, without the
    # name.
    Parser = Callable[[str], Any]

ENV_PREFIX = "MESOS_"
FILE_PREFIX = "file://"


def read_file_value(text: str) -> str:
    """The value itself, or the contents of the file a `file:///path` value names."""
    if not text.startswith(FILE_PREFIX):
        return text
    path = text[len(FILE_PREFIX) :]
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {text}: {exc.strerror or exc}") from None


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ConfigError(f"expected true or false, got {text!r}")


def parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"expected an integer, got {text!r}") from None


def parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"expected a number, got {text!r}") from None


_BYTE_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
_BYTES = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([A-Z]+)\s*$")


def parse_bytes(text: str) -> int:
    """A Mesos byte size (`512MB`: number and one of B, KB, MB, GB, TB) in bytes."""
    match = _BYTES.match(text)
    if not match or match.group(2) not in _BYTE_UNITS:
        raise ConfigError(f"invalid byte size {text!r}: expected a number and B, KB, MB, GB or TB")
    return int(float(match.group(1)) * _BYTE_UNITS[match.group(2)])


def format_bytes(size: int) -> str:
    """Bytes the way Mesos prints them: the largest unit that divides evenly."""
    for unit in ("TB", "GB", "MB", "KB"):
        if size and size % _BYTE_UNITS[unit] == 0:
            return f"{size // _BYTE_UNITS[unit]}{unit}"
    return f"{size}B"


def parse_json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(read_file_value(text))
    except ValueError as exc:
        raise ConfigError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError("expected a JSON object")
    return value


TEXT: Parser = str
WORDS: Parser = shlex.split
BOOL: Parser = parse_bool
INT: Parser = parse_int
FLOAT: Parser = parse_float
DURATION: Parser = parse_duration
BYTES: Parser = parse_bytes
JSON_OBJECT: Parser = parse_json_object


class Flag:
    """One flag: Mesos name, default as Mesos prints it (None: unset), help, type, and for
    INT/FLOAT/DURATION/BYTES the smallest accepted value. (A plain class, not a dataclass:
    see the imports.)"""

    __slots__ = ("default", "help", "minimum", "name", "type")

    def __init__(self, name: str, default: str | None, help: str, type: Parser = TEXT,
                 minimum: float | None = None) -> None:
        self.name = name
        self.default = default
        self.help = help
        self.type = type
        self.minimum = minimum

    def __repr__(self) -> str:
        return f"Flag({self.name!r}, {self.default!r})"

    def parse(self, text: str) -> Any:
        """The typed value of `text`; ConfigError `--name: problem` (one line) if it is bad."""
        try:
            value = self.type(text)
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"--{self.name}: {exc}") from None
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"--{self.name}: must be at least {self.minimum:g}, got {value}")
        return value


class FlagSet:
    """The flags of one daemon, in declaration order (the order of `--help`)."""

    def __init__(self, flags: Iterable[Flag]) -> None:
        self.flags: dict[str, Flag] = {}
        for flag in flags:
            if flag.name in self.flags:
                raise ValueError(f"flag --{flag.name} declared twice")
            self.flags[flag.name] = flag

    def __contains__(self, name: object) -> bool:
        return name in self.flags

    def __getitem__(self, name: str) -> Flag:
        return self.flags[name]

    def collect(
        self, values: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> tuple[dict[str, str], set[str]]:
        """The raw text of every set flag (defaults, then `MESOS_<NAME>`, then `values`) and the
        names given explicitly (environment or command line). `values` keys may be spelled
        `--work-dir`, `work_dir`...; a None value means "not given"; an unknown name is an error.
        """
        given: dict[str, str] = {}
        for key, value in (environ or {}).items():
            if key.startswith(ENV_PREFIX):
                name = key[len(ENV_PREFIX) :].lower()
                if name in self.flags:
                    given[name] = value
        for key, value in (values or {}).items():
            name = key.lstrip("-").replace("-", "_")
            if name not in self.flags:
                raise ConfigError(f"unknown flag --{name}")
            if value is not None:
                given[name] = str(value)
        raw = {name: flag.default for name, flag in self.flags.items() if flag.default is not None}
        raw.update(given)
        return raw, set(given)

    def options(self) -> list[tuple[str, list[str], str]]:
        """Each flag's name, its command-line spellings (Mesos's `--work_dir`, then
        `--work-dir`) and the help its option shows (with its default and its environment
        variable)."""
        out = []
        for flag in self.flags.values():
            spellings = [f"--{flag.name}"]
            if "_" in flag.name:
                spellings.append(f"--{flag.name.replace('_', '-')}")
            shown = f" (default: {flag.default})" if flag.default is not None else ""
            env = f" [env: {ENV_PREFIX}{flag.name.upper()}]"
            out.append((flag.name, spellings, flag.help + shown + env))
        return out

    def click_options(self, func: Callable[..., T]) -> Callable[..., T]:
        """Decorate a click command with one option per flag (`options`); values arrive as
        strings or None and go through `collect`."""
        import click  # only the CLI needs click

        decorated: Any = func
        for name, spellings, help_text in reversed(self.options()):
            decorated = click.option(*spellings, name, default=None, help=help_text)(decorated)
        return decorated  # type: ignore[no-any-return]
