"""`mezzo frameworks`, `mezzo agents`, `mezzo tasks` without click: their rows, their table, and
running them without click.

Owns: the state → table functions of the three commands (`frameworks_table`, `agents_table`,
`tasks_table`: the entries printed by `--json` and the cells of the table), printing them
(`emit`), and `fast_main`, which `mezzo.cli.main` runs for `mezzo frameworks|agents|tasks …`
before click is imported (click costs ~40 ms of CPU on a slow machine, more than the rest of
the command) when `mezzo.cli.fast_args.parse_table` accepts the command line; anything else
(`--help`, a typo, an argument) goes to the click commands of `mezzo.cli.inspect`.

The table: rich draws it on a terminal (bold headers, the terminal's width); when the output is
not a terminal (a pipe, a file) rich draws plain characters, its table as wide as its content.
That plain case is drawn here (`plain_table`), character for character as rich draws it, for
cells of printable ASCII (anything rich would read as markup or an emoji code, or measure
differently, goes to rich); the test compares the two on random tables. rich's import is most
of what a table costs.

Standard library only at import time (`mezzo.cli.common`): no click, no rich, no `typing`.
"""

from __future__ import annotations

import json
import os
import sys

from mezzo.cli.common import all_tasks, master_state, resolve_master
from mezzo.cli.options import error_message

# Typing names for the checker only: importing `typing` costs start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

# rich's HEAVY_HEAD box (its `Table`'s default), by line: left, horizontal, joint, right.
_TOP = "┏━┳┓"
_HEAD = "┃ ┃┃"
_HEAD_BELOW = "┡━╇┩"
_ROW = "│ ││"
_BOTTOM = "└─┴┘"
# The widest table drawn here: the console width the commands give rich when piped.
PLAIN_WIDTH = 10_000


class Table:
    """The header and cells of a table (printed by `emit`)."""

    def __init__(self, *headers: str) -> None:
        self.headers = headers
        self.rows: list[tuple[str, ...]] = []

    def add_row(self, *cells: str) -> None:
        self.rows.append(cells)


def _plain_cell(text: str) -> bool:
    """Whether rich draws `text` as it is: printable ASCII, no markup (`[`), no emoji code
    (`:name:`), no spaces at its ends (rich trims a line's end, and measures before)."""
    return (
        text.isascii()
        and text.isprintable()
        and "[" not in text
        and text.count(":") < 2
        and text.strip(" ") == text
    )


def plain_table(table: Table) -> str | None:
    """The table as rich's plain console (`Console(width=10_000)`, not a terminal) draws it,
    or None when only rich can draw it (see the module docstring)."""
    lines = [table.headers, *table.rows]
    if not all(_plain_cell(cell) for line in lines for cell in line):
        return None
    if any(len(row) != len(table.headers) for row in table.rows):
        return None
    widths = [max(len(line[i]) for line in lines) for i in range(len(table.headers))]
    if sum(widths) + 3 * len(widths) + 1 > PLAIN_WIDTH:
        return None

    def rule(box: str) -> str:  # box: left, across, joint, right
        return box[0] + box[2].join(box[1] * (w + 2) for w in widths) + box[3]

    def cells(box: str, line: Sequence[str]) -> str:
        padded = (f" {cell.ljust(w)} " for cell, w in zip(line, widths, strict=True))
        return box[0] + box[2].join(padded) + box[3]

    out = [rule(_TOP), cells(_HEAD, table.headers), rule(_HEAD_BELOW)]
    out += [cells(_ROW, row) for row in table.rows]
    out.append(rule(_BOTTOM))
    return "\n".join(out) + "\n"


def _rich_console_is_plain(environ: Mapping[str, str]) -> bool:
    """Whether rich's console would draw plain characters to our stdout: not a terminal (rich
    believes `FORCE_COLOR` and `TTY_COMPATIBLE=1` over `isatty`), UTF-8 (else rich draws an
    ASCII box)."""
    if "FORCE_COLOR" in environ or environ.get("TTY_COMPATIBLE") == "1":
        return False
    stdout = sys.stdout
    try:
        if stdout.isatty():
            return False
    except ValueError:
        return False
    return (getattr(stdout, "encoding", None) or "").lower().replace("-", "").startswith("utf")


def print_rich_table(table: Table) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    drawn = RichTable(*table.headers)
    for row in table.rows:
        drawn.add_row(*row)
    console = Console()
    if not console.is_terminal:
        # Piped: never truncate ids to a guessed width; the table is as wide as its content.
        console = Console(width=PLAIN_WIDTH)
    console.print(drawn)


