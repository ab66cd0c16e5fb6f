"""The chaos scenario of issue 9 (`mezzo.testing.chaos`): a real ZooKeeper, 3 masters, 3 agents
and a framework subprocess running 150 short tasks under a seeded storm of leader, agent and
framework crashes, agent pauses (some past the unreachable threshold) and a ZooKeeper stop.
Every rule of the verdict must hold; more seeds: `bench/chaos.py --seeds ...`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mezzo.testing.chaos import FAULT_COUNTS, ChaosOptions, plan_faults, run_chaos
from mezzo.testing.zookeeper import find_zookeeper

pytestmark = [pytest.mark.slow, pytest.mark.zookeeper]


def test_the_plan_is_seeded_and_holds_every_fault() -> None:
    plan = plan_faults(ChaosOptions(seed=3))
    assert plan == plan_faults(ChaosOptions(seed=3)) != plan_faults(ChaosOptions(seed=4))
    assert sorted(f.kind for f in plan) == sorted(k for k, n in FAULT_COUNTS.items() for _ in range(n))
    assert all(0 < f.at < ChaosOptions().window for f in plan)


@pytest.mark.timeout(400)  # the run ends by itself within ~4 min (ChaosOptions.deadline); margin for load
def test_chaos(tmp_path: Path) -> None:
    install, reason = find_zookeeper()
    if install is None:
        pytest.skip(f"ZooKeeper unavailable: {reason}")
    verdict, faults = run_chaos(ChaosOptions(seed=1), tmp_path)
    figures = verdict.figures
    assert verdict.ok, "\n".join([str(figures), *verdict.violations])
    assert {k: faults.get(k, 0) for k in FAULT_COUNTS} == FAULT_COUNTS  # every fault happened
    assert figures["tasks_launched"] >= 150
    # Pauses past the threshold were felt: tasks went unreachable, and came back.
    assert figures["unreachable_updates"] > 0 and figures["back_from_unreachable"] > 0
