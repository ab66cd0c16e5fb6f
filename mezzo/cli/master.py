"""`mezzo master`: run a master. Options come from the flag declarations in `mezzo.master.flag_table`
(Mesos spellings `--work_dir`; dashed spellings `--work-dir` work too; `MESOS_WORK_DIR` in the
environment sets a flag the command line does not give)."""

from __future__ import annotations

import os
from typing import Any

import click

from mezzo.core.errors import ConfigError
from mezzo.master.flag_table import COMMAND_HELP, FLAGS


@click.command("master", help=COMMAND_HELP)
@FLAGS.click_options
def master_command(**values: Any) -> None:
    """See COMMAND_HELP."""
    # Imported here: `--help` needs only the flag table, not the master.
    from mezzo.master.flags import MasterFlags

    try:
        flags = MasterFlags.parse(values, os.environ)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    from mezzo.master.main import run

    run(flags)
