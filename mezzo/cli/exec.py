"""`mezzo exec TASK_ID -- CMD [ARGS...]`: run a command inside a running task's container.

What Mesos's CLI does for `mesos task exec`, on the same wire (the agent operator API):

1. the task, its agent and its container come from the master (`/master/state`: the task must
   be TASK_RUNNING; its `statuses[].container_status.container_id` names the executor's
   container, the agent's `pid` its address);
2. LAUNCH_NESTED_CONTAINER_SESSION on the agent, with a new `ContainerID` whose parent is the
   task's container (`command`: `value` CMD, `arguments` [CMD, ARGS...], `shell` false; with a
   TTY, `container.tty_info` with the terminal's window size); its response is the command's
   output, a RecordIO stream of JSON `ProcessIO` records written to our stdout and stderr;
3. ATTACH_CONTAINER_INPUT, a chunked RecordIO request: the CONTAINER_ID record, then our stdin
   as DATA records (an empty one at end of input), HEARTBEAT controls every 30 s and, with a
   TTY, TTY_INFO records when our terminal is resized (SIGWINCH);
4. when the output ends, WAIT_CONTAINER: we exit with the command's exit status (128+N if a
   signal N ended it).

`-t/--tty` gives the command a pseudo-terminal and puts ours in raw mode (restored on exit),
for interactive programs (shells, editors); it needs stdin to be a terminal, otherwise the
command runs with pipes (a note on stderr says so). Without a TTY stdout and stderr stay apart.
`--no-stdin` attaches no input (the command reads EOF). Ctrl-C without a TTY ends the command:
closing the session's connection makes the agent destroy its container.

This module is the click command; the session (the master's state, the agent's streams, the
terminal) is `mezzo.cli.exec_session`, imported when the command runs: `mezzo exec --help`
imports neither `http.client` nor threads.
"""

from __future__ import annotations

import sys

import click

from mezzo.cli.options import friendly_errors, master_option


@click.command("exec", context_settings={"ignore_unknown_options": True})
@master_option
@click.option("-t", "--tty", "tty", is_flag=True,
              help="Give the command a terminal (interactive programs); needs a terminal on stdin.")
@click.option("--no-stdin", is_flag=True, help="Do not attach stdin (the command reads EOF).")
@click.argument("task_id")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@friendly_errors
def exec_command(master: str, tty: bool, no_stdin: bool, task_id: str,
                 command: tuple[str, ...]) -> None:
    """Run CMD ARGS... inside a running task's container, exit with its status."""
    if tty and not sys.stdin.isatty():
        click.echo("mezzo exec: stdin is not a terminal: running without a TTY", err=True)
        tty = False
    from mezzo.cli.common import resolve_master
    from mezzo.cli.exec_session import Session, locate

    base = resolve_master(master)
    agent_url, parent = locate(base, task_id)
    session = Session(agent_url, parent, list(command), tty=tty, stdin=not no_stdin)
    raise SystemExit(session.run())

