"""The click-free parsers of the commands `mezzo.cli.main` runs before click is imported:
`mezzo run` (`parse_run`) and `mezzo frameworks|agents|tasks` (`parse_table`).

Each accepts only a plain, well-formed command line (the command's own options as
`--name value` or `--name=value`; for `run`, then the command) and returns the keyword
arguments the click command would receive; for anything else (`--help`, a typo, a missing or
extra argument) it returns None and the click command parses the line, so help and usage errors
are click's, worded as for every command. `tests/test_cli_run_fast.py` and
`tests/test_cli_tables.py` check that what they accept parses as click parses it and that their
option tables are the click commands'.

Deciding costs nothing: this module imports only `mezzo.cli.options` (a `--help` that falls
through to click pays neither for the command's machinery nor for click twice).
"""

from __future__ import annotations

from mezzo.cli.options import DEFAULT_FRAMEWORK_NAME, DEFAULT_MASTER, DEFAULT_RESOURCES, MASTER_ENV

# Typing names for the checker only: importing `typing` costs `mezzo run` start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

# `mezzo run`: `--option` -> the click parameter it sets (the options of `mezzo.cli.run.run`).
RUN_OPTIONS = {
    "--master": "master",
    "--name": "name",
    "--resources": "resources",
    "--framework-name": "framework_name",
    "--role": "role",
}

# `mezzo frameworks|agents|tasks`: `--option` -> (the click parameter it sets, whether it takes
# a value), as the click commands of `mezzo.cli.inspect` declare them.
TABLE_OPTIONS: dict[str, dict[str, tuple[str, bool]]] = {
    "frameworks": {
        "--master": ("master", True),
        "--all": ("include_completed", False),
        "--json": ("as_json", False),
    },
    "agents": {"--master": ("master", True), "--json": ("as_json", False)},
    "tasks": {
        "--master": ("master", True),
        "--all": ("include_completed", False),
        "--framework": ("framework_id", True),
        "--json": ("as_json", False),
    },
}
_TABLE_DEFAULTS: dict[str, object] = {
    "include_completed": False,
    "framework_id": None,
    "as_json": False,
}


def parse_run(argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, Any] | None:
    """`mezzo.cli.one_task.run_task`'s arguments from the words after `mezzo run`, or None."""
    values: dict[str, Any] = {
        "master": environ.get(MASTER_ENV) or DEFAULT_MASTER,
        "name": None,
        "resources": DEFAULT_RESOURCES,
        "framework_name": DEFAULT_FRAMEWORK_NAME,
        "role": None,
    }
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-") or word == "-":
            break  # the command starts (options end at the first argument, as in click)
        option, equals, value = word.partition("=")
        key = RUN_OPTIONS.get(option)
        taken = None if key is None else _option_value(argv, i, equals, value)
        if key is None or taken is None:
            return None
        values[key], i = taken
    if i >= len(argv):
        return None  # no command: click says so
    values["command"] = tuple(argv[i:])
    return values


def parse_table(command: str, argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The arguments of `mezzo COMMAND` (a key of `TABLE_OPTIONS`) from the words after it,
    or None."""
    options = TABLE_OPTIONS[command]
    values: dict[str, Any] = {"master": environ.get(MASTER_ENV) or DEFAULT_MASTER}
    values.update((key, _TABLE_DEFAULTS[key]) for key, _ in options.values() if key != "master")
    i = 0
    while i < len(argv):
        option, equals, value = argv[i].partition("=")
        known = options.get(option)
        if known is None:
            return None  # an argument, `--`, `--help`, a typo: click's to parse or refuse
        key, takes_value = known
        if not takes_value:
            if equals:
                return None
            values[key] = True
            i += 1
        else:
            taken = _option_value(argv, i, equals, value)
            if taken is None:
                return None
            values[key], i = taken
    return values


def _option_value(argv: Sequence[str], i: int, equals: str, value: str) -> tuple[str, int] | None:
    """The value of the option at `argv[i]` (`--name=value`, or `--name value` from the next
    word) and the index after it; None when no value follows (click says so)."""
    if equals:
        return value, i + 1
    if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
        return None
    return argv[i + 1], i + 2
