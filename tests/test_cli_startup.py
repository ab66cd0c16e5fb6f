"""The `mezzo` command starts at once: each sub-command imports only what it needs.

No timings here (those are in bench/cli.py): the guards are on *what* gets imported. A real
`mezzo` process runs each command and reports its `sys.modules` at exit; the heavy stacks
(aiohttp, asyncio, msgspec and the wire types, the master, the agent, the frameworks, rich
where no table is printed) must not be among them. Plus the consistency of the lazy command
table with the commands themselves, and of the CLI's plain-string task states with the API's.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import click
import pytest

from mezzo.api.common import TERMINAL_TASK_STATES
from mezzo.cli.common import TERMINAL_STATES
from mezzo.cli.group import COMMANDS, cli, load_command

# Runs `mezzo ARGS…` in-process and prints the imported module names as JSON on stdout's last line.
PROBE = """
import json, os, sys
from mezzo.cli.main import main
os._exit = sys.exit  # `mezzo run` ends with os._exit: let the probe print first
sys.argv = ["mezzo", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""

HEAVY = ("aiohttp", "asyncio", "msgspec", "mezzo.api", "mezzo.scheduler", "mezzo.resources",
         "mezzo.master", "mezzo.agent", "mezzo.frameworks", "mezzo.testing", "kazoo", "psutil",
         "http.client", "urllib.request", "email")


def imported_by(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def heavy(modules: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        m for m in modules
        if any(m == h or m.startswith(h + ".") for h in HEAVY)
        and not any(m == a or m.startswith(a + ".") for a in allowed)
    )


def test_version_imports_nothing_heavy() -> None:
    modules = imported_by("--version")
    assert heavy(modules) == []
    assert "rich" not in modules
    assert not [m for m in modules if m.startswith("mezzo.cli.") and m != "mezzo.cli.group"
                and m != "mezzo.cli.main"]


def test_help_lists_commands_without_importing_them() -> None:
    modules = imported_by("--help")
    assert heavy(modules) == [] and "rich" not in modules
    assert "mezzo.cli.run" not in modules and "mezzo.cli.demo" not in modules


@pytest.mark.parametrize("command", ["run", "tasks", "frameworks", "agents", "logs", "exec"])
def test_client_commands_import_nothing_heavy(command: str) -> None:
    # --help imports the command's module (and so all its module-level imports).
    modules = imported_by(command, "--help")
    assert heavy(modules) == []
    assert "rich" not in modules  # the tables import rich only when they print one
    # The click side (mezzo.cli.options) only: the HTTP machinery comes when the command runs.
    assert not {"socket", "urllib.parse", "mezzo.cli.common"} & modules


def test_client_command_against_nothing_imports_nothing_heavy() -> None:
    # The whole path up to the first connection: option parsing, master resolution, errors.
    modules = imported_by("run", "--master", "127.0.0.1:1", "--", "true")
    assert heavy(modules) == []
    modules = imported_by("tasks", "--master", "127.0.0.1:1")
    assert heavy(modules) == []


@pytest.mark.parametrize("command", ["tasks", "frameworks", "agents"])
def test_table_commands_import_no_click(command: str) -> None:
    # A plain command line runs without click (mezzo.cli.fast_args, mezzo.cli.tables); piped,
    # its table is drawn without rich.
    modules = imported_by(command, "--master", "127.0.0.1:1")
    assert "click" not in modules and "typing" not in modules and "rich" not in modules


def test_command_table_matches_the_commands() -> None:
    ctx = click.Context(cli)
    assert cli.list_commands(ctx)[: len(COMMANDS)] == list(COMMANDS)
    for name, entry in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        first_paragraph = inspect.cleandoc(command.help or "").split("\n\n")[0]
        assert entry.short_help == " ".join(first_paragraph.split()), name


def test_help_shows_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from mezzo.cli.main import main; main()", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for name in COMMANDS:
        assert f"  {name} " in result.stdout


def test_terminal_states_match_the_api() -> None:
    assert {str(s) for s in TERMINAL_TASK_STATES} == TERMINAL_STATES


@pytest.mark.parametrize("daemon", ["master", "agent", "demo", "local", "example", "sim"])
def test_daemon_help_imports_nothing_heavy(daemon: str) -> None:
    # The daemons' options come from flag tables that import neither the daemon nor its stack.
    modules = imported_by(daemon, "--help")
    tables = {"mezzo.master", "mezzo.master.flag_table", "mezzo.agent", "mezzo.agent.flag_table"}
    assert heavy(modules - tables) == []
    assert "rich" not in modules
    # The logging flags' type must not bring the logging package along (~10 ms here), nor
    # anything pathlib (with urllib.parse and ipaddress behind it).
    assert "logging" not in modules and "pathlib" not in modules


def test_run_imports_no_click() -> None:
    # `mezzo run` with a well-formed command line is parsed without click (mezzo.cli.one_task).
    modules = imported_by("run", "--master", "127.0.0.1:1", "--", "true")
    assert "click" not in modules and "typing" not in modules


def test_example_table_matches_the_frameworks() -> None:
    from mezzo.cli.examples import EXAMPLES, example

    for name, entry in EXAMPLES.items():
        command = load_command(name, EXAMPLES)
        assert command.name == name
        first_paragraph = inspect.cleandoc(command.help or "").split("\n\n")[0]
        assert entry.short_help == " ".join(first_paragraph.split()), name
    assert example.list_commands(click.Context(example)) == list(EXAMPLES)


def test_flag_tables_spell_the_defaults_they_stand_in_for() -> None:
    from mezzo.agent import flag_table as agent_table
    from mezzo.master import allocator
    from mezzo.master import flag_table as master_table
    from mezzo.resources import DEFAULT_ROLE

    assert master_table.DEFAULT_ALLOCATOR == allocator.DEFAULT_ALLOCATOR
    assert master_table.DEFAULT_MIN_ALLOCATABLE == allocator.DEFAULT_MIN_ALLOCATABLE
    assert agent_table.DEFAULT_ROLE == DEFAULT_ROLE
    from mezzo.cli import local
    from mezzo.testing import local_cluster

    assert local.DEFAULT_AGENT_RESOURCES == local_cluster.DEFAULT_AGENT_RESOURCES