def emit(rows: list[dict[str, Any]], table: Table, as_json: bool) -> None:
    """Print the entries as JSON (`--json`), or the table."""
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, sort_keys=True) + "\n")
        sys.stdout.flush()
        return
    text = plain_table(table) if _rich_console_is_plain(os.environ) else None
    if text is None:
        print_rich_table(table)
        return
    sys.stdout.write(text)
    sys.stdout.flush()


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def _res(resources: dict[str, Any] | None, name: str) -> str:
    return _num((resources or {}).get(name, 0))


def frameworks_table(state: dict[str, Any], include_completed: bool) -> tuple[list[dict[str, Any]], Table]:
    """`mezzo frameworks`: the entries of `/master/state` and their table."""
    rows = list(state.get("frameworks", []))
    if include_completed:
        rows += state.get("completed_frameworks", [])
    table = Table("ID", "NAME", "ROLE", "STATE", "TASKS", "CPUS", "MEM")
    for fw in rows:
        if fw.get("active"):
            status = "active"
        elif fw.get("connected") is False and fw in state.get("frameworks", []):
            status = "disconnected"
        else:
            status = "inactive" if fw in state.get("frameworks", []) else "completed"
        role = fw.get("role") or ",".join(fw.get("roles", []))
        used = fw.get("used_resources")
        table.add_row(
            fw.get("id", ""),
            fw.get("name", ""),
            role,
            status,
            str(len(fw.get("tasks", []))),
            _res(used, "cpus"),
            _res(used, "mem"),
        )
    return rows, table


def agents_table(state: dict[str, Any]) -> tuple[list[dict[str, Any]], Table]:
    """`mezzo agents`: the entries of `/master/state` and their table."""
    rows = list(state.get("slaves", []))
    table = Table("ID", "HOSTNAME", "ADDRESS", "ACTIVE", "CPUS (used/total)", "MEM (used/total)")
    for agent in rows:
        total, used = agent.get("resources"), agent.get("used_resources")
        address = (agent.get("pid") or "").split("@", 1)[-1]
        table.add_row(
            agent.get("id", ""),
            agent.get("hostname", ""),
            address,
            "yes" if agent.get("active") else "no",
            f"{_res(used, 'cpus')}/{_res(total, 'cpus')}",
            f"{_res(used, 'mem')}/{_res(total, 'mem')}",
        )
    return rows, table


def _health(task: dict[str, Any]) -> str:
    """The task's health as Mesos's web UI shows it: its last update's `healthy`."""
    statuses = task.get("statuses") or []
    healthy = statuses[-1].get("healthy") if statuses and isinstance(statuses[-1], dict) else None
    if healthy is None:
        return "-"
    return "healthy" if healthy else "unhealthy"


def tasks_table(
    state: dict[str, Any], include_completed: bool, framework_id: str | None
) -> tuple[list[dict[str, Any]], Table]:
    """`mezzo tasks`: the entries of `/master/state` and their table."""
    rows = [
        t
        for t in all_tasks(state, include_completed)
        if framework_id is None or t.get("framework_id") == framework_id
    ]
    table = Table("ID", "NAME", "STATE", "HEALTH", "FRAMEWORK", "AGENT", "CPUS", "MEM")
    for task in rows:
        table.add_row(
            task.get("id", ""),
            task.get("name", ""),
            task.get("state", ""),
            _health(task),
            task.get("framework_id", ""),
            task.get("slave_id", ""),
            _res(task.get("resources"), "cpus"),
            _res(task.get("resources"), "mem"),
        )
    return rows, table


def frameworks(master: str, include_completed: bool, as_json: bool) -> None:
    emit(*frameworks_table(master_state(resolve_master(master)), include_completed), as_json=as_json)


def agents(master: str, as_json: bool) -> None:
    emit(*agents_table(master_state(resolve_master(master))), as_json=as_json)


def tasks(master: str, include_completed: bool, framework_id: str | None, as_json: bool) -> None:
    emit(*tasks_table(master_state(resolve_master(master)), include_completed, framework_id),
         as_json=as_json)


COMMANDS: dict[str, Callable[..., None]] = {"frameworks": frameworks, "agents": agents, "tasks": tasks}


def fast_main(command: str, args: dict[str, Any]) -> int:
    """Run `mezzo COMMAND` without click, with the arguments `mezzo.cli.fast_args.parse_table`
    read; the exit status. Errors are one line on stderr, as the click commands print them."""
    try:
        COMMANDS[command](**args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        sys.stderr.write(f"error: {error_message(exc)}\n")
        return 1
    return 0
