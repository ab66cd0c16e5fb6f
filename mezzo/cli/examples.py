"""`mezzo example <name>`: the example frameworks of `mezzo.frameworks` as sub-commands.

Each is the same click command as `python -m mezzo.frameworks.<name>`; see docs/frameworks.md.
Like the root group, the table below names them so that `mezzo example --help` imports none of
them (each framework module imports the asyncio SDK); `tests/test_cli_startup.py` checks that the
one-line helps are the commands' own.
"""

from __future__ import annotations

import click

from mezzo.cli.group import LazyCommand, LazyGroup

EXAMPLES: dict[str, LazyCommand] = {
    "batch": LazyCommand(
        "mezzo.frameworks.batch", "main",
        "MapReduce-style jobs with delay scheduling; reports locality and job times.",
    ),
    "gang": LazyCommand(
        "mezzo.frameworks.gang", "main", "MPI-style gang runs: all N ranks start together or not at all."
    ),
    "iterative": LazyCommand(
        "mezzo.frameworks.iterative", "main",
        "Logistic regression with executors that keep their partition in memory.",
    ),
    "service": LazyCommand(
        "mezzo.frameworks.service", "main",
        "Keep N instances of a long-running command up, spread across agents.",
    ),
}


@click.group("example", cls=LazyGroup, lazy=EXAMPLES)
def example() -> None:
    """Run one of the example frameworks (the paper's workloads) against a master."""
