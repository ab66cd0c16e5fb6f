"""`mezzo sim`: listing, running an experiment to JSON/Markdown/PNG, clear errors, and the
simulator staying out of `mezzo --version`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mezzo.cli.main import cli


def test_list_names_every_experiment() -> None:
    result = CliRunner().invoke(cli, ["sim", "list"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.output.splitlines()]
    assert names == ["macro", "overhead", "locality", "spark", "scalability", "failover", "model"]


def test_unknown_experiment_is_a_one_line_error() -> None:
    result = CliRunner().invoke(cli, ["sim", "run", "nope"])
    assert result.exit_code != 0
    assert "unknown experiment 'nope'" in result.output
    assert "Traceback" not in result.output


def test_run_writes_json_markdown_and_png(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["sim", "run", "scalability", "--scale", "small", "--seed", "2",
                                      "--cost", "fixed", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "scalability.json").read_text())
    assert data["experiment"] == "scalability" and data["scale"] == "small" and data["seed"] == 2
    assert data["paper"] and data["rows"]
    for row in data["rows"]:
        assert {"agents", "overhead_s", "master_cpu_pct", "master_rss_mb"} <= row.keys()
    assert (tmp_path / "scalability.png").read_bytes()[:4] == b"\x89PNG"
    assert "| agents |" in (tmp_path / "scalability.md").read_text()


def test_version_does_not_import_the_simulator() -> None:
    code = ("import sys; from mezzo.cli.main import cli\n"
            "try:\n    cli(['--version'])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in sys.modules if m.startswith(('mezzo.sim', 'matplotlib'))]\n"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]"), out.stdout


def test_an_output_directory_that_cannot_be_made_fails_before_the_simulation(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = CliRunner().invoke(cli, ["sim", "run", "model", "--out", str(blocker / "results"), "--quiet"])
    assert result.exit_code == 1
    assert "cannot create the output directory" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [["run", "model"], ["calibrate"]])
@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "fast"])
def test_a_bad_core_factor_is_refused_before_anything_runs(command: list[str], value: str) -> None:
    result = CliRunner().invoke(cli, ["sim", *command, "--core-factor", value])
    assert result.exit_code == 2
    assert "Invalid value for '--core-factor'" in result.output
    assert "Traceback" not in result.output
