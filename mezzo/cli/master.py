"""`mezzo master`: run a master. Options come from the flag table in `mezzo.master.flags`
(Mesos spellings `--work_dir`; dashed spellings `--work-dir` work too)."""

from __future__ import annotations

from typing import Any

import click

from mezzo.core.errors import ConfigError
from mezzo.master.flags import FLAGS, MasterFlags


def _options(func: Any) -> Any:
    for name, (default, help_text) in reversed(list(FLAGS.items())):
        spellings = [f"--{name}"]
        if "_" in name:
            spellings.append(f"--{name.replace('_', '-')}")
        shown = f" (default: {default})" if default is not None else ""
        func = click.option(*spellings, name, default=None, help=help_text + shown)(func)
    return func


@click.command("master")
@_options
def master_command(**values: Any) -> None:
    """Run a mezzo master (Mesos v1 scheduler, operator and agent APIs)."""
    try:
        flags = MasterFlags.parse(values)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    from mezzo.master.main import run

    run(flags)
