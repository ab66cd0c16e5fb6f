"""The calibration shapes (`mezzo sim calibrate`) at a small size: what each reports."""

from __future__ import annotations

import pytest

from mezzo.sim import calibration, master_node
from mezzo.sim.engine import Engine


def test_launch_latency_is_four_one_way_trips_plus_two_master_jobs() -> None:
    result = calibration.launch_latency(launches=20, cost="fixed")
    assert result["launches"] == 20
    # 4 x LATENCY one way, plus the ACCEPT's and the status update's service times.
    assert 4000 * master_node.LATENCY < result["p50_ms"] < 2.0


def test_launch_rate_reports_the_masters_cpu_per_task() -> None:
    ten = calibration.launch_rate(agents=10, per_accept=10, seconds=1.0, cost="fixed")
    one = calibration.launch_rate(agents=10, per_accept=1, seconds=1.0, cost="fixed")
    assert ten["tasks_per_s"] > 0 and one["tasks_per_s"] > 0
    # The master saturates: its rate is 1 / its CPU per task.
    assert abs(ten["tasks_per_s"] * ten["master_cpu_ms_per_task"] / 1000 - 1.0) < 0.05
    # One ACCEPT and one status update per task instead of per ten cost more per task.
    assert one["master_cpu_ms_per_task"] > ten["master_cpu_ms_per_task"]


def test_scale_shape_reports_what_bench_scale_reports() -> None:
    result = calibration.scale_shape(agents=40, frameworks=5, samples=2, cost="fixed")
    assert result["agents"] == 40
    assert result["launches_per_s"] > 0 and 0 < result["master_cpu_pct"] < 100
    assert result["master_cpu_ms_per_launch"] > 0
    assert 0 < result["launch_overhead_p50_s"] <= result["launch_overhead_p99_s"] < 5.0


def test_shell_factor_charges_the_shells_constants_and_the_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--shell-factor F`: the shell's constants and the one-way latency times F, the core's
    (tabled, here) cost as it was."""
    base = calibration.launch_latency(launches=20, cost="fixed")
    monkeypatch.setattr(master_node, "SHELL_FACTOR", 2.0)
    doubled = calibration.launch_latency(launches=20, cost="fixed")
    # Four one-way trips each LATENCY longer, plus the two jobs' shell share again.
    extra = doubled["p50_ms"] - base["p50_ms"]
    assert extra > 4000 * master_node.LATENCY
    assert extra < base["p50_ms"]  # the core's tabled part is not doubled
    node = master_node.MasterNode(Engine())
    assert node.latency == 2.0 * master_node.LATENCY
    assert node._shell_seconds("scheduler.ACCEPT", 2) == 2.0 * master_node.SCHEDULER_REQUEST_OVERHEAD
