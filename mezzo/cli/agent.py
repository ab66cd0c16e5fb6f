"""`mezzo agent`: run an agent. Flags are Mesos's, declared in `mezzo.agent.flag_table` (`--work_dir`;
`--work-dir` works too; `MESOS_WORK_DIR` in the environment sets a flag the command line does not
give); durations take Mesos strings (`1mins`, `5secs`). See docs/agent.md."""

from __future__ import annotations

import os
from typing import Any

import click

from mezzo.agent.flag_table import COMMAND_HELP, FLAGS
from mezzo.core.errors import ConfigError


@click.command("agent", help=COMMAND_HELP)
@FLAGS.click_options
def agent_command(**values: Any) -> None:
    """See COMMAND_HELP."""
    # Imported here: `--help` needs only the flag table, not the agent.
    from mezzo.agent.flags import AgentFlags

    try:
        flags = AgentFlags.parse(values, os.environ)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    from mezzo.agent.main import run_agent

    try:
        code = run_agent(flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    raise SystemExit(code)
