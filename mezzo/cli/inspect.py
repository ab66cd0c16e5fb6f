"""`mezzo frameworks`, `mezzo agents`, `mezzo tasks`: tables from the master's `/master/state`.

Each command prints a table, or with `--json` the raw entries of the state JSON (a list), for
scripts. Only the leading master serves the state; a standby redirects us to it. These are the
click commands (help, usage errors, the root group's `--principal/--secret`); the rows, the
table and a click-free path for plain command lines are in `mezzo.cli.tables`, imported when a
command runs (not for its `--help`).
"""

from __future__ import annotations

import click

from mezzo.cli.options import friendly_errors, master_option


@click.command("frameworks")
@master_option
@click.option("--all", "include_completed", is_flag=True, help="Include completed frameworks.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw state entries as JSON.")
@friendly_errors
def frameworks(master: str, include_completed: bool, as_json: bool) -> None:
    """List the frameworks the master knows."""
    from mezzo.cli import tables

    tables.frameworks(master, include_completed, as_json)


@click.command("agents")
@master_option
@click.option("--json", "as_json", is_flag=True, help="Print the raw state entries as JSON.")
@friendly_errors
def agents(master: str, as_json: bool) -> None:
    """List the agents registered with the master."""
    from mezzo.cli import tables

    tables.agents(master, as_json)


@click.command("tasks")
@master_option
@click.option("--all", "include_completed", is_flag=True, help="Include completed tasks.")
@click.option("--framework", "framework_id", default=None, help="Only this framework's tasks.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw state entries as JSON.")
@friendly_errors
def tasks(master: str, include_completed: bool, framework_id: str | None, as_json: bool) -> None:
    """List tasks (running ones; with --all also finished ones)."""
    from mezzo.cli import tables

    tables.tasks(master, include_completed, framework_id, as_json)
