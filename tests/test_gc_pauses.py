"""Long garbage collections are logged by the daemons (`mezzo.core.gc_tuning.watch_pauses`),
so that an event-loop stall can be told from a collection."""

from __future__ import annotations

import gc
import logging

import pytest

from mezzo.core.gc_tuning import LONG_PAUSE, PauseWatch, watch_pauses


def test_a_collection_as_long_as_the_threshold_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    watch = PauseWatch(threshold=0.05, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="mezzo.gc")
    watch("start", {"generation": 0})
    now[0] = 0.01
    watch("stop", {"generation": 0, "collected": 3})
    watch("start", {"generation": 2})
    now[0] = 0.13
    watch("stop", {"generation": 2, "collected": 7})
    messages = [r.getMessage() for r in caplog.records if r.name == "mezzo.gc"]
    assert messages == ["garbage collection of generation 2 took 120 ms (7 collected)"]
    assert watch.longest == pytest.approx(0.12)


def test_watching_twice_installs_one_hook() -> None:
    before = list(gc.callbacks)
    try:
        first = watch_pauses()
        assert watch_pauses() is first
        assert sum(isinstance(c, PauseWatch) for c in gc.callbacks) == 1
        assert first.threshold == LONG_PAUSE
        gc.collect()  # a real collection goes through it
        assert first.longest > 0.0
    finally:
        gc.callbacks[:] = before
