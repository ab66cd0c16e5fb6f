"""Authorization: Mesos's local ACLs (`--acls`, the JSON form of acls.proto) and the
authorizer plug-in contract (`--authorizers`: `local` or a Python class path).

An ACL list per action, e.g.

    {"permissive": false,
     "register_frameworks": [{"principals": {"values": ["ops"]}, "roles": {"values": ["prod"]}}],
     "teardown_frameworks": [{"principals": {"type": "ANY"}, "framework_principals": {"type": "NONE"}}]}

Each entry has a subject (`principals`) and an object (named per action: `roles`, `users`,
`framework_principals`, `paths`, `agents`, ...), each an Entity: `{"values": [...]}` (SOME),
`{"type": "ANY"}` or `{"type": "NONE"}`. As Mesos's local authorizer decides
(src/authorizer/local/authorizer.cpp): the *first* entry whose subject and object both match
the request decides: allowed unless either entity is NONE; if none matches, `permissive`
(default true) decides. A request without a principal (authentication off) matches only ANY
or NONE subjects; a request without an object likewise.

Without `--acls` there is no authorizer: everything is allowed (Mesos's default).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mezzo.core.errors import ConfigError
from mezzo.core.plugins import load_class
from mezzo.security.credentials import read_path_flag

__all__ = ["ACTION_OBJECTS", "Authorizer", "LocalAuthorizer", "create_authorizer", "parse_acls"]

# ACL list name (acls.proto's `ACLs` field) -> the name of its object entity.
ACTION_OBJECTS: dict[str, str] = {
    "register_frameworks": "roles",
    "run_tasks": "users",
    "teardown_frameworks": "framework_principals",
    "reserve_resources": "roles",
    "unreserve_resources": "reserver_principals",
    "create_volumes": "roles",
    "destroy_volumes": "creator_principals",
    "resize_volumes": "roles",
    "update_weights": "roles",
    "get_endpoints": "paths",
    "get_quotas": "roles",
    "update_quotas": "roles",
    "view_frameworks": "users",
    "view_tasks": "users",
    "view_executors": "users",
    "access_sandboxes": "users",
    "access_mesos_logs": "logs",
    "view_roles": "roles",
    "view_flags": "flags",
    "launch_nested_containers": "users",
    "launch_nested_containers_under_parent_with_user": "users",
    "launch_nested_container_sessions": "users",
    "launch_nested_container_sessions_under_parent_with_user": "users",
    "kill_nested_containers": "users",
    "wait_nested_containers": "users",
    "remove_nested_containers": "users",
    "attach_containers_input": "users",
    "attach_containers_output": "users",
    "view_containers": "users",
    "launch_standalone_containers": "users",
    "kill_standalone_containers": "users",
    "wait_standalone_containers": "users",
    "remove_standalone_containers": "users",
    "view_standalone_containers": "users",
    "set_log_level": "level",
    "register_agents": "agents",
    "update_maintenance_schedules": "machines",
    "get_maintenance_schedules": "machines",
    "start_maintenances": "machines",
    "stop_maintenances": "machines",
    "get_maintenance_statuses": "machines",
    "drain_agents": "agents",
    "deactivate_agents": "agents",
    "reactivate_agents": "agents",
    "mark_agents_gone": "agents",
}

SOME, ANY, NONE = "SOME", "ANY", "NONE"


@dataclass(frozen=True)
class Entity:
    type: str = SOME
    values: frozenset[str] = frozenset()

    def matches(self, value: str | None) -> bool:
        if self.type in (ANY, NONE):
            return True
        return value is not None and value in self.values

    @property
    def allows(self) -> bool:
        return self.type != NONE


@dataclass(frozen=True)
class Acl:
    subject: Entity
    object: Entity


class Authorizer:
    """The plug-in contract. `authorized(action, principal, obj)`: may `principal` (None when
    the request did not authenticate) do `action` (an ACL list name, e.g. "teardown_frameworks")
    on `obj` (the action's object: a role, user, path, agent hostname...; None when it has
    none)? Plug-ins subclass this and take the parsed `--acls` document (or None) as their one
    argument."""

    def __init__(self, acls: Mapping[str, Any] | None = None) -> None:
        self.acls = acls

    def authorized(self, action: str, principal: str | None, obj: str | None = None) -> bool:
        raise NotImplementedError


class LocalAuthorizer(Authorizer):
    """Mesos's `local` authorizer over `--acls`."""

    def __init__(self, acls: Mapping[str, Any] | None = None) -> None:
        super().__init__(acls)
        self.permissive, self.lists = parse_acls(acls or {})

    def authorized(self, action: str, principal: str | None, obj: str | None = None) -> bool:
        if action not in ACTION_OBJECTS:
            raise ValueError(f"unknown authorization action {action!r}")
        for acl in self.lists.get(action, ()):
            if acl.subject.matches(principal) and acl.object.matches(obj):
                return acl.subject.allows and acl.object.allows
        return self.permissive


