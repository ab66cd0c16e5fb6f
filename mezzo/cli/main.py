"""The `mezzo` entry point: the root group, whose sub-commands are imported on demand.

Daemons: `master`, `agent`, `local` (a whole cluster on this machine), `demo` (`make run`).
Experiments: `sim` (the paper's evaluation on the simulator).
Clients: `run`, `frameworks`, `agents`, `tasks`, `logs`, `example <name>` (see docs/cli.md).
The table of sub-commands is `mezzo.cli.group.COMMANDS`; add a command there.
"""

from __future__ import annotations

from mezzo.cli.group import cli


def main() -> None:
    cli()


__all__ = ["cli", "main"]
