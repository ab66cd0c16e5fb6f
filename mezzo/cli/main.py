"""The `mezzo` entry point: the root group plus every sub-command, registered in one place.

Daemons: `master`, `agent`, `local` (a whole cluster on this machine), `demo` (`make run`).
Clients: `run`, `frameworks`, `agents`, `tasks`, `logs`, `example <name>` (see docs/cli.md).
"""

from __future__ import annotations

# Importing a command module attaches its command(s) to the root group.
from mezzo.cli import agent as _agent  # noqa: F401
from mezzo.cli import demo as _demo  # noqa: F401
from mezzo.cli import examples as _examples  # noqa: F401
from mezzo.cli import local as _local  # noqa: F401
from mezzo.cli import master as _master  # noqa: F401
from mezzo.cli.group import cli
from mezzo.cli.inspect import agents, frameworks, tasks
from mezzo.cli.logs import logs
from mezzo.cli.run import run

for _command in (run, frameworks, agents, tasks, logs):
    cli.add_command(_command)


def main() -> None:
    cli()


__all__ = ["cli", "main"]