def _entity(raw: Any, where: str) -> Entity:
    if not isinstance(raw, dict):
        raise ConfigError(f"--acls: {where} must be an object like {{\"values\": [...]}} or {{\"type\": \"ANY\"}}")
    kind = raw.get("type", SOME)
    if kind not in (SOME, ANY, NONE):
        raise ConfigError(f"--acls: {where}: type must be SOME, ANY or NONE, got {kind!r}")
    values = raw.get("values", [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"--acls: {where}: values must be a list of strings")
    return Entity(kind, frozenset(values))


def parse_acls(doc: Mapping[str, Any]) -> tuple[bool, dict[str, list[Acl]]]:
    """`(permissive, {action: [Acl, ...]})` from an `--acls` document; ConfigError on
    unknown actions, missing entities or bad entity shapes."""
    if not isinstance(doc, Mapping):
        raise ConfigError("--acls: expected a JSON object")
    permissive = doc.get("permissive", True)
    if not isinstance(permissive, bool):
        raise ConfigError("--acls: 'permissive' must be true or false")
    lists: dict[str, list[Acl]] = {}
    for action, entries in doc.items():
        if action == "permissive":
            continue
        object_name = ACTION_OBJECTS.get(action)
        if object_name is None:
            raise ConfigError(f"--acls: unknown ACL {action!r}")
        if not isinstance(entries, list):
            raise ConfigError(f"--acls: {action} must be a list")
        parsed = []
        for index, entry in enumerate(entries):
            where = f"{action}[{index}]"
            if not isinstance(entry, dict):
                raise ConfigError(f"--acls: {where} must be an object")
            unknown = set(entry) - {"principals", object_name}
            if unknown:
                raise ConfigError(f"--acls: {where}: unknown field(s) {sorted(unknown)}; "
                                  f"expected 'principals' and '{object_name}'")
            for name in ("principals", object_name):
                if name not in entry:
                    raise ConfigError(f"--acls: {where}: missing '{name}'")
            parsed.append(Acl(_entity(entry["principals"], f"{where}.principals"),
                              _entity(entry[object_name], f"{where}.{object_name}")))
        lists[action] = parsed
    return permissive, lists


def load_acls(value: str) -> dict[str, Any]:
    """`--acls`: inline JSON or a path (`file://` allowed) to a JSON file, as in Mesos."""
    text = value if value.lstrip().startswith("{") else read_path_flag("acls", value)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--acls: invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError("--acls: expected a JSON object")
    return doc


def create_authorizer(name_or_path: str = "local", acls: Mapping[str, Any] | None = None) -> Authorizer:
    """`--authorizers`: `local` (Mesos's default, over `--acls`) or `package.module:Class`."""
    if name_or_path == "local":
        return LocalAuthorizer(acls)
    cls = load_class(name_or_path, Authorizer, "authorizer")
    instance: Authorizer = cls(acls)
    return instance
