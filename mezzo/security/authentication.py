"""HTTP Basic authentication against a credentials file, per realm, as Mesos does it.

Mesos groups endpoints into authentication *realms*, each turned on by its own flag
(src/master/constants.hpp, src/slave/constants.hpp):

| realm | master flag | endpoints |
| --- | --- | --- |
| `mesos-master-scheduler` | `--authenticate_http_frameworks` | `/api/v1/scheduler` |
| `mesos-master-readonly` | `--authenticate_http_readonly` | state, metrics, files, ... (GET) |
| `mesos-master-readwrite` | `--authenticate_http_readwrite` | `/api/v1` operator, teardown, ... |
| `mesos-master-agent` | `--authenticate_agents` | `/api/v1/agent` (mezzo's own agent protocol) |

(Mesos agents authenticate with CRAM-MD5 over libprocess, which has no HTTP realm; mezzo's
agents speak HTTP, so their realm is mezzo's name.)

`Authenticator.middleware(realm_of)` is an aiohttp middleware: `realm_of(request)` says which
realm a request belongs to (None: public, e.g. `/health`); if that realm is on, the request
needs a valid `Authorization: Basic` header, else it gets 401 with
`WWW-Authenticate: Basic realm="<realm>"` and reaches no handler. The authenticated principal
is left in `request["principal"]` for the handlers and the authorizer.

Given `tokens` (an agent with `--authenticate_http_executors`), a request may instead carry
`Authorization: Bearer <executor token>` (`mezzo.security.executor_tokens`), in every realm, as
Mesos's agent combines its basic and JWT authenticators: the token's claims (`fid`, `eid`,
`cid`) are left in `request[CLAIMS_KEY]` and the request has no principal name. A bad token
is 401 with Mesos's `Bearer realm="...", error="invalid_token", error_description="..."`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from mezzo.security.executor_tokens import ExecutorTokens

log = logging.getLogger("mezzo.security")

SCHEDULER_REALM = "mesos-master-scheduler"
MASTER_READONLY_REALM = "mesos-master-readonly"
MASTER_READWRITE_REALM = "mesos-master-readwrite"
MASTER_AGENT_REALM = "mesos-master-agent"
AGENT_READONLY_REALM = "mesos-agent-readonly"
AGENT_READWRITE_REALM = "mesos-agent-readwrite"
EXECUTOR_REALM = "mesos-agent-executor"

# Where the middleware leaves the authenticated principal.
PRINCIPAL_KEY: web.RequestKey[str] = web.RequestKey("principal", str)
# Where it leaves the claims of an executor token (Bearer).
CLAIMS_KEY: web.RequestKey[dict[str, str]] = web.RequestKey("claims", dict)

__all__ = [
    "AGENT_READONLY_REALM", "AGENT_READWRITE_REALM", "CLAIMS_KEY", "EXECUTOR_REALM",
    "MASTER_AGENT_REALM",
    "MASTER_READONLY_REALM", "MASTER_READWRITE_REALM", "PRINCIPAL_KEY", "SCHEDULER_REALM",
    "Authenticator", "basic_header", "claims_of", "parse_basic", "principal_of",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def basic_header(principal: str, secret: str) -> str:
    """The `Authorization` header value a client sends (what pymesos sends)."""
    token = base64.b64encode(f"{principal}:{secret}".encode()).decode("ascii")
    return f"Basic {token}"


def parse_basic(header: str) -> tuple[str, str] | None:
    """`(principal, secret)` from a `Basic` Authorization header, or None if it is not one."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    principal, sep, secret = decoded.partition(":")
    return (principal, secret) if sep else None


def principal_of(request: web.Request) -> str | None:
    """The principal the request authenticated as, or None (not authenticated)."""
    return request.get(PRINCIPAL_KEY)


def claims_of(request: web.Request) -> dict[str, str] | None:
    """The claims of the executor token the request authenticated with, or None."""
    return request.get(CLAIMS_KEY)


def _unauthorized(challenges: list[str]) -> web.Response:
    response = web.Response(status=401, text="Unauthorized: valid credentials are required\n")
    for challenge in challenges:
        response.headers.add("WWW-Authenticate", challenge)
    return response


class Authenticator:
    """Checks HTTP Basic credentials (and, given `tokens`, executor Bearer tokens) for the
    realms that are turned on."""

    def __init__(self, credentials: Mapping[str, str], realms: Collection[str],
                 tokens: ExecutorTokens | None = None) -> None:
        self.credentials = dict(credentials)
        self.realms = frozenset(realms)
        self.tokens = tokens

    def authenticate(self, header: str | None) -> str | None:
        """The principal a `Authorization` header proves, or None."""
        given = parse_basic(header) if header else None
        if given is None:
            return None
        principal, password = given
        secret = self.credentials.get(principal)
        # Constant-time comparison, also when the principal is unknown.
        matched = hmac.compare_digest((secret or "\0").encode(), password.encode())
        return principal if matched and secret is not None else None

    def middleware(self, realm_of: Callable[[web.Request], str | None]) -> Any:
        @web.middleware
        async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
            realm = realm_of(request)
            if realm is None or realm not in self.realms:
                return await handler(request)
            header = request.headers.get("Authorization")
            challenges = [f'Basic realm="{realm}"'] if self.credentials else []
            if self.tokens is not None:
                challenges.append(f'Bearer realm="{realm}"')
                scheme, _, token = (header or "").strip().partition(" ")
                if scheme == "Bearer":
                    from mezzo.security.executor_tokens import InvalidToken

                    try:
                        request[CLAIMS_KEY] = self.tokens.verify(token.strip())
                    except InvalidToken as exc:
                        log.warning("executor token refused on %s %s (realm %s) from %s: %s",
                                    request.method, request.path, realm, request.remote, exc)
                        detail = str(exc).replace('"', "'")
                        return _unauthorized([f'Bearer realm="{realm}", error="invalid_token", '
                                              f'error_description="{detail}"'])
                    return await handler(request)
            principal = self.authenticate(header)
            if principal is None:
                if header:
                    log.warning("authentication failed on %s %s (realm %s) from %s",
                                request.method, request.path, realm, request.remote)
                return _unauthorized(challenges)
            request[PRINCIPAL_KEY] = principal
            return await handler(request)

        return authenticate


def log_open_realms(daemon: str, flags: Mapping[str, str], names: Collection[str]) -> None:
    """The one clear line an open (default) set-up logs: which authentication is off."""
    off = [f"--{name}" for name in names if flags.get(name, "false").lower() not in ("true", "1", "yes")]
    if off:
        log.warning("%s security is open: no authentication for %s (anyone who can reach this "
                    "%s may use those endpoints; see docs/security.md)", daemon, ", ".join(off), daemon)
