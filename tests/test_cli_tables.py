"""`mezzo frameworks / agents / tasks` without click (`mezzo.cli.tables`).

Its parser reads what it accepts exactly as the click commands of `mezzo.cli.inspect` read it
and hands everything else to them; its plain table is, character for character, what rich draws
when the output is not a terminal (random tables, compared), and it leaves to rich the cells rich
would read as markup or emoji codes, or measure otherwise.
"""

from __future__ import annotations

import io
import random

import click
import pytest
from rich.console import Console
from rich.table import Table as RichTable

from mezzo.cli import inspect
from mezzo.cli.common import DEFAULT_MASTER, MASTER_ENV
from mezzo.cli.fast_args import TABLE_OPTIONS as OPTIONS
from mezzo.cli.fast_args import parse_table as parse_args
from mezzo.cli.tables import PLAIN_WIDTH, Table, plain_table

CLICK: dict[str, click.Command] = {
    "frameworks": inspect.frameworks,
    "agents": inspect.agents,
    "tasks": inspect.tasks,
}

ACCEPTED = [
    ("tasks", []),
    ("tasks", ["--all"]),
    ("tasks", ["--master", "10.0.0.1:5050", "--json"]),
    ("tasks", ["--master=zk://h:2181/mesos", "--framework", "fw-1", "--all", "--all"]),
    ("tasks", ["--framework=", "--master", "a:1", "--master", "b:2"]),
    ("frameworks", ["--all", "--json"]),
    ("frameworks", ["--master=h:1"]),
    ("agents", ["--json", "--master", "h:5050"]),
    ("agents", []),
]
REFUSED = [
    ("tasks", ["--help"]),
    ("tasks", ["-h"]),
    ("tasks", ["--"]),
    ("tasks", ["extra"]),
    ("tasks", ["--all=yes"]),
    ("tasks", ["--framework"]),
    ("tasks", ["--framework", "--all"]),
    ("tasks", ["--mast", "h:1"]),
    ("agents", ["--all"]),
    ("agents", ["--framework", "x"]),
    ("frameworks", ["--master"]),
]


def click_parse(command: str, argv: list[str]) -> dict[str, object]:
    return dict(CLICK[command].make_context(command, list(argv)).params)


@pytest.mark.parametrize(("command", "argv"), ACCEPTED)
def test_accepted_lines_parse_as_click_parses_them(
    command: str, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MASTER_ENV, raising=False)
    fast = parse_args(command, argv, {})
    assert fast is not None
    assert fast == click_parse(command, argv)


def test_master_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MASTER_ENV, "10.1.1.1:5050")
    assert parse_args("tasks", [], {MASTER_ENV: "10.1.1.1:5050"}) == click_parse("tasks", [])
    assert parse_args("agents", ["--master", "h:1"], {MASTER_ENV: "x:2"})["master"] == "h:1"  # type: ignore[index]
    assert parse_args("agents", [], {MASTER_ENV: ""})["master"] == DEFAULT_MASTER  # type: ignore[index]


@pytest.mark.parametrize(("command", "argv"), REFUSED)
def test_anything_else_goes_to_click(command: str, argv: list[str]) -> None:
    assert parse_args(command, argv, {}) is None


@pytest.mark.parametrize("command", sorted(CLICK))
def test_option_tables_are_the_click_commands(command: str) -> None:
    params = {p.name: p for p in CLICK[command].params}
    opts = {
        opt: (p.name, not getattr(p, "is_flag", False))
        for p in params.values() for opt in p.opts if opt.startswith("--")
    }
    assert opts == OPTIONS[command]


def rich_plain(table: Table) -> str:
    """What `mezzo.cli.tables.print_rich_table` prints when the output is not a terminal."""
    drawn = RichTable(*table.headers)
    for row in table.rows:
        drawn.add_row(*row)
    out = io.StringIO()
    console = Console(width=PLAIN_WIDTH, file=out)
    assert not console.is_terminal and console.color_system is None
    console.print(drawn)
    return out.getvalue()


def test_plain_table_is_richs() -> None:
    rng = random.Random(12)
    alphabet = "abcXYZ019-_./@:(),;=+*%# "
    compared = 0
    for _ in range(300):
        headers = [rng.choice(["ID", "NAME", "CPUS (used/total)", "MEM", "X"])
                   for _ in range(rng.randint(1, 8))]
        table = Table(*headers)
        for _ in range(rng.randint(0, 6)):
            table.add_row(*(
                "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 2, 5, 12, 41])))
                for _ in headers
            ))
        drawn = plain_table(table)
        if drawn is not None:
            assert drawn == rich_plain(table), (headers, table.rows)
            compared += 1
    assert compared >= 50  # the rest had a cell left to rich


def test_real_shapes_are_drawn_here() -> None:
    # What the commands print (ids, addresses, numbers) takes the plain path.
    table = Table("ID", "HOSTNAME", "ADDRESS", "ACTIVE", "CPUS (used/total)", "MEM (used/total)")
    table.add_row("edee51e1-72fc-49fd-97cb-51d18cde034d-S0", "vm", "127.0.0.1:36637", "yes",
                  "0.5/8", "32/8192")
    table.add_row("", "a b", "-", "no", "0/8", "0/8192")
    assert plain_table(table) == rich_plain(table)
    assert plain_table(Table("ID", "NAME")) == rich_plain(Table("ID", "NAME"))


@pytest.mark.parametrize(
    "cell",
    ["[bold]x", "a:smile:b", "naïve", "tab\there", "two\nlines", " lead", "trail ", "\x1b[1m", "任务"],
)
def test_cells_rich_reads_otherwise_go_to_rich(cell: str) -> None:
    table = Table("ID", "NAME")
    table.add_row("t1", cell)
    assert plain_table(table) is None

