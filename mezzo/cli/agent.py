"""`mezzo agent`: run an agent. Flags are Mesos's (`--work_dir`; `--work-dir` works too);
durations take Mesos strings (`1mins`, `5secs`). See docs/agent.md."""

from __future__ import annotations

import json
import shlex
from typing import Any

import click

from mezzo.core.errors import ConfigError

# name -> (default shown, help)
AGENT_FLAGS: dict[str, tuple[str | None, str]] = {
    "master": (None, "leading master: host:port or zk://host:port,.../path (required)"),
    "work_dir": (None, "sandboxes and checkpoints (required)"),
    "ip": (None, "address to bind (default: all interfaces)"),
    "advertise_ip": (None, "address published to executors and the master"),
    "port": ("5051", "port to bind; 0 picks a free one"),
    "hostname": (None, "hostname published in offers (default: this host's name)"),
    "resources": (None, "Mesos text (cpus:4;mem:1024), JSON array, or file://path"),
    "attributes": (None, "rack:r1;zone:a;keys:[1-10];level:10"),
    "default_role": ("*", "role of resources given without one"),
    "isolation": (None, "isolators, e.g. cgroups/cpu,cgroups/mem,cgroups/pids or auto"),
    "cgroups_root": ("mezzo", "cgroup under which containers are created"),
    "recover": ("reconnect", "reconnect: re-attach to old executors; cleanup: kill them, exit"),
    "recovery_timeout": ("15mins", "how long checkpointing executors wait for the agent"),
    "executor_registration_timeout": ("1mins", "time an executor has to subscribe"),
    "executor_shutdown_grace_period": ("5secs", "SHUTDOWN to destroy"),
    "executor_reregistration_timeout": ("2secs", "time old executors have to re-subscribe"),
    "registration_backoff_factor": ("1secs", "initial (re-)registration backoff"),
    "switch_user": ("true", "run tasks as their framework's / command's user"),
    "http_command_executor": ("false", "value of MESOS_HTTP_COMMAND_EXECUTOR"),
    "executor_environment_variables": (None, "JSON object replacing the inherited env"),
    "status_update_retry_interval": ("10secs", "first status update resend interval"),
    "command_executor": (None, "argv (shell words) of the command executor (testing)"),
}
_DURATIONS = {
    "recovery_timeout", "executor_registration_timeout", "executor_shutdown_grace_period",
    "executor_reregistration_timeout", "registration_backoff_factor",
    "status_update_retry_interval",
}


def _options(func: Any) -> Any:
    for name, (default, help_text) in reversed(list(AGENT_FLAGS.items())):
        spellings = [f"--{name}"]
        if "_" in name:
            spellings.append(f"--{name.replace('_', '-')}")
        shown = f" (default: {default})" if default is not None else ""
        func = click.option(*spellings, name, default=None, help=help_text + shown)(func)
    return func


def parse_flags(values: dict[str, Any]) -> Any:
    """Click values (strings or None) -> AgentFlags; ConfigError on bad values."""
    from mezzo.agent.flags import AgentFlags, duration_flag

    flags = AgentFlags()
    for name, raw in values.items():
        if raw is None:
            continue
        if name in _DURATIONS:
            setattr(flags, name, duration_flag(name, raw))
        elif name == "port":
            try:
                flags.port = int(raw)
            except ValueError:
                raise ConfigError(f"--port: {raw!r} is not a number") from None
        elif name in ("switch_user", "http_command_executor"):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ConfigError(f"--{name}: expected true or false")
            setattr(flags, name, raw.lower() in ("true", "1"))
        elif name == "executor_environment_variables":
            try:
                env = json.loads(raw)
            except ValueError as e:
                raise ConfigError(f"--{name}: not JSON: {e}") from None
            if not isinstance(env, dict):
                raise ConfigError(f"--{name}: expected a JSON object")
            flags.executor_environment_variables = {str(k): str(v) for k, v in env.items()}
        elif name == "command_executor":
            flags.command_executor = shlex.split(raw)
        else:
            setattr(flags, name, raw)
    flags.validate()
    return flags


@click.command("agent")
@_options
def agent_command(**values: Any) -> None:
    """Run a mezzo agent (runs executors, speaks the v1 executor API)."""
    try:
        flags = parse_flags(values)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    from mezzo.agent.main import run_agent

    try:
        code = run_agent(flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    raise SystemExit(code)
