"""The root click group of the `mezzo` command, which imports each sub-command only when run.

Start-up time is the first thing a user feels: `mezzo --version` or `mezzo tasks` must not pay
for the master, the agent, the example frameworks or aiohttp. So the root group knows its
sub-commands by name (`COMMANDS`: module, attribute, one-line help) and imports a command's
module only when that command is invoked (or asked for its own `--help`). `mezzo --help` lists
the commands from the one-line helps in the table; `tests/test_cli_startup.py` checks they are
the commands' own first docstring lines, and that the table and the modules agree.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import click

from mezzo import __version__


class LazyCommand(NamedTuple):
    module: str
    attribute: str
    short_help: str


# name -> where the command lives; `mezzo --help` lists them in this order.
COMMANDS: dict[str, LazyCommand] = {
    "master": LazyCommand(
        "mezzo.cli.master",
        "master_command",
        "Run a mezzo master (Mesos v1 scheduler, operator and agent APIs).",
    ),
    "agent": LazyCommand(
        "mezzo.cli.agent", "agent_command", "Run a mezzo agent (runs executors, speaks the v1 executor API)."
    ),
    "local": LazyCommand("mezzo.cli.local", "local", "Run a master and N agents on this machine until Ctrl-C."),
    "demo": LazyCommand(
        "mezzo.cli.demo", "demo", "Run the four example frameworks at once on a local cluster, with live progress."
    ),
    "run": LazyCommand("mezzo.cli.run", "run", "Run CMD ARGS… as one task and exit with its status."),
    "frameworks": LazyCommand("mezzo.cli.inspect", "frameworks", "List the frameworks the master knows."),
    "agents": LazyCommand("mezzo.cli.inspect", "agents", "List the agents registered with the master."),
    "tasks": LazyCommand(
        "mezzo.cli.inspect", "tasks", "List tasks (running ones; with --all also finished ones)."
    ),
    "exec": LazyCommand(
        "mezzo.cli.exec", "exec_command", "Run CMD ARGS... inside a running task's container, exit with its status."
    ),
    "logs": LazyCommand("mezzo.cli.logs", "logs", "Print the stdout (or stderr) of a task from its sandbox."),
    "sim": LazyCommand(
        "mezzo.cli.sim", "sim", "Reproduce the Mesos paper's evaluation on a simulated cluster (docs/evaluation.md)."
    ),
    "example": LazyCommand(
        "mezzo.cli.examples",
        "example",
        "Run one of the example frameworks (the paper's workloads) against a master.",
    ),
}


def load_command(name: str, table: dict[str, LazyCommand] = COMMANDS) -> click.Command:
    """Import the module of sub-command `name` (of `table`) and return its click command."""
    entry = table[name]
    command = getattr(importlib.import_module(entry.module), entry.attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{entry.module}.{entry.attribute} is not a click command")
    return command


class LazyGroup(click.Group):
    """A click group whose sub-commands (`lazy`: name -> LazyCommand) are imported on first
    use (see the module docstring); `mezzo example` is one too."""

    def __init__(self, *args: Any, lazy: dict[str, LazyCommand] = COMMANDS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy, *(name for name in super().list_commands(ctx) if name not in self.lazy)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            return load_command(cmd_name, self.lazy)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The listing comes from the table: no sub-command module is imported for `--help`.
        rows = [(name, entry.short_help) for name, entry in self.lazy.items()]
        for name in super().list_commands(ctx):
            if name not in self.lazy:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(formatter.width)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mezzo")
@click.option("--principal", envvar="MEZZO_PRINCIPAL", default=None,
              help="Authenticate as PRINCIPAL (HTTP Basic) to secured masters and agents "
                   "[env: MEZZO_PRINCIPAL]; see docs/security.md.")
@click.option("--secret", envvar="MEZZO_SECRET", default=None,
              help="The principal's secret [env: MEZZO_SECRET].")
def cli(principal: str | None = None, secret: str | None = None) -> None:
    """mezzo: share a cluster among frameworks with resource offers (Mesos v1 HTTP APIs)."""
    import os

    # Every client command (and the SDK frameworks of `mezzo example`) reads them from here.
    if principal:
        os.environ["MEZZO_PRINCIPAL"] = principal
        os.environ["MEZZO_SECRET"] = secret or ""
