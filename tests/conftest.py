"""Shared pytest fixtures. Component-specific fixtures live in mezzo/testing/."""

from __future__ import annotations

import pytest

from mezzo.core.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# Real-ZooKeeper fixtures (zk_server, zk_chroot, zk_ensemble); they skip when ZooKeeper is absent.
pytest_plugins = ["mezzo.testing.pytest_zookeeper"]
