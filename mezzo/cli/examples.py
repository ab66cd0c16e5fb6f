"""`mezzo example <name>`: the example frameworks of `mezzo.frameworks` as sub-commands.

Each is the same click command as `python -m mezzo.frameworks.<name>`; see docs/frameworks.md.
"""

from __future__ import annotations

import click

from mezzo.frameworks import batch, gang, iterative, service


@click.group("example")
def example() -> None:
    """Run one of the example frameworks (the paper's workloads) against a master."""


for _module in (batch, iterative, gang, service):
    command: click.Command = _module.main
    example.add_command(command, name=command.name)
