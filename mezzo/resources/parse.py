"""The Mesos `--resources` text format and its JSON alternative (spec §9.3), and printing.

Text grammar: `name[(role)]:value` separated by `;`, where value is a scalar (`4`, `0.5`),
ranges (`[31000-32000]`, `[1-10,20-30]`) or a set (`{a,b,c}`). A role in parentheses is a
static reservation; `*` (or no role with the default `default_role="*"`) is unreserved.
A string starting with `[` is instead a JSON array of Resource objects.

`format_items` prints the text format; resources the grammar cannot express (dynamic
reservations, allocation, disk info, revocable, shared) are printed the way Mesos logs them,
e.g. `cpus(reservations: [(DYNAMIC,eng,alice)])(allocated: eng){REV}:4` — readable, not parseable.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from mezzo.api import common as api
from mezzo.core.errors import ValidationError
from mezzo.resources import values
from mezzo.resources.disk import as_disk_key
from mezzo.resources.keys import STATIC, Reservation, ResourceItem, ResourceKey
from mezzo.resources.roles import DEFAULT_ROLE, role_error
from mezzo.resources.wire import items_from_wire

_JSON_DECODER = msgspec.json.Decoder(list[api.Resource])


def _bad(token: str, why: str) -> ValidationError:
    return ValidationError(f"invalid resource '{token}': {why}")


def _parse_int(text: str, token: str) -> int:
    s = text.strip()
    if not s.isdigit():
        raise _bad(token, f"'{s}' is not a non-negative integer")
    return int(s)


def _parse_ranges(text: str, token: str) -> values.RangesValue:
    if not text.endswith("]"):
        raise _bad(token, f"ranges '{text}' must end with ']'")
    inner = text[1:-1].strip()
    if not inner:
        return ()
    intervals: list[tuple[int, int]] = []
    for part in inner.split(","):
        bounds = part.split("-")
        if len(bounds) == 1:
            # Mesos accepts a single value `[80]` meaning `[80-80]`.
            n = _parse_int(bounds[0], token)
            intervals.append((n, n))
        elif len(bounds) == 2:
            intervals.append((_parse_int(bounds[0], token), _parse_int(bounds[1], token)))
        else:
            raise _bad(token, f"'{part.strip()}' is not a range 'begin-end'")
    try:
        return values.check_ranges(intervals)
    except ValidationError as e:
        raise _bad(token, str(e)) from None


def _parse_set(text: str, token: str) -> frozenset[str]:
    if not text.endswith("}"):
        raise _bad(token, f"set '{text}' must end with '}}'")
    inner = text[1:-1].strip()
    if not inner:
        return frozenset()
    items = [s.strip() for s in inner.split(",")]
    if any(not s for s in items):
        raise _bad(token, "empty set item")
    out = frozenset(items)
    if len(out) != len(items):
        raise _bad(token, "duplicate set items")
    return out


def _parse_scalar(text: str, token: str) -> int:
    try:
        v = float(text)
    except ValueError:
        raise _bad(token, f"'{text}' is not a number") from None
    try:
        return values.scalar_to_fixed(v)
    except ValidationError as exc:
        raise _bad(token, str(exc)) from None


def parse_value(text: str, token: str) -> values.Value:
    text = text.strip()
    if not text:
        raise _bad(token, "missing value")
    if text[0] == "[":
        return _parse_ranges(text, token)
    if text[0] == "{":
        return _parse_set(text, token)
    return _parse_scalar(text, token)


def _parse_token(token: str, default_role: str) -> ResourceItem:
    name_part, sep, value_part = token.partition(":")
    if not sep:
        raise _bad(token, "expected 'name:value'")
    name_part = name_part.strip()
    role = default_role
    if "(" in name_part:
        if not name_part.endswith(")"):
            raise _bad(token, "expected 'name(role)'")
        name_part, _, role = name_part[:-1].partition("(")
        name_part = name_part.strip()
        role = role.strip()
        err = role_error(role)
        if err is not None:
            raise _bad(token, err)
    if not name_part:
        raise _bad(token, "missing resource name")
    if any(c in name_part for c in "()[]{};: \t"):
        raise _bad(token, f"bad resource name '{name_part}'")
    value = parse_value(value_part, token)
    if name_part == "gpus" and type(value) is int and value % values.SCALE:
        raise _bad(token, "gpus must be a whole number")
    reservations = () if role == DEFAULT_ROLE else (Reservation(STATIC, role),)
    return ResourceItem(ResourceKey(name_part, values.kind_of(value), reservations), value)


def parse_items(text: str, default_role: str = DEFAULT_ROLE) -> list[ResourceItem]:
    """Parse the text format or a JSON array into resource items (not yet merged)."""
    err = role_error(default_role)
    if err is not None:
        raise ValidationError(f"invalid default role: {err}")
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            decoded = _JSON_DECODER.decode(stripped)
        except msgspec.ValidationError as e:
            raise ValidationError(f"invalid resources JSON: {e}") from None
        except msgspec.DecodeError as e:
            raise ValidationError(f"invalid resources JSON: {e}") from None
        if default_role != DEFAULT_ROLE:
            # As in Mesos, JSON resources without a role take the default role.
            for r in decoded:
                if r.role is None and not r.reservations:
                    r.role = default_role
        return items_from_wire(decoded)
    return [_parse_token(tok.strip(), default_role) for tok in stripped.split(";") if tok.strip()]


def _annotations(key: ResourceKey) -> str:
    res = key.reservations
    out = ""
    if res and not (
        len(res) == 1 and res[0].type == STATIC and not res[0].principal and not res[0].labels
    ):
        entries = []
        for r in res:
            fields = [r.type, r.role]
            if r.principal:
                fields.append(r.principal)
            if r.labels:
                fields.append("{" + ",".join(f"{k}:{v or ''}" for k, v in r.labels) + "}")
            entries.append("(" + ",".join(fields) + ")")
        out += "(reservations: [" + ",".join(entries) + "])"
    elif res:
        out += f"({res[0].role})"
    if key.allocation_role is not None:
        out += f"(allocated: {key.allocation_role})"
    disk = as_disk_key(key.disk)
    if disk is not None:
        out += "[" + disk.describe() + "]"
    if key.shared:
        out += "<SHARED>"
    if key.revocable:
        out += "{REV}"
    if key.provider_id is not None:
        out += f"(provider: {key.provider_id})"
    return out


def format_items(items: Iterable[ResourceItem]) -> str:
    return ";".join(f"{k.name}{_annotations(k)}:{values.format_value(v)}" for k, v in items)
