"""`mezzo run -- CMD ARGS…`: the click command (help, usage errors) of `mezzo.cli.one_task`.

The common command lines never reach it: `mezzo.cli.main` runs them through
`mezzo.cli.one_task.fast_main` without importing click. The options here and those of its
parser, `mezzo.cli.fast_args.RUN_OPTIONS`, are the same set (`tests/test_cli_run_fast.py`).
"""

from __future__ import annotations

import sys

import click

from mezzo.cli.options import (
    DEFAULT_FRAMEWORK_NAME,
    DEFAULT_RESOURCES,
    friendly_errors,
    master_option,
)


@click.command("run", context_settings={"allow_interspersed_args": False})
@master_option
@click.option("--name", default=None, help="Task name (default: run).")
@click.option(
    "--resources",
    default=DEFAULT_RESOURCES,
    show_default=True,
    help='Resources for the task, e.g. "cpus:0.5;mem:64".',
)
@click.option("--framework-name", default=DEFAULT_FRAMEWORK_NAME, show_default=True)
@click.option("--role", default=None, help="Role to subscribe with (default: *).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@friendly_errors
def run(
    master: str,
    name: str | None,
    resources: str,
    framework_name: str,
    role: str | None,
    command: tuple[str, ...],
) -> None:
    """Run CMD ARGS… as one task and exit with its status.

    A single argument is a shell command line (`mezzo run -- "echo hi | wc -c"`); several are
    quoted and run as one command.
    """
    from mezzo.cli.one_task import run_task

    sys.exit(run_task(master, name, resources, framework_name, role, command))
