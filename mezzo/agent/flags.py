"""The agent's flags (spec §9.2) and resource discovery (§9.3).

Owns `AgentFlags` (one options object: the flags `mezzo.agent.flag_table.FLAGS` declares,
parsed by `AgentFlags.parse` for the CLI, or built directly by tests), parsing of
`--resources` (Mesos text, JSON array, or `file://` path), `--attributes`
(`rack:r1;zone:a;keys:[1-10];level:10`) and the discovery of the resources that are not named:
cpus, mem minus a system reserve, disk of the work_dir filesystem, ports 31000-32000.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import psutil

from mezzo.agent.containerizer import DEFAULT_ISOLATION
from mezzo.agent.containerizer.logger import ContainerLogger, create_logger
from mezzo.agent.flag_table import FLAGS
from mezzo.api.common import Attribute, Range, Ranges, Scalar, Text, ValueType
from mezzo.core.durations import format_duration
from mezzo.core.errors import ConfigError, ValidationError
from mezzo.core.flags import read_file_value
from mezzo.resources import DEFAULT_ROLE, Resources
from mezzo.resources.disk import source_root
from mezzo.resources.volumes import disk_of

DEFAULT_PORTS = "[31000-32000]"
MB = 1024 * 1024



@dataclass
class AgentFlags:
    """Every agent flag with its Mesos default; durations in seconds."""

    master: str | None = None
    work_dir: str = ""
    ip: str | None = None
    port: int = 5051
    advertise_ip: str | None = None
    hostname: str | None = None
    resources: str | None = None
    attributes: str | None = None
    default_role: str = DEFAULT_ROLE
    isolation: str = DEFAULT_ISOLATION
    cgroups_root: str = "mezzo"
    recover: str = "reconnect"
    recovery_timeout: float = 15 * 60.0
    executor_registration_timeout: float = 60.0
    executor_shutdown_grace_period: float = 5.0
    executor_reregistration_timeout: float = 2.0
    registration_backoff_factor: float = 1.0
    switch_user: bool = True
    http_command_executor: bool = False
    executor_environment_variables: dict[str, str] | None = None
    # Initial status update retry interval (Mesos: 10 s, doubling to 10 min); tests shorten it.
    status_update_retry_interval: float = 10.0
    status_update_retry_max: float = 600.0
    # argv prefix of the built-in command executor; None = the bundled one.
    command_executor: list[str] | None = None
    # Parent of the fetcher's cache (one subdirectory per work_dir); None = <work_dir>/fetch.
    fetcher_cache_dir: str | None = None
    fetcher_cache_size: int = 2 * 1024**3
    # The cgroups/pids limit of every container, if any.
    pids_max: int | None = None
    # `--credential`: the file of the one principal/secret this agent authenticates with.
    credential: str | None = None
    # This agent's own endpoints (docs/security.md): Basic credentials per realm, executor
    # tokens (JWT) signed with the key in `jwt_secret_key`, and ACLs.
    http_credentials: str | None = None
    authenticate_http_readonly: bool = False
    authenticate_http_readwrite: bool = False
    authenticate_http_executors: bool = False
    jwt_secret_key: str | None = None
    executor_secret_key: str | None = None
    acls: str | None = None
    authorizer: str = "local"
    # TLS (`mezzo.security.tls`): flags over the LIBPROCESS_SSL_* environment, as given.
    ssl_enabled: str | None = None
    ssl_cert_file: str | None = None
    ssl_key_file: str | None = None
    ssl_ca_file: str | None = None
    ssl_ca_dir: str | None = None
    ssl_verify_cert: str | None = None
    ssl_require_cert: str | None = None
    # The agent's own log (`mezzo.core.daemon_logging`): its level, and the directory it is
    # also written to (as mezzo-agent.INFO, served as /slave/log); Mesos's flags and defaults.
    logging_level: str = "INFO"
    log_dir: str | None = None
    # Container logger (Mesos's --container_logger and the logrotate module's parameters).
    container_logger: str | None = None
    max_stdout_size: str | None = None
    logrotate_stdout_options: str | None = None
    max_stderr_size: str | None = None
    logrotate_stderr_options: str | None = None
    # Sandbox garbage collection (Mesos: 1weeks, 1mins, 0.1).
    gc_delay: float = 7 * 24 * 3600.0
    disk_watch_interval: float = 60.0
    gc_disk_headroom: float = 0.1
    # Streaming operator responses (attach, sessions): HEARTBEAT interval (Mesos: 30secs).
    http_heartbeat_interval: float = 30.0
    # The network/ports isolator (Mesos's flags and defaults).
    container_ports_watch_interval: float = 30.0
    check_agent_port_range_only: bool = False
    enforce_container_ports: bool = False
    container_ports_isolated_range: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(
        cls, values: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> AgentFlags:
        """Validated flags from `{name: text}` (names with `_` or `-`; None or missing = the
        default) and, if given, the environment's `MESOS_<NAME>` (the command line wins)."""
        raw, _ = FLAGS.collect(values, environ)
        flags = cls()
        for name, text in raw.items():
            value = FLAGS[name].parse(text)
            if name == "executor_environment_variables":
                value = {str(k): str(v) for k, v in value.items()}
            setattr(flags, name, value)
        flags.validate()
        return flags

    def validate(self) -> None:
        if not self.work_dir:
            raise ConfigError("--work_dir is required")
        # Also for flags built directly (tests): the level's spelling as parse leaves it.
        self.logging_level = FLAGS["logging_level"].parse(self.logging_level)
        if self.recover not in ("reconnect", "cleanup"):
            raise ConfigError("--recover must be 'reconnect' or 'cleanup'")
        if not 0 < self.executor_reregistration_timeout <= 15:
            raise ConfigError("--executor_reregistration_timeout must be in (0, 15secs]")
        if self.registration_backoff_factor <= 0:
            raise ConfigError("--registration_backoff_factor must be positive")
        if not 0.0 <= self.gc_disk_headroom <= 1.0:
            raise ConfigError("--gc_disk_headroom must be between 0.0 and 1.0")
        if self.disk_watch_interval <= 0:
            raise ConfigError("--disk_watch_interval must be positive")
        if self.http_heartbeat_interval <= 0:
            raise ConfigError("--http_heartbeat_interval must be positive")
        if self.container_ports_watch_interval <= 0:
            raise ConfigError("--container_ports_watch_interval must be positive")
        if self.check_agent_port_range_only and self.container_ports_isolated_range:
            raise ConfigError(
                "Only one of `--check_agent_port_range_only` or "
                "'--container_ports_isolated_range` should be specified"
            )
        self.container_logger_instance()
        self.master_auth_headers()  # a bad --credential file fails at start-up
        from mezzo.agent.auth import AgentSecurity

        AgentSecurity.from_flags(self)  # bad security flags fail at start-up, one line

    def master_auth_headers(self) -> dict[str, str]:
        """The `Authorization` header every request to the master carries (`--credential`)."""
        if not self.credential:
            return {}
        from mezzo.security.authentication import basic_header
        from mezzo.security.credentials import load_credential

        credential = load_credential(self.credential)
        return {"Authorization": basic_header(credential.principal, credential.secret)}

    def container_logger_instance(self) -> ContainerLogger:
        """The logger `--container_logger` names, built from its flags (ConfigError)."""
        return create_logger(
            self.container_logger, self.max_stdout_size, self.logrotate_stdout_options,
            self.max_stderr_size, self.logrotate_stderr_options,
        )

    def to_wire(self) -> dict[str, str]:
        """The flags as Mesos shows them (`/flags`, GET_FLAGS, `/state`): all strings."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name == "extra":
                continue
            if f.name.endswith(("_timeout", "_period", "_factor", "_interval", "_max", "_delay")) and (
                isinstance(value, float)
            ):
                out[f.name] = format_duration(value)
            elif isinstance(value, bool):
                out[f.name] = "true" if value else "false"
            elif isinstance(value, list | dict):
                out[f.name] = str(value)
            else:
                out[f.name] = str(value)
        out.update(self.extra)
        return out


# --------------------------------------------------------------------------- resources


def discover_resources(flags: AgentFlags) -> Resources:
    """`--resources` plus discovered defaults for cpus, mem, disk and ports (spec §9.3)."""
    given = Resources()
    if flags.resources:
        try:
            given = Resources.parse(read_file_value(flags.resources), flags.default_role)
        except ValidationError as e:
            raise ConfigError(f"--resources: {e}") from None
    check_disk_sources(given, flags.work_dir)
    names = given.names()
    parts: list[str] = []
    role = flags.default_role
    prefix = "" if role == DEFAULT_ROLE else f"({role})"
    if "cpus" not in names:
        parts.append(f"cpus{prefix}:{os.cpu_count() or 1}")
    if "mem" not in names:
        total = psutil.virtual_memory().total // MB
        # Mesos leaves 1 GB for the system, or half of a small machine.
        mem = total - 1024 if total >= 2048 else total // 2
        parts.append(f"mem{prefix}:{max(mem, 0)}")
    if "disk" not in names:
        os.makedirs(flags.work_dir, exist_ok=True)
        total = shutil.disk_usage(flags.work_dir).total // MB
        disk = total - 5 * 1024 if total >= 10 * 1024 else total // 2
        parts.append(f"disk{prefix}:{max(disk, 0)}")
    if "ports" not in names:
        parts.append(f"ports{prefix}:{DEFAULT_PORTS}")
    discovered = Resources.parse(";".join(parts), flags.default_role) if parts else Resources()
    return given + discovered


def check_disk_sources(resources: Resources, work_dir: str) -> None:
    """Mesos's start-up check of disks with a `source` (`slave.cpp`): a PATH root is created
    if missing (relative to the work dir), a MOUNT root must be a mount point in
    /proc/mounts; other types are refused. ConfigError with Mesos's message."""
    for item in resources:
        info = disk_of(item.key)
        if info is None or info.source is None:
            continue
        shown = str(Resources([item]))
        kind = info.source.type
        root = source_root(info)
        if kind == "PATH":
            if not root:
                raise ConfigError(f"PATH disk root directory is not specified '{shown}'")
            path = root if os.path.isabs(root) else os.path.join(work_dir, root)
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as e:
                raise ConfigError(
                    f"Failed to create DiskInfo path directory '{root}': {e}"
                ) from None
        elif kind == "MOUNT":
            if not root:
                raise ConfigError(f"MOUNT disk root directory is not specified '{shown}'")
            if not os.path.exists(root):
                raise ConfigError(
                    f"Failed to determine `realpath` for DiskInfo mount in resource '{shown}' "
                    f"with path '{root}': no such path"
                )
            real = os.path.realpath(root)
            if real not in _mount_points():
                raise ConfigError(f"Failed to find mount '{real}' in /proc/mounts")
        else:
            raise ConfigError(f"Unsupported 'DiskInfo.Source.Type' in '{shown}'")


