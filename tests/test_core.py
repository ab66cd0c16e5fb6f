from __future__ import annotations

import pytest

from mezzo.core.backoff import Backoff
from mezzo.core.clock import FakeClock
from mezzo.core.durations import format_duration, parse_duration
from mezzo.core.errors import ConfigError
from mezzo.core.ids import IdSource


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5secs", 5.0), ("10mins", 600.0), ("500ms", 0.5), ("1.5hrs", 5400.0), ("2days", 172800.0),
     ("1weeks", 604800.0), ("100ns", 1e-7), ("3us", 3e-6)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "secs", "5 parsecs", "-1secs"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid duration"):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("5secs", "10mins", "500ms", "2days", "15secs"):
        assert format_duration(parse_duration(text)) == text


def test_fake_clock_moves_only_forward() -> None:
    clock = FakeClock(100.0)
    clock.advance(2.5)
    assert clock.now() == 102.5
    assert clock.monotonic() == 2.5
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_seeded_ids_are_deterministic_and_mesos_shaped() -> None:
    a, b = IdSource(seed=7), IdSource(seed=7)
    assert a.master_id == b.master_id
    assert a.framework_id() == f"{a.master_id}-0000"
    assert a.offer_id() == f"{a.master_id}-O0"
    assert a.agent_id() == f"{a.master_id}-S0"
    assert len(a.uuid_bytes()) == 16


def test_backoff_grows_to_maximum() -> None:
    backoff = Backoff(1.0, 8.0, jitter=lambda: 1.0)
    assert [backoff.next() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    backoff.reset()
    assert backoff.next() == 1.0
