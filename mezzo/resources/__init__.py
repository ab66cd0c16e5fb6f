"""The Resources value type: scalars, ranges, sets; roles and reservations; parsing.

Public API:
- `Resources` — immutable collection with `+`, saturating `-`, `contains`/`<=`, filters,
  allocation tagging, quantities, text/JSON parsing and wire conversion.
- `ResourceItem`, `ResourceKey`, `Reservation` — a single resource and its identity.
- `validate(list[api Resource])` — the master's launch-time checks.
- `validate_role`, `is_valid_role`, `ancestors`, `is_ancestor` — role names and hierarchy.
"""

from mezzo.resources.keys import DYNAMIC, STATIC, Reservation, ResourceItem, ResourceKey
from mezzo.resources.resources import EMPTY, Resources
from mezzo.resources.roles import (
    DEFAULT_ROLE,
    ancestors,
    is_ancestor,
    is_self_or_ancestor,
    is_valid_role,
    role_error,
    self_and_ancestors,
    validate_role,
)
from mezzo.resources.values import RANGES, SCALAR, SET
from mezzo.resources.wire import validate

__all__ = [
    "DEFAULT_ROLE",
    "DYNAMIC",
    "EMPTY",
    "RANGES",
    "SCALAR",
    "SET",
    "STATIC",
    "Reservation",
    "ResourceItem",
    "ResourceKey",
    "Resources",
    "ancestors",
    "is_ancestor",
    "is_self_or_ancestor",
    "is_valid_role",
    "role_error",
    "self_and_ancestors",
    "validate",
    "validate_role",
]
