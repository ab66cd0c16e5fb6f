"""Role names: validation (spec §3.3) and the role hierarchy.

A role is `*` (the default, unreserved role) or a `/`-separated path such as `eng/web`; each
path component is a non-empty name that is not `.`, `..` or `*`, does not start with `-`, and
holds no whitespace, control characters or backslash. `eng` is an ancestor of `eng/web`.
"""

from __future__ import annotations

from functools import lru_cache

from mezzo.core.errors import ValidationError

DEFAULT_ROLE = "*"

_FORBIDDEN_COMPONENTS = frozenset({".", "..", "*"})


def role_error(name: str) -> str | None:
    """The reason `name` is not a valid role, or None when it is valid."""
    if name == DEFAULT_ROLE:
        return None
    if not name:
        return "role name must not be empty"
    if name.startswith("/") or name.endswith("/"):
        return f"role '{name}' must not start or end with '/'"
    for ch in name:
        if ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\":
            return f"role '{name}' must not contain whitespace, control characters or '\\'"
    for component in name.split("/"):
        if not component:
            return f"role '{name}' must not contain '//'"
        if component in _FORBIDDEN_COMPONENTS:
            return f"role '{name}' must not have a component '{component}'"
        if component.startswith("-"):
            return f"role '{name}' has a component starting with '-'"
    return None


@lru_cache(maxsize=4096)
def _is_valid(name: str) -> bool:
    # Role names repeat endlessly on the hot paths (offers, reservations); remember verdicts.
    return role_error(name) is None


def is_valid_role(name: str) -> bool:
    return _is_valid(name)


def validate_role(name: str) -> str:
    """Return `name` if it is a valid role name, else raise ValidationError saying why."""
    if not isinstance(name, str):
        raise ValidationError(f"role must be a string, not {type(name).__name__}")
    if _is_valid(name):
        return name
    raise ValidationError(f"invalid role: {role_error(name)}")


@lru_cache(maxsize=4096)
def _ancestors(role: str) -> tuple[str, ...]:
    out: list[str] = []
    idx = role.rfind("/")
    while idx > 0:
        role = role[:idx]
        out.append(role)
        idx = role.rfind("/")
    return tuple(out)


def ancestors(role: str) -> list[str]:
    """Strict ancestors of `role`, nearest first: `ancestors("a/b/c") == ["a/b", "a"]`."""
    return list(_ancestors(role))


def is_ancestor(ancestor: str, role: str) -> bool:
    """True when `ancestor` is a strict ancestor of `role` (`is_ancestor("eng", "eng/web")`)."""
    return len(role) > len(ancestor) and role.startswith(ancestor) and role[len(ancestor)] == "/"


def is_self_or_ancestor(candidate: str, role: str) -> bool:
    return candidate == role or is_ancestor(candidate, role)


def self_and_ancestors(role: str) -> frozenset[str]:
    """`role` plus its strict ancestors: the reservation roles whose resources `role` may use."""
    return frozenset((role, *_ancestors(role)))
