"""The base of every wire record, and the rule for proto defaults.

Conventions (see ../shared/spec/v1-http-api.md §3.1 and docs/architecture.md):
- field names are the proto names (snake_case); unknown fields are ignored when decoding;
- optional fields default to None and are omitted when unset; repeated fields default to an
  empty list and are omitted when empty;
- enums are `StrEnum`s whose values are the proto names, so they travel as strings;
- bytes fields are `bytes` and travel as standard base64;
- id records (`FrameworkID`, `TaskID`, ...) derive from `IdMessage`: frozen, hashable, usable
  as dict keys.

Proto defaults (the decision): Mesos emits an unset optional field that has an explicit proto
default *with* that default (`failover_timeout: 0.0`, `shell: true`, `refuse_seconds: 5.0`, ...),
and clients rely on it. A record with such fields derives from `WithProtoDefaults` and lists them
in `__proto_defaults__`; the fields are declared `T | None = None`. `__post_init__`, which msgspec
runs both on construction and on decoding, replaces None by the default. So:

- reading: the attribute *is* the effective value (`command.shell` is True when the client sent
  nothing); no accessor needed;
- emitting: the value differs from the declared default (None), so `omit_defaults` keeps it and
  the default is on the wire, as Mesos does;
- the price: "unset" and "set to the default" are indistinguishable after decoding, which is the
  proto2 semantics Mesos itself applies to these fields.

Assigning None to such a field after construction makes it unset again (omitted on the wire);
`fill_proto_defaults(msg)` restores the defaults of one record.
"""

from __future__ import annotations

from typing import Any, ClassVar, dataclass_transform

import msgspec

from mezzo.core.errors import DecodeError


class _MessageMeta(msgspec.StructMeta):
    # msgspec applies `kw_only` only to the fields of the class that sets it; wire records
    # list required fields after optional ones (proto order), so every subclass needs it.
    def __new__(
        mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any], **kwargs: Any
    ) -> _MessageMeta:
        kwargs.setdefault("kw_only", True)
        return super().__new__(mcls, name, bases, ns, **kwargs)


# Tells the type checker what the metaclass does: subclasses are keyword-only records. mypy's
# dataclass model also forbids a frozen subclass of a non-frozen class, which msgspec allows
# (and the frozen id records need): those class lines carry `type: ignore[misc]`.
@dataclass_transform(kw_only_default=True, field_specifiers=(msgspec.field,))
class Message(msgspec.Struct, metaclass=_MessageMeta, omit_defaults=True):
    """Base class of every wire record (JSON object); fields are keyword-only."""


class IdMessage(Message, frozen=True):  # type: ignore[misc]  # see Message
    """Base of the `{"value": "..."}` id records: immutable and hashable."""

    value: str

    def __str__(self) -> str:
        return self.value


class WithProtoDefaults(Message):
    """A record whose unset fields take proto defaults (see the module docstring)."""

    # field name -> proto default; only immutable values (numbers, bools, strings, enums).
    __proto_defaults__: ClassVar[dict[str, Any]] = {}

    def __post_init__(self) -> None:
        fill_proto_defaults(self)


def fill_proto_defaults(msg: WithProtoDefaults) -> WithProtoDefaults:
    """Set every None field of `msg` named in `__proto_defaults__` to its default; return it."""
    for name, default in msg.__proto_defaults__.items():
        if getattr(msg, name) is None:
            setattr(msg, name, default)
    return msg


def union_payload(
    msg: Any, *, no_payload: frozenset[str] = frozenset(), optional: frozenset[str] = frozenset()
) -> Any:
    """Check the union pattern `{"type": T, "<t lowercased>": {...}}` and return the payload.

    - `type` missing (or an unknown name, which decodes to unset) → DecodeError
      "Expecting 'type' to be present";
    - `type` "UNKNOWN" → returns None; the server answers 501, it is not a malformed message;
    - a type in `no_payload` → None (e.g. HEARTBEAT); a type in `optional` may omit its payload
      (e.g. REVIVE); any other type without its payload → DecodeError.
    """
    type_ = msg.type
    if type_ is None:
        raise DecodeError("Expecting 'type' to be present")
    if type_ == "UNKNOWN" or type_ in no_payload:
        return None
    field = str(type_).lower()
    payload = getattr(msg, field, None)
    if payload is None and type_ not in optional:
        raise DecodeError(f"Expecting '{field}' to be present")
    return payload
