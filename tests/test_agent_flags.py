"""Agent flags and the shared flag mechanism (`mezzo.core.flags`): types, `file://` values,
`MESOS_<NAME>` environment variables below the command line, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mezzo.agent.containerizer import DEFAULT_ISOLATION
from mezzo.agent.flags import FLAGS as AGENT_FLAGS
from mezzo.agent.flags import AgentFlags
from mezzo.core.errors import ConfigError
from mezzo.core.flags import format_bytes, parse_bytes
from mezzo.master.flags import FLAGS as MASTER_FLAGS
from mezzo.master.flags import MasterFlags


def test_agent_defaults_follow_mesos(tmp_path) -> None:
    flags = AgentFlags.parse({"work_dir": str(tmp_path)})
    assert (flags.port, flags.default_role, flags.recover, flags.isolation) == (
        5051, "*", "reconnect", DEFAULT_ISOLATION)
    assert (flags.recovery_timeout, flags.executor_registration_timeout) == (900.0, 60.0)
    assert flags.executor_shutdown_grace_period == 5.0 and flags.switch_user is True
    assert flags.http_command_executor is False and flags.command_executor is None


def test_agent_values_are_typed(tmp_path) -> None:
    env_file = tmp_path / "env.json"
    env_file.write_text('{"PATH": "/bin", "N": 1}')
    flags = AgentFlags.parse({
        "--work-dir": str(tmp_path), "port": "0", "executor_shutdown_grace_period": "100ms",
        "switch_user": "false", "executor_environment_variables": f"file://{env_file}",
        "command_executor": "python3 -m 'my executor'",
    })
    assert flags.port == 0 and flags.executor_shutdown_grace_period == 0.1
    assert flags.switch_user is False
    assert flags.executor_environment_variables == {"PATH": "/bin", "N": "1"}
    assert flags.command_executor == ["python3", "-m", "my executor"]


@pytest.mark.parametrize(("values", "words"), [
    ({"port": "x"}, "--port: expected an integer, got 'x'"),
    ({"port": "-1"}, "--port: must be at least 0"),
    ({"recovery_timeout": "5 parsecs"}, "--recovery_timeout: invalid duration"),
    ({"switch_user": "maybe"}, "--switch_user: expected true or false"),
    ({"executor_environment_variables": "[1]"}, "--executor_environment_variables: expected a JSON"),
    ({"executor_environment_variables": "{"}, "--executor_environment_variables: not JSON"),
    ({"executor_environment_variables": "file:///nonexistent/env.json"}, "cannot read"),
    ({"recover": "never"}, "--recover"),
    ({"work_dir": ""}, "--work_dir is required"),
    ({"bogus": "1"}, "unknown flag --bogus"),
    ({"logging_level": "VERBOSE"},
     "--logging_level: expected one of INFO, WARNING, ERROR (or DEBUG), got 'VERBOSE'"),
    ({"logging_level": "FATAL"}, "--logging_level: expected one of INFO, WARNING, ERROR"),
])
def test_agent_errors_are_one_line(values, words, tmp_path) -> None:
    with pytest.raises(ConfigError) as err:
        AgentFlags.parse({"work_dir": str(tmp_path), **values})
    assert words in str(err.value) and "\n" not in str(err.value)


def test_environment_sets_flags_and_the_command_line_wins(tmp_path) -> None:
    environ = {"MESOS_PORT": "6000", "MESOS_WORK_DIR": str(tmp_path),
               "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "2secs",
               "MESOS_SANDBOX": "/not/a/flag", "MEZZO_HOSTNAME": "not-read", "PORT": "1"}
    flags = AgentFlags.parse({"port": "7000"}, environ)
    assert flags.port == 7000  # command line over environment
    assert flags.work_dir == str(tmp_path) and flags.executor_shutdown_grace_period == 2.0
    assert flags.hostname is None  # only the MESOS_ prefix is read
    master = MasterFlags.parse({"allocation_interval": "2secs"},
                               {"MESOS_ALLOCATION_INTERVAL": "5secs", "MESOS_ROLES": "a,b"})
    assert master.options.allocation_interval == 2.0 and master.roles == frozenset({"a", "b"})
    # A variable counts as given (the ZooKeeper registry default yields to MESOS_REGISTRY).
    zk = MasterFlags.parse({"zk": "zk://h:2181/m"}, {"MESOS_REGISTRY": "in_memory"})
    assert zk.registry == "in_memory"


def test_agent_logging_flags_as_mesos(tmp_path) -> None:
    flags = AgentFlags.parse({"work_dir": str(tmp_path)})
    assert (flags.logging_level, flags.log_dir) == ("INFO", None)
    assert "log_dir" not in flags.to_wire() and flags.to_wire()["logging_level"] == "INFO"
    flags = AgentFlags.parse({"work_dir": str(tmp_path), "logging-level": "warning",
                              "log_dir": str(tmp_path / "logs")})
    assert (flags.logging_level, flags.log_dir) == ("WARNING", str(tmp_path / "logs"))
    environ = {"MESOS_LOGGING_LEVEL": "error", "MESOS_LOG_DIR": "/var/log/mesos"}
    flags = AgentFlags.parse({"work_dir": str(tmp_path)}, environ)
    assert (flags.logging_level, flags.log_dir) == ("ERROR", "/var/log/mesos")
    assert AgentFlags.parse({"work_dir": str(tmp_path), "logging_level": "debug"}).logging_level == "DEBUG"
    with pytest.raises(ConfigError, match=r"^--logging_level: expected one of .* got 'trace'$"):
        AgentFlags.parse({"work_dir": str(tmp_path)}, {"MESOS_LOGGING_LEVEL": "trace"})
    with pytest.raises(ConfigError, match="--logging_level"):  # flags built directly, too
        AgentFlags(work_dir=str(tmp_path), logging_level="loud").validate()


def test_a_bad_environment_value_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--max_agent_ping_timeouts: must be at least 1"):
        MasterFlags.parse({}, {"MESOS_MAX_AGENT_PING_TIMEOUTS": "0"})


def test_byte_sizes() -> None:
    assert parse_bytes("512MB") == 512 << 20 and parse_bytes("1GB") == 1 << 30
    assert parse_bytes("10B") == 10 and parse_bytes("1.5KB") == 1536
    assert format_bytes(512 << 20) == "512MB" and format_bytes(1000) == "1000B"
    for bad in ("512", "5 parsecs", "MB", "-1MB", "1mb"):
        with pytest.raises(ConfigError, match="invalid byte size"):
            parse_bytes(bad)


def test_every_flag_has_help_and_a_parsable_default() -> None:
    for flags in (MASTER_FLAGS, AGENT_FLAGS):
        for flag in flags.flags.values():
            assert flag.help
            if flag.default is not None:
                flag.parse(flag.default)


@pytest.mark.parametrize("daemon", ["master", "agent"])
def test_cli_bad_environment_value_is_one_line_and_exit_2(daemon, tmp_path) -> None:
    env = {"MESOS_PORT": "abc", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", "from mezzo.cli.main import main; main()", daemon,
         "--work_dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "Error: --port: expected an integer, got 'abc'" in proc.stderr


@pytest.mark.parametrize("daemon", ["master", "agent"])
def test_cli_bad_logging_level_is_one_line_and_exit_2(daemon, tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from mezzo.cli.main import main; main()", daemon,
         "--work_dir", str(tmp_path), "--logging_level=VERBOSE"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert ("Error: --logging_level: expected one of INFO, WARNING, ERROR (or DEBUG), "
            "got 'VERBOSE'") in proc.stderr
    assert "Traceback" not in proc.stderr