def _mount_points() -> set[str]:
    with open("/proc/mounts", encoding="utf-8") as f:
        return {line.split()[1].replace("\\040", " ") for line in f if line.strip()}


# --------------------------------------------------------------------------- attributes


def parse_attributes(text: str | None) -> list[Attribute]:
    """`name:value;...`: ranges if the value starts with `[`, scalar if numeric, else text."""
    if not text:
        return []
    out: list[Attribute] = []
    for token in read_file_value(text).split(";"):
        token = token.strip()
        if not token:
            continue
        name, sep, value = token.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise ConfigError(f"--attributes: {token!r} is not name:value")
        if value.startswith("["):
            out.append(Attribute(name=name, type=ValueType.RANGES, ranges=_ranges(value, token)))
            continue
        try:
            number = float(value)
        except ValueError:
            out.append(Attribute(name=name, type=ValueType.TEXT, text=Text(value=value)))
        else:
            out.append(Attribute(name=name, type=ValueType.SCALAR, scalar=Scalar(value=number)))
    return out


def _ranges(value: str, token: str) -> Ranges:
    if not value.endswith("]"):
        raise ConfigError(f"--attributes: bad ranges in {token!r}")
    result = []
    for part in value[1:-1].split(","):
        begin, sep, end = part.strip().partition("-")
        try:
            b = int(begin)
            e = int(end) if sep else b
        except ValueError:
            raise ConfigError(f"--attributes: bad range {part!r} in {token!r}") from None
        result.append(Range(begin=b, end=e))
    return Ranges(range=result)


def attributes_to_json(attributes: list[Attribute]) -> dict[str, object]:
    """The `/state` form: `{"rack": "r1", "level": 10, "keys": "[1-10]"}`."""
    out: dict[str, object] = {}
    for a in attributes:
        if a.type == ValueType.SCALAR and a.scalar is not None:
            out[a.name] = a.scalar.value
        elif a.type == ValueType.RANGES and a.ranges is not None:
            out[a.name] = "[" + ", ".join(f"{r.begin}-{r.end}" for r in a.ranges.range) + "]"
        elif a.text is not None:
            out[a.name] = a.text.value
    return out
