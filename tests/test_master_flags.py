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
    ({"logging_level": "VERBOSE"}, "--logging_level: expected one of INFO, WARNING, ERROR"),
])
def test_errors_are_one_line(values, words) -> None:
    with pytest.raises(ConfigError) as err:
        MasterFlags.parse(values)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_logging_level_is_validated_as_mesos() -> None:
    """INFO, WARNING, ERROR (Mesos's) and DEBUG, any case; anything else is refused (it used to
    become INFO silently)."""
    assert MasterFlags.parse({}).logging_level == "INFO"
    for given, level in (("warning", "WARNING"), ("Error", "ERROR"), ("DEBUG", "DEBUG")):
        assert MasterFlags.parse({"logging_level": given}).logging_level == level
    assert MasterFlags.parse({}, {"MESOS_LOGGING_LEVEL": "warning"}).logging_level == "WARNING"
    assert MasterFlags.parse({}, {"MESOS_LOG_DIR": "/var/log/mesos"}).log_dir == "/var/log/mesos"
    for bad in ("VERBOSE", "FATAL", "", "info,warning"):
        with pytest.raises(ConfigError, match=r"^--logging_level: expected one of INFO, WARNING, ERROR"):
            MasterFlags.parse({"logging_level": bad})
    with pytest.raises(ConfigError, match=r"^--logging_level: .* got 'loud'$"):
        MasterFlags.parse({}, {"MESOS_LOGGING_LEVEL": "loud"})


def test_zk_flags_put_the_registry_beside_the_election_nodes() -> None:
    flags = MasterFlags.parse({"zk": "zk://127.0.0.1:2181,127.0.0.2:2181/mezzo", "quorum": "2",
                               "zk_session_timeout": "2secs"})
    assert flags.zk == "zk://127.0.0.1:2181,127.0.0.2:2181/mezzo"
    assert flags.registry.startswith("zk://127.0.0.1:2181,127.0.0.2:2181/mezzo/")
    assert flags.zk_session_timeout == 2.0 and flags.quorum == 2
    # An explicit --registry wins (e.g. in_memory for a throw-away test cluster).
    assert MasterFlags.parse({"zk": "zk://h:2181/m", "registry": "in_memory"}).registry == "in_memory"


@pytest.mark.parametrize(("values", "words"), [
    ({"zk": "http://h:2181/m"}, "--zk"),
    ({"zk": "zk://h:2181/m", "zk_session_timeout": "1ms"}, "--zk_session_timeout"),
    ({"zk": "zk://h:2181/m", "quorum": "0"}, "--quorum"),
])
def test_zk_flag_errors_are_one_line(values, words) -> None:
    with pytest.raises(ConfigError) as err:
        MasterFlags.parse(values)
    assert words in str(err.value) and "\n" not in str(err.value)


async def test_unreachable_zookeeper_is_a_one_line_start_up_error(monkeypatch, tmp_path) -> None:
    import socket

    from mezzo.master import main

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(main, "ZK_CONNECT_TIMEOUT", 1.0)
    flags = MasterFlags.parse({"zk": f"zk://127.0.0.1:{port}/mezzo", "ip": "127.0.0.1", "port": "0",
                               "work_dir": str(tmp_path)})
    with pytest.raises(ConfigError) as err:
        await main.serve(flags)
    assert "cannot reach ZooKeeper" in str(err.value) and "\n" not in str(err.value)
