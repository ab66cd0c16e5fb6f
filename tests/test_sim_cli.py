"""`mezzo sim`: listing, running an experiment to JSON/Markdown/PNG, clear errors, and the
simulator staying out of `mezzo --version`."""

from __future__ import annotations

import json
import subprocess
import sys

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
