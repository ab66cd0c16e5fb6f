"""The `mezzo` entry point: a click group; each sub-command lives in its own module."""

from __future__ import annotations

import click

from mezzo import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mezzo")
def cli() -> None:
    """mezzo: share a cluster among frameworks with resource offers (Mesos v1 HTTP APIs)."""


def main() -> None:
    cli()
from mezzo.cli import master as _master  # noqa: E402,F401  (registers `mezzo master`)
from mezzo.cli import agent as _agent  # noqa: E402,F401  (registers `mezzo agent`)


def _add_client_commands() -> None:
    """`run`, `frameworks`, `agents`, `tasks`, `logs` (modules of their own, see docs/cli.md)."""
    from mezzo.cli.inspect import agents, frameworks, tasks
    from mezzo.cli.logs import logs
    from mezzo.cli.run import run

    for command in (run, frameworks, agents, tasks, logs):
        cli.add_command(command)


_add_client_commands()
from mezzo.cli import demo as _demo  # noqa: E402,F401  (registers `mezzo demo`)
from mezzo.cli import examples as _examples  # noqa: E402,F401  (registers `mezzo example ...`)
from mezzo.cli import local as _local  # noqa: E402,F401  (registers `mezzo local`)
