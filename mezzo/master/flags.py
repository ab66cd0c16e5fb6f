"""Master flags, spelled as Mesos spells them (spec §9.1); dashed spellings are accepted.

`FLAGS` (declared in `mezzo.master.flag_table`) names each flag once (default, help, type);
`MasterFlags.parse(values, environ)` turns the raw strings (command line over `MESOS_<NAME>`
over the default) into typed values and checks the rules that span flags, raising a one-line
`ConfigError` naming the flag. The CLI builds its
options from the same table, so `--help`, GET_FLAGS and /master/state list the same names.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mezzo.core.durations import format_duration
from mezzo.core.errors import ConfigError
from mezzo.core.zkurl import parse_zk_url
from mezzo.master.allocator import DEFAULT_ALLOCATOR, DEFAULT_MIN_ALLOCATABLE, parse_min_allocatable
from mezzo.master.auth import MasterSecurity
from mezzo.master.base import MasterOptions
from mezzo.master.flag_table import FLAGS
from mezzo.resources import role_error


def parse_weights(text: str | None) -> dict[str, float]:
    weights: dict[str, float] = {}
    if not text:
        return weights
    for part in text.split(","):
        role, sep, value = part.strip().partition("=")
        if not sep:
            raise ConfigError(f"--weights: expected role=weight, got {part!r}")
        problem = role_error(role)
        if problem:
            raise ConfigError(f"--weights: invalid role {role!r}: {problem}")
        try:
            weight = float(value)
        except ValueError:
            raise ConfigError(f"--weights: invalid weight {value!r} for role {role!r}") from None
        if not weight > 0 or math.isinf(weight):
            raise ConfigError(f"--weights: weight of role {role!r} must be positive")
        weights[role] = weight
    return weights


@dataclass
class MasterFlags:
    ip: str = "0.0.0.0"
    port: int = 5050
    hostname: str | None = None
    advertise_ip: str | None = None
    advertise_port: int | None = None
    work_dir: str | None = None
    registry: str = "sqlite"
    allocator: str = DEFAULT_ALLOCATOR
    weights: dict[str, float] = field(default_factory=dict)
    roles: frozenset[str] | None = None
    min_allocatable_resources: str = DEFAULT_MIN_ALLOCATABLE
    fair_sharing_excluded_resource_names: list[str] = field(default_factory=list)
    filter_gpu_resources: bool = True
    port_file: str | None = None
    logging_level: str = "INFO"
    log_dir: str | None = None
    zk: str | None = None
    zk_session_timeout: float = 10.0
    quorum: int | None = None
    options: MasterOptions = field(default_factory=MasterOptions)
    security: MasterSecurity = field(default_factory=MasterSecurity)
    # The flags as given (after defaults), for GET_FLAGS and /master/state.
    raw: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(
        cls, values: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> MasterFlags:
        """Typed flags from `{name: text}` (names with `_` or `-`; missing = default) and, if
        given, the environment's `MESOS_<NAME>` variables (the command line wins)."""
        raw, given = FLAGS.collect(values, environ)
        get = raw.get

        def typed(name: str) -> Any:
            return FLAGS[name].parse(raw[name])

        flags = cls(raw=raw)
        flags.ip = raw["ip"]
        typed("forked_documents")  # checked here; the HTTP shell reads it
        flags.port = typed("port")
        if flags.port > 65535:
            raise ConfigError(f"--port: must be at most 65535, got {flags.port}")
        flags.hostname = get("hostname")
        flags.advertise_ip = get("advertise_ip")
        flags.advertise_port = typed("advertise_port") if "advertise_port" in raw else None
        flags.work_dir = get("work_dir")
        flags.log_dir = get("log_dir")
        flags.registry = raw["registry"]
        if flags.registry not in ("sqlite", "in_memory", "memory") and not flags.registry.startswith(("sqlite:", "zk://")):
            raise ConfigError(f"--registry: expected sqlite, sqlite:<path>, in_memory or zk://..., got {flags.registry!r}")
        flags.zk = get("zk")
        if flags.zk is not None:
            try:
                url = parse_zk_url(flags.zk)
            except ConfigError as exc:
                raise ConfigError(f"--zk: {exc}") from None
            if "registry" not in given:
                # HA masters share the registry through ZooKeeper, beside the election nodes
                # under the one child name clients skip. Imported here: only --zk loads kazoo.
                from mezzo.store.zookeeper import registry_root

                flags.registry = str(dataclasses.replace(url, path=registry_root(url.path)))
                raw["registry"] = flags.registry
        flags.zk_session_timeout = typed("zk_session_timeout")
        if not 0.5 <= flags.zk_session_timeout <= 3600.0:
            raise ConfigError("--zk_session_timeout: must be between 500ms and 1hrs")
        flags.quorum = typed("quorum") if "quorum" in raw else None
        flags.allocator = raw["allocator"]
        flags.weights = parse_weights(get("weights"))
        if get("roles"):
            roles = [r.strip() for r in raw["roles"].split(",") if r.strip()]
            for role in roles:
                problem = role_error(role)
                if problem:
                    raise ConfigError(f"--roles: invalid role {role!r}: {problem}")
            flags.roles = frozenset(roles)
        flags.min_allocatable_resources = raw["min_allocatable_resources"]
        try:
            parse_min_allocatable(flags.min_allocatable_resources)
        except ConfigError as exc:
            raise ConfigError(f"--min_allocatable_resources: {exc}") from None
        excluded = get("fair_sharing_excluded_resource_names")
        flags.fair_sharing_excluded_resource_names = [n.strip() for n in excluded.split(",")] if excluded else []
        flags.filter_gpu_resources = typed("filter_gpu_resources")
        flags.port_file = get("port_file")
        flags.logging_level = typed("logging_level")  # INFO, WARNING, ERROR or DEBUG
        interval = typed("allocation_interval")
        if interval <= 0:
            raise ConfigError("--allocation_interval: must be positive")
        window = typed("allocation_coalesce_window")
        if not 0.0 <= window <= interval:
            raise ConfigError("--allocation_coalesce_window: must be between 0 and --allocation_interval")
        ping = typed("agent_ping_timeout")
        if not 1.0 <= ping <= 3600.0:
            raise ConfigError("--agent_ping_timeout: must be between 1secs and 1hrs")
        flags.options = MasterOptions(
            allocation_interval=interval,
            allocation_coalesce_window=window,
            offer_timeout=typed("offer_timeout") if "offer_timeout" in raw else None,
            agent_ping_timeout=ping,
            max_agent_ping_timeouts=typed("max_agent_ping_timeouts"),
            agent_reregister_timeout=typed("agent_reregister_timeout"),
            roles=flags.roles,
            weights=flags.weights,
            root_submissions=typed("root_submissions"),
            max_completed_frameworks=typed("max_completed_frameworks"),
            max_completed_tasks_per_framework=typed("max_completed_tasks_per_framework"),
            max_operator_event_stream_subscribers=typed("max_operator_event_stream_subscribers"),
        )
        flags.security = MasterSecurity.from_flags(raw)
        if flags.security.tls.enabled:
            flags.options = dataclasses.replace(flags.options, agent_scheme="https")
        return flags

    def work_dir_or_default(self) -> str:
        return self.work_dir or os.path.join(os.getcwd(), f"mezzo-master-{self.port}")

    def as_strings(self) -> dict[str, str]:
        """Every flag with its effective value, as GET_FLAGS and /master/state show them."""
        out = dict(self.raw)
        out["allocation_interval"] = format_duration(self.options.allocation_interval)
        out["allocation_coalesce_window"] = format_duration(self.options.allocation_coalesce_window)
        return out
