"""The root click group of the `mezzo` command; sub-command modules attach to it."""

from __future__ import annotations

import click

from mezzo import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mezzo")
def cli() -> None:
    """mezzo: share a cluster among frameworks with resource offers (Mesos v1 HTTP APIs)."""
