"""The calibration shapes (`mezzo sim calibrate`) at a small size: what each reports."""

from __future__ import annotations

from mezzo.sim import calibration, master_node


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
