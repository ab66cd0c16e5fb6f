"""`mezzo logs TASK_ID [--stderr] [--follow]`: a task's sandbox output via the files API.

The task's agent comes from the master's `/master/state`, its sandbox directory from the
agent's `/state`, and the bytes from the agent's `/files/read`. With `--follow` the command
polls for new output until the task is terminal and drained (or Ctrl-C).

Following survives rotation by the logrotate container logger: when the file has become
shorter than what was already read, the rest of the old file is read from ``stdout.1`` (where
the logger moved it) and then the new file from its start. Output is skipped only if the file
was rotated more than once, or refilled past the old offset, between two polls (0.5 s).
"""

from __future__ import annotations

import sys
import time

import click

from mezzo.cli.options import friendly_errors, master_option

POLL_SECONDS = 0.5
STATE_POLL_SECONDS = 2.0


@click.command("logs")
@master_option
@click.argument("task_id")
@click.option("--stderr", "use_stderr", is_flag=True, help="Show stderr instead of stdout.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the task ends.")
@friendly_errors
def logs(master: str, task_id: str, use_stderr: bool, follow: bool) -> None:
    """Print the stdout (or stderr) of a task from its sandbox."""
    # Imported here: `mezzo logs --help` needs none of the HTTP machinery.
    from mezzo.cli.common import (
        find_sandbox,
        find_task,
        is_terminal,
        master_state,
        read_file_size,
        read_whole_file,
        resolve_master,
    )

    base = resolve_master(master)
    sandbox = find_sandbox(base, task_id)
    path = f"{sandbox.directory}/{'stderr' if use_stderr else 'stdout'}"
    out = sys.stdout.buffer
    data, offset = read_whole_file(sandbox.agent_url, path)
    out.write(data)
    out.flush()
    if not follow:
        return
    last_check = time.monotonic()
    finished = is_terminal((sandbox.task or {}).get("state", ""))
    try:
        while True:
            data, offset = read_whole_file(sandbox.agent_url, path, offset)
            if not data and read_file_size(sandbox.agent_url, path) < offset:
                data, offset = _after_rotation(sandbox.agent_url, path, offset)
            if data:
                out.write(data)
                out.flush()
            elif finished:
                return
            if time.monotonic() - last_check >= STATE_POLL_SECONDS:
                last_check = time.monotonic()
                task = find_task(master_state(base), task_id)
                # One more read after the task ended drains what it wrote last.
                finished = is_terminal(task.get("state", ""))
                continue
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130) from None


def _after_rotation(agent_url: str, path: str, offset: int) -> tuple[bytes, int]:
    """The rest of the rotated file (now ``path.1``, if kept) and the new file from its
    start; (data, offset in the new file)."""
    from mezzo.cli.common import CliError, read_whole_file

    try:
        rest, _ = read_whole_file(agent_url, f"{path}.1", offset)
    except CliError:  # not kept (rotate 0) or already gone
        rest = b""
    data, offset = read_whole_file(agent_url, path, 0)
    return rest + data, offset
