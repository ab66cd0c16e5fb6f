"""`mezzo demo` (what `make run` runs): the paper's four workloads sharing a local cluster.

Only the command and its options: the demo itself (`mezzo.cli.demo_run`: rich, the example
frameworks, the SDK, the local cluster) is imported when it runs, so that `mezzo demo --help`
starts at once.
"""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--agents", default=3, show_default=True, type=click.IntRange(1, 16))
@click.option(
    "--time-limit",
    default=110.0,
    show_default=True,
    type=float,
    help="Stop the frameworks after this many seconds whatever they are doing.",
)
@click.option(
    "--scale",
    default=1.0,
    show_default=True,
    type=float,
    help="Multiply the workloads' sizes (smaller is quicker).",
)
@click.option(
    "--work_dir",
    "--work-dir",
    "work_dir",
    default=None,
    help="Keep the cluster's files here (default: a temporary directory).",
)
def demo(agents: int, time_limit: float, scale: float, work_dir: str | None) -> None:
    """Run the four example frameworks at once on a local cluster, with live progress."""
    from mezzo.cli.demo_run import run

    run(agents, time_limit, scale, work_dir)
