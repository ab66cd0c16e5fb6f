"""The master's use of `mezzo.security`: which realm each endpoint is in, the authentication
flags, and the framework principal binding.

Realms as Mesos's master routes them (src/master/master.cpp): `/api/v1/scheduler` is the
scheduler realm; `/api/v1/agent` (mezzo's agent protocol) the agent realm; the operator API
`/api/v1` and every request that changes state (POST/PUT/DELETE: `/teardown`, `/weights`...)
the read-write realm; other GETs (state, tasks, metrics, files, flags, the web UI's agent
proxy) the read-only realm. Public, as in Mesos: `/health`, `/version`, `/redirect`, the web
UI's page and static assets.

Binding (src/master/http.cpp, validation.cpp): a framework that authenticated may leave
`FrameworkInfo.principal` out (it is set to the authenticated principal) but may not name
another one; every later call (re-SUBSCRIBE included, through the core's "principal may not
change" rule) must come from the framework's principal: 400 otherwise, with Mesos's message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from mezzo.core.errors import ConfigError
from mezzo.master.authorization import MasterAuthorization
from mezzo.net.http import HTTPProblem
from mezzo.security.authentication import (
    MASTER_AGENT_REALM,
    MASTER_READONLY_REALM,
    MASTER_READWRITE_REALM,
    SCHEDULER_REALM,
    Authenticator,
    log_open_realms,
)
from mezzo.security.credentials import load_credentials
from mezzo.security.rate_limits import RateLimits, load_rate_limits
from mezzo.security.tls import TlsConfig

log = logging.getLogger("mezzo.master.auth")

# flag -> the realm it turns on. `--authenticate_frameworks` (Mesos's v0 flag, alias
# `--authenticate`) also covers HTTP frameworks: mezzo has no other kind.
REALM_FLAGS: dict[str, str] = {
    "authenticate_http_frameworks": SCHEDULER_REALM,
    "authenticate_frameworks": SCHEDULER_REALM,
    "authenticate": SCHEDULER_REALM,
    "authenticate_agents": MASTER_AGENT_REALM,
    "authenticate_slaves": MASTER_AGENT_REALM,
    "authenticate_http_readonly": MASTER_READONLY_REALM,
    "authenticate_http_readwrite": MASTER_READWRITE_REALM,
}
PUBLIC_PATHS = frozenset({"/health", "/version", "/redirect", "/"})


def _truthy(flag: str, text: str | None) -> bool:
    lowered = (text or "false").strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ConfigError(f"--{flag}: expected true or false, got {text!r}")


@dataclass
class MasterSecurity:
    """What the master enforces; the default (no flags) enforces nothing."""

    authenticator: Authenticator | None = None
    authorization: MasterAuthorization = field(default_factory=MasterAuthorization)
    # TLS (`LIBPROCESS_SSL_*`, `--ssl_*`): served by `mezzo.master.main`, used to reach agents.
    tls: TlsConfig = field(default_factory=TlsConfig)
    # `--rate_limits`: scheduler calls throttled per framework principal (None: not limited).
    rate_limits: RateLimits | None = None

    @classmethod
    def from_flags(cls, raw: Mapping[str, str]) -> MasterSecurity:
        realms = {realm for flag, realm in REALM_FLAGS.items() if _truthy(flag, raw.get(flag))}
        credentials_path = raw.get("credentials")
        credentials = load_credentials(credentials_path) if credentials_path else None
        if realms and credentials is None:
            on = sorted(f"--{f}" for f, r in REALM_FLAGS.items() if r in realms and _truthy(f, raw.get(f)))
            raise ConfigError(f"{', '.join(on)} requires --credentials")
        authenticator = Authenticator(credentials or {}, realms) if realms else None
        return cls(authenticator=authenticator, authorization=MasterAuthorization.from_flags(raw),
                   tls=TlsConfig.load(raw, server=True),
                   rate_limits=load_rate_limits(raw["rate_limits"]) if raw.get("rate_limits") else None)

    def log_posture(self) -> None:
        """One line at start-up: what is open (Mesos's default), or what is enforced."""
        realms = self.authenticator.realms if self.authenticator else frozenset()
        if not realms:
            log_open_realms("master", {}, ["authenticate_http_frameworks", "authenticate_agents",
                                           "authenticate_http_readonly", "authenticate_http_readwrite"])
        else:
            log.info("master authentication on for realms: %s", ", ".join(sorted(realms)))
        if self.authorization.enabled:
            log.info("master authorization on: %s", type(self.authorization.authorizer).__name__)

    def middlewares(self) -> list[Any]:
        out = [self.authenticator.middleware(realm_of)] if self.authenticator else []
        if self.authorization.enabled:
            out.append(self.authorization.middleware())
        return out


def realm_of(request: web.Request) -> str | None:
    path = request.path.rstrip("/") or "/"
    if path.startswith("/master/"):
        path = path[len("/master"):]
    if path in PUBLIC_PATHS or path.startswith("/static/"):
        return None
    if path == "/api/v1/scheduler":
        return SCHEDULER_REALM
    if path == "/api/v1/agent":
        return MASTER_AGENT_REALM
    if path == "/api/v1" or path.startswith("/api/v1/") or request.method not in ("GET", "HEAD"):
        return MASTER_READWRITE_REALM
    return MASTER_READONLY_REALM


def check_subscribe_principal(principal: str | None, framework_info: Any) -> None:
    """SUBSCRIBE: an authenticated framework's FrameworkInfo.principal is its principal."""
    if principal is None:
        return
    if not framework_info.principal:
        log.warning("Setting 'principal' in FrameworkInfo to '%s' because the framework "
                    "authenticated with that principal but did not set it in FrameworkInfo", principal)
        framework_info.principal = principal
    elif framework_info.principal != principal:
        raise HTTPProblem(400, f"Failed to validate scheduler::Call: Authenticated principal "
                               f"'{principal}' does not match principal '{framework_info.principal}' "
                               f"set in `FrameworkInfo`")


def check_call_principal(principal: str | None, framework: Any) -> None:
    """Any other scheduler call: only the framework's own principal may speak for it."""
    if principal is None or framework is None:
        return
    if framework.info.principal != principal:
        raise HTTPProblem(400, f"Authenticated principal '{principal}' does not match principal "
                               f"'{framework.info.principal or ''}' set in `FrameworkInfo`")
