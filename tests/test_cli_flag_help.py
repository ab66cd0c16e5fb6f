"""`mezzo master --help` and `mezzo agent --help` are printed from the flag tables without click
(`mezzo.cli.flag_help`): the same characters as click's page, at every terminal width."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mezzo.cli.flag_help import daemon_help
from mezzo.cli.group import cli

MEZZO = str(Path(sys.executable).parent / "mezzo")


def click_page(command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        cli.main([command, "--help"], prog_name="mezzo", standalone_mode=False)
    return out.getvalue()


@pytest.mark.parametrize("command", ["master", "agent"])
@pytest.mark.parametrize("columns", [1, 40, 51, 52, 53, 60, 67, 70, 79, 80, 81, 120, 400])
def test_the_page_is_clicks_at_every_width(command: str, columns: int,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    assert daemon_help(command) == click_page(command)


@pytest.mark.parametrize("command", ["master", "agent"])
@pytest.mark.parametrize("option", ["--help", "-h"])
def test_the_console_script_prints_it_without_click(command: str, option: str) -> None:
    env = {**os.environ, "COLUMNS": "80"}
    probe = ("import sys; sys.argv = [sys.argv[1], *sys.argv[2:]]; "
             "from mezzo.cli.main import main; import os; os._exit = sys.exit\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print('CLICK' if 'click' in sys.modules else 'NOCLICK', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe, MEZZO, command, option], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.stderr.strip().splitlines()[-1] == "NOCLICK"
    env_page = {**os.environ, "COLUMNS": "80"}
    real = subprocess.run([MEZZO, command, option], env=env_page, capture_output=True, text=True,
                          timeout=60, check=True)
    assert real.stdout == done.stdout
    assert real.stdout.startswith(f"Usage: mezzo {command} [OPTIONS]\n")
    assert real.stdout.endswith("  -h, --help                      Show this message and exit.\n")


def test_other_command_lines_are_still_clicks() -> None:
    # Anything but exactly `mezzo master|agent --help` is click's: here its usage error.
    bad = subprocess.run([MEZZO, "master", "--nope", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "No such option '--nope'" in bad.stderr
    with pytest.raises(ValueError):
        daemon_help("local")
