"""The master's authorization (issue 15 §2): which ACL action guards which call or endpoint,
the 403s, and the filtered views.

Built from `--acls` (Mesos's JSON, inline or a file) and `--authorizers` (`local`, or a
`package.module:Class` subclassing `mezzo.security.authorizer.Authorizer`). Without `--acls`
and with the local authorizer there is no authorizer: everything is allowed, as in Mesos.

The subject is the principal the request authenticated as (None when its realm's
authentication is off, which matches only ANY/NONE subjects in the ACLs). What is checked:

| action | where | object |
|---|---|---|
| register_frameworks | SUBSCRIBE (refused with an ERROR event, as Mesos) | each of the framework's roles |
| teardown_frameworks | operator TEARDOWN, `/teardown` | the framework's principal |
| update_weights | operator UPDATE_WEIGHTS | each role updated |
| view_roles | GET_WEIGHTS, GET_ROLES, `/weights`, `/roles` (filtered) | the role |
| mark_agents_gone | operator MARK_AGENT_GONE | (none) |
| update_quotas | UPDATE_QUOTA, SET_QUOTA, REMOVE_QUOTA | each role named |
| get_quotas | filters GET_QUOTA, `/quota` | the role |
| access_mesos_logs | `/files/*`, LIST_FILES, READ_FILE of `/master/log` | (none) |
| run_tasks | LAUNCH, LAUNCH_GROUP (the core: TASK_ERROR, REASON_TASK_UNAUTHORIZED) | the task's user |
| view_flags | GET_FLAGS, `/flags` | (none) |
| get_endpoints | GET `/metrics/snapshot`, `/logging/toggle`, `/files/debug` | the path |
| register_agents | the agent's SUBSCRIBE | (none) |
| reserve_resources / unreserve_resources | RESERVE / UNRESERVE (ACCEPT, operator calls), decided in the core (`Master.authorize` is `allowed`) | the reservation role / the reserver principal |
| view_frameworks / view_tasks / view_executors | `/master/state`, `/frameworks`, `/tasks`, GET_STATE, GET_FRAMEWORKS, GET_TASKS, GET_EXECUTORS, the operator event stream (SUBSCRIBE: its SUBSCRIBED state and every later event) (filtered) | the framework's / task's / executor's user |

A refusal is `403 Forbidden` with a one-line message naming the principal and the action.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from mezzo.net.http import HTTPProblem
from mezzo.security.authentication import principal_of
from mezzo.security.authorizer import Authorizer, create_authorizer, load_acls

__all__ = ["AUTHORIZED_ENDPOINTS", "MasterAuthorization"]

# The GET endpoints the get_endpoints action covers on a master (Mesos's docs/authorization.md).
AUTHORIZED_ENDPOINTS = frozenset({"/metrics/snapshot", "/logging/toggle", "/files/debug"})
FILE_ENDPOINTS = frozenset({"/files/read", "/files/browse", "/files/download"})
# The master's own log, as `/files/*`, LIST_FILES and READ_FILE serve it (access_mesos_logs).
LOG_PATH = "/master/log"


def _who(principal: str | None) -> str:
    return f"principal '{principal}'" if principal is not None else "an unauthenticated request"


class MasterAuthorization:
    def __init__(self, authorizer: Authorizer | None = None) -> None:
        self.authorizer = authorizer

    @classmethod
    def from_flags(cls, raw: Mapping[str, str]) -> MasterAuthorization:
        acls = load_acls(raw["acls"]) if raw.get("acls") else None
        name = raw.get("authorizers") or "local"
        if acls is None and name == "local":
            return cls(None)
        return cls(create_authorizer(name, acls))

    @property
    def enabled(self) -> bool:
        return self.authorizer is not None

    def allowed(self, action: str, principal: str | None, obj: str | None = None) -> bool:
        return self.authorizer is None or self.authorizer.authorized(action, principal, obj)

    def require(self, principal: str | None, action: str, obj: str | None, what: str) -> None:
        """HTTPProblem 403 unless `principal` may do `action` on `obj`."""
        if not self.allowed(action, principal, obj):
            raise HTTPProblem(403, f"Forbidden: {_who(principal)} is not authorized to {what}")

    # ------------------------------------------------------------------ endpoints

    def middleware(self) -> Any:
        """get_endpoints on the GET endpoints Mesos makes authorizable."""

        @web.middleware
        async def authorize_endpoint(request: web.Request, handler: Any) -> web.StreamResponse:
            path = request.path.rstrip("/")
            bare = path.removesuffix(".json")
            if self.authorizer is not None and request.method == "GET":
                try:
                    if bare in AUTHORIZED_ENDPOINTS:
                        self.require(principal_of(request), "get_endpoints", bare, f"GET '{bare}'")
                    elif bare in FILE_ENDPOINTS:
                        self.check_log_access(principal_of(request), request.query.get("path"))
                except HTTPProblem as problem:
                    return problem.response()
            return await handler(request)

        return authorize_endpoint

    # ------------------------------------------------------------------ calls

    def framework_roles(self, info: Any) -> list[str]:
        return list(info.roles) if getattr(info, "roles", None) else [info.role or "*"]

    def subscribe_refusal(self, principal: str | None, info: Any) -> str | None:
        """Why a SUBSCRIBE is refused (register_frameworks on each role), or None."""
        if self.authorizer is None:
            return None
        for role in self.framework_roles(info):
            if not self.allowed("register_frameworks", principal or info.principal or None, role):
                who = info.principal or principal
                return (f"Not authorized to use role '{role}'" +
                        (f" (framework principal '{who}')" if who else ""))
        return None

    def check_operator_call(self, principal: str | None, call: Any, master: Any) -> None:
        """403 for the operator calls an ACL guards (the caller answers 403)."""
        if self.authorizer is None:
            return
        t = type(call.type)
        if call.type == t.TEARDOWN and call.teardown is not None:
            fid = call.teardown.framework_id.value
            self.check_teardown(principal, master, fid)
        elif call.type == t.UPDATE_WEIGHTS and call.update_weights is not None:
            for info in call.update_weights.weight_infos:
                self.require(principal, "update_weights", info.role, f"update the weight of role '{info.role}'")
        elif call.type == t.MARK_AGENT_GONE:
            self.require(principal, "mark_agents_gone", None, "mark agents gone")
        elif call.type == t.GET_FLAGS:
            self.require(principal, "view_flags", None, "view the flags")
        elif call.type in (t.UPDATE_QUOTA, t.SET_QUOTA, t.REMOVE_QUOTA):
            for role in _quota_roles(call):
                self.require(principal, "update_quotas", role, f"update the quota of role '{role}'")
        elif call.type == t.LIST_FILES and call.list_files is not None:
            self.check_log_access(principal, call.list_files.path)
        elif call.type == t.READ_FILE and call.read_file is not None:
            self.check_log_access(principal, call.read_file.path)

    def check_log_access(self, principal: str | None, path: str | None) -> None:
        """access_mesos_logs on the master's log (the only file the master serves)."""
        if path is not None and (path.rstrip("/") == LOG_PATH or path.startswith(LOG_PATH + "/")):
            self.require(principal, "access_mesos_logs", None, "access the master's log")

    def check_teardown(self, principal: str | None, master: Any, framework_id: str) -> None:
        framework = master.frameworks.get(framework_id)
        owner = framework.info.principal if framework is not None else None
        self.require(principal, "teardown_frameworks", owner or None,
                     f"tear down framework '{framework_id}'")

    # ------------------------------------------------------------------ filtered views

    def visible_quotas(self, principal: str | None, quotas: Mapping[str, Any]) -> dict[str, Any]:
        """The quotas `principal` may view (get_quotas on each role): GET_QUOTA, /quota."""
        return {r: q for r, q in quotas.items() if self.allowed("get_quotas", principal, r)}

    def visible_roles(self, principal: str | None, roles: Mapping[str, Any]) -> dict[str, Any]:
        return {r: v for r, v in roles.items() if self.allowed("view_roles", principal, r)}

    def viewer(self, principal: str | None) -> Callable[[str, str | None], bool]:
        """What `principal` may view, for the operator event stream's filter."""
        return lambda action, user: self.allowed(action, principal, user)

    def view(self, principal: str | None, master: Any) -> Any:
        """`master` itself, or a read-only stand-in whose frameworks, tasks and executors are
        those `principal` may view (what the views in `mezzo.master.views` render)."""
        if self.authorizer is None:
            return master
        return _FilteredMaster(master, self, principal)


