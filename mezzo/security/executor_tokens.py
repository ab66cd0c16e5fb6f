"""Executor authentication tokens: JWTs (HMAC-SHA256) an agent mints for each executor it
launches and checks on its executor API, as Mesos does (docs/authentication.md, "Executor
authentication"; src/authentication/executor/jwt_secret_generator.cpp).

- The agent reads the key from `--jwt_secret_key` (Mesos's name; `--executor_secret_key` is
  its deprecated alias) and mints, per executor container, a token whose claims are
  `{"fid": <framework id>, "eid": <executor id>, "cid": <container id>}` (no expiry, as Mesos).
  The executor finds it in `MESOS_EXECUTOR_AUTHENTICATION_TOKEN` and sends it on every call
  as `Authorization: Bearer <token>`.
- `verify` answers the claims of a token signed with the key, or raises `InvalidToken` with
  the reason the 401's `error_description` carries (Mesos's wording: `Invalid JWT: ...`,
  `JWT claims missing`).
- `claims_mismatch` is Mesos's `verifyExecutorClaims` (src/slave/http.cpp): the call's
  framework id, executor id and the executor's live container id must be the token's; the
  message is the 403's.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping

import jwt

from mezzo.core.errors import ConfigError
from mezzo.security.credentials import read_path_flag

log = logging.getLogger("mezzo.security")

TOKEN_ENV = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
ALGORITHM = "HS256"

__all__ = ["ALGORITHM", "TOKEN_ENV", "ExecutorTokens", "InvalidToken", "claims_mismatch",
           "load_secret_key"]


class InvalidToken(Exception):
    """A Bearer token that is not one of ours (the text is the 401's error_description)."""


def load_secret_key(path: str, flag: str = "jwt_secret_key") -> bytes:
    """The key file `--jwt_secret_key` names (read whole, as Mesos does; a warning if others
    may read it). ConfigError for a missing or empty file."""
    text = read_path_flag(flag, path)
    if not text:
        raise ConfigError(f"--{flag}: the key file is empty")
    plain = path.removeprefix("file://")
    try:
        if os.stat(plain).st_mode & stat.S_IRWXO:
            log.warning("Permissions on executor secret key file '%s' are too open; it is "
                        "recommended that your key file is NOT accessible by others", plain)
    except OSError:
        pass
    return text.encode()


class ExecutorTokens:
    """Mints and verifies executor tokens with one key."""

    # Verified tokens are remembered (they do not expire and name one container): checking a
    # signature costs ~30 µs of CPU, a status update should not pay it every time.
    CACHE_SIZE = 4096

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._verified: dict[str, dict[str, str]] = {}

    def __repr__(self) -> str:  # never show the key
        return "ExecutorTokens(<key>)"

    def mint(self, framework_id: str, executor_id: str, container_id: str) -> str:
        claims = {"fid": framework_id, "eid": executor_id, "cid": container_id}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> dict[str, str]:
        cached = self._verified.get(token)
        if cached is not None:
            return dict(cached)
        claims = self._verify(token)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))
        self._verified[token] = claims
        return dict(claims)

    def _verify(self, token: str) -> dict[str, str]:
        try:
            payload = jwt.decode(token, self._key, algorithms=[ALGORITHM],
                                 options={"require": [], "verify_aud": False})
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"Invalid JWT: {exc}") from None
        if not isinstance(payload, dict) or not payload:
            raise InvalidToken("JWT claims missing")
        return {str(k): v if isinstance(v, str) else str(v) for k, v in payload.items()}


def claims_mismatch(claims: Mapping[str, str], framework_id: str, executor_id: str,
                    container_id: str) -> str | None:
    """Why a token's claims may not speak for this executor (Mesos's 403 text), or None."""
    shown = "{" + ", ".join(f"{k}: {v}" for k, v in sorted(claims.items())) + "}"
    if claims.get("fid") != framework_id:
        return (f"Authenticated principal '{shown}' does not contain an 'fid' claim with the "
                f"framework ID {framework_id}, which is set in the call")
    if claims.get("eid") != executor_id:
        return (f"Authenticated principal '{shown}' does not contain an 'eid' claim with the "
                f"executor ID {executor_id}, which is set in the call")
    if claims.get("cid") != container_id:
        return (f"Authenticated principal '{shown}' does not contain a 'cid' claim with the "
                f"correct active ContainerID")
    return None
