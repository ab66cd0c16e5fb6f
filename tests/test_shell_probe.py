"""The shell probe (`mezzo.testing.shell_probe`, `mezzo sim calibrate --shell-factor measure`):
the real master's shell cost on this machine, against real master processes on loopback."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from mezzo.cli.main import cli
from mezzo.testing.shell_probe import (
    REFERENCE_PONG_US,
    REFERENCE_SCHEDULER_CALL_US,
    ShellMeasurement,
    measure_shell_factor,
)


def test_the_factor_is_the_geometric_mean_of_the_two_ratios() -> None:
    measured = ShellMeasurement(pong_us=2 * REFERENCE_PONG_US, scheduler_call_us=0.5 * REFERENCE_SCHEDULER_CALL_US)
    assert measured.pong_ratio == pytest.approx(2.0)
    assert measured.scheduler_call_ratio == pytest.approx(0.5)
    assert measured.factor == 1.0
    assert ShellMeasurement(REFERENCE_PONG_US, REFERENCE_SCHEDULER_CALL_US).factor == 1.0


@pytest.mark.slow
def test_the_probe_measures_a_real_master() -> None:
    """Small shapes (a fraction of the reference ones, so the figures are dearer per message):
    both probes run against real masters and measure a positive cost per message, of the
    order a Python master spends (µs to a few ms), and the factor follows from them."""
    measured = measure_shell_factor(agents=30, calls=5, seconds=1.0, frameworks=3, clients=1)
    assert 1.0 < measured.pong_us < 5000.0
    assert 1.0 < measured.scheduler_call_us < 5000.0
    assert measured.factor == round(math.sqrt(measured.pong_ratio * measured.scheduler_call_ratio), 2)


@pytest.mark.parametrize("value, message", [
    ("fast", "'fast' is neither a number nor 'measure'"),
    ("0", "0.0 is not between 0.01 and 100"),
    ("nan", "nan is not between 0.01 and 100"),
])
def test_a_bad_shell_factor_is_one_readable_line(value: str, message: str) -> None:
    result = CliRunner().invoke(cli, ["sim", "calibrate", "--shell-factor", value])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
