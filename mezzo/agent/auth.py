"""The agent's security (issue 15): who may use this agent's HTTP endpoints, as Mesos's agent.

Built from the agent's flags by `AgentSecurity.from_flags`; the default (no flags) enforces
nothing, and says so in one log line.

Authentication realms (Mesos's names, src/slave/constants.hpp):

| realm | flag | endpoints |
| --- | --- | --- |
| `mesos-agent-executor` | `--authenticate_http_executors` | `/api/v1/executor` |
| `mesos-agent-readwrite` | `--authenticate_http_readwrite` | `/api/v1` (operator API), `/logging/toggle`, every non-GET |
| `mesos-agent-readonly` | `--authenticate_http_readonly` | `/state`, `/flags`, `/metrics/snapshot`, `/metrics`, `/files/*`, `/containers` |

`/health` and `/version` stay public. Basic credentials come from `--http_credentials`.
With `--jwt_secret_key` (alias `--executor_secret_key`) the agent mints a token per executor
(`mezzo.security.executor_tokens`) and hands it over in `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`;
with `--authenticate_http_executors` the token is required on the executor API and accepted
(Bearer) in every realm, as Mesos combines its basic and JWT authenticators.

Authorization (`--acls`, `--authorizer`): `access_sandboxes` on `/files/*`, LIST_FILES and
READ_FILE of sandboxes (object: the sandbox's executor user, else its framework's user),
`access_mesos_logs` on those of the agent's log (`/slave/log`), `view_flags` on
`/flags` and GET_FLAGS, `view_frameworks` / `view_executors` / `view_tasks` filtering
`/state` and GET_STATE & co. (`viewer`), `get_endpoints` on `/metrics/snapshot`, `/logging/toggle`,
`/files/debug`, `/containers`, and the container calls' ACLs (`require_container`:
launch/kill/wait/remove nested or standalone containers, sessions, attach input/output; an
executor token may touch only containers under its own), each a 403 with one line naming
the principal.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mezzo.core.errors import ConfigError
from mezzo.net.http import HTTPProblem
from mezzo.security.authentication import (
    AGENT_READONLY_REALM,
    AGENT_READWRITE_REALM,
    EXECUTOR_REALM,
    Authenticator,
    claims_of,
    principal_of,
)
from mezzo.security.authorizer import Authorizer, create_authorizer, load_acls
from mezzo.security.credentials import load_credentials
from mezzo.security.executor_tokens import ExecutorTokens, claims_mismatch, load_secret_key
from mezzo.security.tls import TlsConfig
from mezzo.security.tls_flags import TLS_FLAGS

if TYPE_CHECKING:
    from mezzo.agent.flags import AgentFlags
    from mezzo.agent.state import Executor, Framework

log = logging.getLogger("mezzo.agent.auth")

__all__ = ["AUTHORIZED_ENDPOINTS", "AgentSecurity", "agent_realm_of"]

TLS_FLAG_NAMES = [flag.name for flag in TLS_FLAGS]
PUBLIC_PATHS = frozenset({"/health", "/version"})
EXECUTOR_PATHS = frozenset({"/api/v1/executor"})
# GET endpoints get_endpoints covers on an agent (Mesos's docs/authorization.md).
AUTHORIZED_ENDPOINTS = frozenset({"/metrics/snapshot", "/logging/toggle", "/files/debug",
                                  "/containers", "/monitor/statistics"})


def agent_realm_of(request: web.Request) -> str:
    path = request.path.rstrip("/") or "/"
    if path.startswith("/slave(1)/"):
        path = path[len("/slave(1)"):]
    if path in PUBLIC_PATHS:
        return ""
    if path in EXECUTOR_PATHS:
        return EXECUTOR_REALM
    if (path == "/api/v1" or path.startswith("/api/v1/") or path == "/logging/toggle"
            or request.method not in ("GET", "HEAD")):
        return AGENT_READWRITE_REALM
    return AGENT_READONLY_REALM


def _who(request: web.Request) -> str:
    principal = principal_of(request)
    if principal is not None:
        return f"principal '{principal}'"
    claims = claims_of(request)
    if claims is not None:
        return f"executor '{claims.get('eid', '')}' of framework '{claims.get('fid', '')}'"
    return "an unauthenticated request"


@dataclass
class AgentSecurity:
    """What this agent enforces (see the module docstring)."""

    authenticator: Authenticator | None = None
    tokens: ExecutorTokens | None = None
    authorizer: Authorizer | None = None
    tls: TlsConfig = field(default_factory=TlsConfig)

    @classmethod
    def from_flags(cls, flags: AgentFlags) -> AgentSecurity:
        key_path = flags.jwt_secret_key or flags.executor_secret_key
        key_flag = "jwt_secret_key" if flags.jwt_secret_key else "executor_secret_key"
        tokens = ExecutorTokens(load_secret_key(key_path, key_flag)) if key_path else None
        if flags.authenticate_http_executors and tokens is None:
            raise ConfigError("--jwt_secret_key must be specified when "
                              "--authenticate_http_executors is set to true")
        credentials = load_credentials(flags.http_credentials, "http_credentials") \
            if flags.http_credentials else None
        realms = set()
        for on, realm in ((flags.authenticate_http_readonly, AGENT_READONLY_REALM),
                          (flags.authenticate_http_readwrite, AGENT_READWRITE_REALM)):
            if on:
                if credentials is None and not flags.authenticate_http_executors:
                    raise ConfigError(f"No credentials provided for the default 'basic' HTTP "
                                      f"authenticator for realm '{realm}' (see --http_credentials)")
                realms.add(realm)
        if flags.authenticate_http_executors:
            realms.add(EXECUTOR_REALM)
        authenticator = None
        if realms:
            authenticator = Authenticator(
                credentials or {}, realms,
                tokens=tokens if flags.authenticate_http_executors else None)
        acls = load_acls(flags.acls) if flags.acls else None
        name = flags.authorizer or "local"
        authorizer = None if acls is None and name == "local" else create_authorizer(name, acls)
        tls = TlsConfig.load({name: getattr(flags, name) for name in TLS_FLAG_NAMES}, server=True)
        return cls(authenticator, tokens, authorizer, tls)

    def log_posture(self) -> None:
        realms = self.authenticator.realms if self.authenticator else frozenset()
        off = [flag for flag, realm in (
            ("--authenticate_http_readonly", AGENT_READONLY_REALM),
            ("--authenticate_http_readwrite", AGENT_READWRITE_REALM),
            ("--authenticate_http_executors", EXECUTOR_REALM)) if realm not in realms]
        if off:
            log.warning("agent security is open: no authentication for %s (anyone who can "
                        "reach this agent may use those endpoints; see docs/security.md)",
                        ", ".join(off))
        if realms:
            log.info("agent authentication on for realms: %s", ", ".join(sorted(realms)))
        if self.authorizer is not None:
            log.info("agent authorization on: %s", type(self.authorizer).__name__)

    def middlewares(self) -> list[Any]:
        out: list[Any] = []
        if self.authenticator is not None:
            out.append(self.authenticator.middleware(lambda r: agent_realm_of(r) or None))
        if self.authorizer is not None:
            out.append(self._endpoint_middleware())
        return out

    # ------------------------------------------------------------------ executors

    def mint(self, framework_id: str, executor_id: str, container_id: str) -> str | None:
        """The token of a new executor container (None without `--jwt_secret_key`)."""
        if self.tokens is None:
            return None
        return self.tokens.mint(framework_id, executor_id, container_id)

    @staticmethod
    def executor_call_refusal(request: web.Request, framework_id: str, executor_id: str,
                              container_id: str) -> str | None:
        """Mesos's implicit executor authorization: an authenticated caller of the executor
        API may speak only for the framework, executor and container its token names."""
        claims = claims_of(request)
        if claims is None:
            principal = principal_of(request)
            if principal is None:
                return None
            # A Basic principal carries no claims: it cannot speak for an executor.
            return (f"Authenticated principal '{principal}' does not contain an 'fid' claim "
                    f"with the framework ID {framework_id}, which is set in the call")
        return claims_mismatch(claims, framework_id, executor_id, container_id)

    # ------------------------------------------------------------------ authorization

    def allowed(self, request: web.Request, action: str, obj: str | None) -> bool:
        if self.authorizer is None:
            return True
        return self.authorizer.authorized(action, principal_of(request), obj)

    def viewer(self, request: web.Request) -> Callable[[str, str | None], bool]:
        """What the request's principal may view (view_frameworks, view_executors, view_tasks
        filter the agent's `/state`, GET_STATE, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS)."""
        if self.authorizer is None:
            return lambda action, user: True
        authorizer, principal = self.authorizer, principal_of(request)
        return lambda action, user: authorizer.authorized(action, principal, user)

    def require(self, request: web.Request, action: str, obj: str | None, what: str) -> None:
        """HTTPProblem 403 unless the request's principal may do `action` on `obj`."""
        if not self.allowed(request, action, obj):
            raise HTTPProblem(403, f"Forbidden: {_who(request)} is not authorized to {what}")

    def require_sandbox(self, request: web.Request, path: Path,
                        frameworks: list[Framework]) -> None:
        """access_sandboxes for the sandbox `path` lies in (its executor's user, else its
        framework's user); a path in no known sandbox matches only ANY objects."""
        if self.authorizer is None:
            return
        user: str | None = None
        owner = _sandbox_owner(path, frameworks)
        if owner is not None:
            fw, ex = owner
            command = getattr(ex.info, "command", None)
            user = getattr(command, "user", None) or fw.info.user or None
        self.require(request, "access_sandboxes", user, f"access the sandbox '{path}'")

    def require_container(self, request: web.Request, call_type: str, container_id: Any,
                          frameworks: list[Framework], command: Any = None) -> None:
        """The container calls' ACLs (Mesos's local authorizer): the nested (or standalone,
        for a container without parent) action of `call_type` on `container_id`, whose object
        is the user of the executor at its root (`CommandInfo.user`, else its framework's);
        for a launch with a `command`, that command's user (None: any). An executor's token
        may launch, wait for, kill, remove and attach to the output of containers under its
        own container only (Mesos's implicit executor approver), whatever the ACLs.
        HTTPProblem 403 when refused."""
        nested = getattr(container_id, "parent", None) is not None
        actions = CONTAINER_ACTIONS.get(call_type)
        if actions is None:
            return
        action = actions[0] if nested else actions[1]
        what = f"{call_type.lower().replace('_', ' ')} '{_container_name(container_id)}'"
        claims = claims_of(request)
        if claims is not None and principal_of(request) is None and action in IMPLICIT_EXECUTOR_ACTIONS:
            if _root_of(container_id) != claims.get("cid"):
                raise HTTPProblem(403, f"Forbidden: {_who(request)} is not authorized to {what}")
            return
        if self.authorizer is None:
            return
        if command is not None and action in ("launch_nested_containers",
                                              "launch_nested_container_sessions"):
            user = getattr(command, "user", None) or None
        else:
            user = self._root_user(_root_of(container_id), frameworks)
        self.require(request, action, user, what)

    @staticmethod
    def _root_user(root: str, frameworks: list[Framework]) -> str | None:
        for fw in frameworks:
            for ex in fw.executors.values():
                if ex.container_id == root:
                    command = getattr(ex.info, "command", None)
                    return getattr(command, "user", None) or fw.info.user or None
        return None

    def _endpoint_middleware(self) -> Any:
        @web.middleware
        async def authorize_endpoint(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            path = request.path.rstrip("/").removeprefix("/slave(1)")
            bare = path.removesuffix(".json")
            if request.method == "GET":
                try:
                    if bare in AUTHORIZED_ENDPOINTS:
                        self.require(request, "get_endpoints", bare, f"GET '{bare}'")
                    elif bare == "/flags":
                        self.require(request, "view_flags", None, "view the flags")
                except HTTPProblem as problem:
                    return problem.response()
            return await handler(request)

        return authorize_endpoint


# Container call -> (its action on a nested container, on a standalone one).
CONTAINER_ACTIONS: dict[str, tuple[str, str]] = {
    "LAUNCH_NESTED_CONTAINER": ("launch_nested_containers", "launch_standalone_containers"),
    "LAUNCH_CONTAINER": ("launch_nested_containers", "launch_standalone_containers"),
    "LAUNCH_NESTED_CONTAINER_SESSION": ("launch_nested_container_sessions",
                                        "launch_nested_container_sessions"),
    "WAIT_NESTED_CONTAINER": ("wait_nested_containers", "wait_standalone_containers"),
    "WAIT_CONTAINER": ("wait_nested_containers", "wait_standalone_containers"),
    "KILL_NESTED_CONTAINER": ("kill_nested_containers", "kill_standalone_containers"),
    "KILL_CONTAINER": ("kill_nested_containers", "kill_standalone_containers"),
    "REMOVE_NESTED_CONTAINER": ("remove_nested_containers", "remove_standalone_containers"),
    "REMOVE_CONTAINER": ("remove_nested_containers", "remove_standalone_containers"),
    "ATTACH_CONTAINER_INPUT": ("attach_containers_input", "attach_containers_input"),
    "ATTACH_CONTAINER_OUTPUT": ("attach_containers_output", "attach_containers_output"),
}
# What an executor token may do under its own container (Mesos's implicit executor approver).
IMPLICIT_EXECUTOR_ACTIONS = frozenset({
    "launch_nested_containers", "wait_nested_containers", "kill_nested_containers",
    "launch_nested_container_sessions", "remove_nested_containers", "attach_containers_output"})


def _root_of(container_id: Any) -> str:
    while getattr(container_id, "parent", None) is not None:
        container_id = container_id.parent
    return str(getattr(container_id, "value", ""))


def _container_name(container_id: Any) -> str:
    parts = []
    while container_id is not None:
        parts.append(str(getattr(container_id, "value", "")))
        container_id = getattr(container_id, "parent", None)
    return ".".join(reversed(parts))


def _sandbox_owner(path: Path, frameworks: list[Framework]) -> tuple[Framework, Executor] | None:
    for fw in frameworks:
        for ex in [*fw.executors.values(), *fw.completed_executors]:
            sandbox = Path(ex.sandbox).resolve()
            if path == sandbox or sandbox in path.parents:
                return fw, ex
    return None

