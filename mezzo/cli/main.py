"""The `mezzo` entry point: the root group, whose sub-commands are imported on demand.

Daemons: `master`, `agent`, `local` (a whole cluster on this machine), `demo` (`make run`).
Experiments: `sim` (the paper's evaluation on the simulator).
Clients: `run`, `frameworks`, `agents`, `tasks`, `logs`, `example <name>` (see docs/cli.md).
The table of sub-commands is `mezzo.cli.group.COMMANDS`; add a command there.

`mezzo run …`, `mezzo frameworks|agents|tasks …`, `mezzo master|agent --help` and
`mezzo --version` are answered before click is imported (click alone costs about half of
`mezzo run`'s start-up; the daemons' pages come from their flag tables, `mezzo.cli.flag_help`):
`mezzo.cli.fast_args` reads well-formed command lines, which `mezzo.cli.one_task.fast_main` and
`mezzo.cli.tables.fast_main` run; anything else goes to the click group.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv == ["--version"]:
        from mezzo import __version__

        sys.stdout.write(f"mezzo, version {__version__}\n")
        return
    if len(argv) == 2 and argv[0] in ("master", "agent") and argv[1] in ("--help", "-h") \
            and os.path.basename(sys.argv[0]) == "mezzo":
        # The daemons' pages from their flag tables, as click lays them out (flag_help).
        from mezzo.cli.flag_help import daemon_help

        try:  # noqa: SIM105 (no contextlib import: start-up time)
            sys.stdout.write(daemon_help(argv[0]))
        except BrokenPipeError:  # `mezzo master --help | head`
            pass
        _exit_now(0)
    if argv[:1] == ["run"]:
        from mezzo.cli.fast_args import parse_run

        args = parse_run(argv[1:], os.environ)
        if args is not None:
            from mezzo.cli.one_task import fast_main

            _exit_now(fast_main(args))
    if argv[:1] in (["frameworks"], ["agents"], ["tasks"]):
        from mezzo.cli.fast_args import parse_table

        args = parse_table(argv[0], argv[1:], os.environ)
        if args is not None:
            from mezzo.cli.tables import fast_main as table_main

            _exit_now(table_main(argv[0], args))
    from mezzo.cli.group import cli

    cli()


def _exit_now(code: int) -> None:
    """Flush the output and end the process without the interpreter's clean-up (collecting
    every module and object costs a short command ~5 ms; the sockets close with the process).
    Nothing of `mezzo run`'s path needs `atexit` handlers or finalizers."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: nothing more can be said
        pass
    os._exit(code)


def __getattr__(name: str) -> object:
    # `from mezzo.cli.main import cli` (tests, scripts) still finds the click group.
    if name == "cli":
        from mezzo.cli.group import cli

        return cli
    raise AttributeError(name)


__all__ = ["main"]