class _FilteredMaster:
    """Delegates to the master, with frameworks (and their tasks and executors) filtered by
    view_frameworks / view_tasks / view_executors. Copies are shallow and per request."""

    def __init__(self, master: Any, authz: MasterAuthorization, principal: str | None) -> None:
        self._master = master

        def can(action: str, user: str | None) -> bool:
            return authz.allowed(action, principal, user)

        self.weights = {r: w for r, w in master.weights.items() if can("view_roles", r)}
        self.quota_config = authz.visible_quotas(principal, master.quota_config)
        self.frameworks = _filtered(master.frameworks, can)
        self.completed_frameworks = _filtered(master.completed_frameworks, can)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._master, name)

    def find_tasks(self, **kwargs: Any) -> Any:
        # The master's own paging over this object's (filtered) frameworks.
        return type(self._master).find_tasks(self, **kwargs)


def _quota_roles(call: Any) -> list[str]:
    """The roles an UPDATE_QUOTA / SET_QUOTA / REMOVE_QUOTA names (malformed payloads name
    none here: the core refuses them with 400)."""
    t = type(call.type)
    def payload(raw: Any) -> dict[str, Any]:
        return raw if isinstance(raw, dict) else {}

    if call.type == t.UPDATE_QUOTA:
        configs = payload(call.update_quota).get("quota_configs")
        entries = configs if isinstance(configs, list) else []
    elif call.type == t.SET_QUOTA:
        entries = [payload(call.set_quota).get("quota_request")]
    else:
        entries = [payload(call.remove_quota)]
    return [e["role"] for e in entries if isinstance(e, dict) and isinstance(e.get("role"), str)]


def _filtered(frameworks: Mapping[str, Any], can: Callable[[str, str | None], bool]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fid, fw in frameworks.items():
        user = fw.info.user or None
        if not can("view_frameworks", user):
            continue

        def task_ok(task: Any, user: str | None = user) -> bool:
            return can("view_tasks", task.user or user)

        def executor_ok(executor: Any, user: str | None = user) -> bool:
            return can("view_executors", executor.command_user() or user)

        out[fid] = dataclasses.replace(
            fw,
            tasks={k: t for k, t in fw.tasks.items() if task_ok(t)},
            unreachable_tasks={k: t for k, t in fw.unreachable_tasks.items() if task_ok(t)},
            completed_tasks=deque(t for t in fw.completed_tasks if task_ok(t)),
            executors={a: {k: e for k, e in per.items() if executor_ok(e)} for a, per in fw.executors.items()},
        )
    return out
