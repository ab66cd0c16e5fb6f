"""Master flags: Mesos spellings and dashed ones, durations, one-line errors."""

from __future__ import annotations

import pytest

from mezzo.core.errors import ConfigError
from mezzo.master.flags import MasterFlags


def test_defaults_follow_mesos() -> None:
    flags = MasterFlags.parse({})
    assert (flags.ip, flags.port, flags.registry) == ("0.0.0.0", 5050, "sqlite")
    o = flags.options
    assert (o.allocation_interval, o.agent_ping_timeout, o.max_agent_ping_timeouts) == (1.0, 15.0, 5)
    assert o.agent_reregister_timeout == 600.0 and o.offer_timeout is None
    assert o.max_completed_frameworks == 50 and o.max_completed_tasks_per_framework == 1000


def test_spellings_and_values() -> None:
    flags = MasterFlags.parse({"--work-dir": "/tmp/x", "allocation_interval": "500ms",
                               "offer-timeout": "1mins", "weights": "a=2,b=0.5", "roles": "a,b",
                               "registry": "in_memory", "root_submissions": "false"})
    assert flags.work_dir == "/tmp/x" and flags.options.allocation_interval == 0.5
    assert flags.options.offer_timeout == 60.0 and flags.weights == {"a": 2.0, "b": 0.5}
    assert flags.roles == frozenset({"a", "b"}) and flags.options.root_submissions is False


@pytest.mark.parametrize(("values", "words"), [
    ({"port": "x"}, "--port"),
    ({"allocation_interval": "5 parsecs"}, "--allocation_interval"),
    ({"weights": "a:2"}, "--weights"),
    ({"registry": "nosuch"}, "--registry"),
    ({"bogus": "1"}, "unknown flag"),
    ({"min_allocatable_resources": "cpus"}, "--min_allocatable_resources"),
])
def test_errors_are_one_line(values, words) -> None:
    with pytest.raises(ConfigError) as err:
        MasterFlags.parse(values)
    assert words in str(err.value) and "\n" not in str(err.value)
