"""`mezzo frameworks`, `mezzo agents`, `mezzo tasks`: tables from the master's `/master/state`.

Each command prints a rich table, or with `--json` the raw entries of the state JSON (a list),
for scripts. Only the leading master serves the state; a standby redirects us to it. rich is
imported only when a table is printed (start-up time: see `mezzo.cli.group`).
"""

from __future__ import annotations

import json
from typing import Any

import click

from mezzo.cli.common import all_tasks, friendly_errors, master_option, master_state, resolve_master


class _Table:
    """The header and cells of a table, printed with rich by `_emit`."""

    def __init__(self, *headers: str) -> None:
        self.headers = headers
        self.rows: list[tuple[str, ...]] = []

    def add_row(self, *cells: str) -> None:
        self.rows.append(cells)


def _emit(rows: list[dict[str, Any]], as_json: bool, cells: _Table) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*cells.headers)
    for row in cells.rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        # Piped: never truncate ids to a guessed width; the table is as wide as its content.
        console = Console(width=10_000)
    console.print(table)


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def _res(resources: dict[str, Any] | None, name: str) -> str:
    return _num((resources or {}).get(name, 0))


@click.command("frameworks")
@master_option
@click.option("--all", "include_completed", is_flag=True, help="Include completed frameworks.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw state entries as JSON.")
@friendly_errors
def frameworks(master: str, include_completed: bool, as_json: bool) -> None:
    """List the frameworks the master knows."""
    state = master_state(resolve_master(master))
    rows = list(state.get("frameworks", []))
    if include_completed:
        rows += state.get("completed_frameworks", [])
    table = _Table("ID", "NAME", "ROLE", "STATE", "TASKS", "CPUS", "MEM")
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
    _emit(rows, as_json, table)


@click.command("agents")
@master_option
@click.option("--json", "as_json", is_flag=True, help="Print the raw state entries as JSON.")
@friendly_errors
def agents(master: str, as_json: bool) -> None:
    """List the agents registered with the master."""
    state = master_state(resolve_master(master))
    rows = list(state.get("slaves", []))
    table = _Table("ID", "HOSTNAME", "ADDRESS", "ACTIVE", "CPUS (used/total)", "MEM (used/total)")
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
    _emit(rows, as_json, table)


def _health(task: dict[str, Any]) -> str:
    """The task's health as Mesos's web UI shows it: its last update's `healthy`."""
    statuses = task.get("statuses") or []
    healthy = statuses[-1].get("healthy") if statuses and isinstance(statuses[-1], dict) else None
    if healthy is None:
        return "-"
    return "healthy" if healthy else "unhealthy"


@click.command("tasks")
@master_option
@click.option("--all", "include_completed", is_flag=True, help="Include completed tasks.")
@click.option("--framework", "framework_id", default=None, help="Only this framework's tasks.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw state entries as JSON.")
@friendly_errors
def tasks(master: str, include_completed: bool, framework_id: str | None, as_json: bool) -> None:
    """List tasks (running ones; with --all also finished ones)."""
    state = master_state(resolve_master(master))
    rows = [
        t
        for t in all_tasks(state, include_completed)
        if framework_id is None or t.get("framework_id") == framework_id
    ]
    table = _Table("ID", "NAME", "STATE", "HEALTH", "FRAMEWORK", "AGENT", "CPUS", "MEM")
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
    _emit(rows, as_json, table)
