"""Value arithmetic for one resource: fixed-point scalars, interval ranges and string sets.

Representation (chosen for speed on the allocator's hot path, no msgspec objects):
- SCALAR: an `int` counting thousandths. Mesos keeps scalars as fixed-point numbers with three
  decimal digits, so `0.1 + 0.2 == 0.3` exactly and equality needs no tolerance.
- RANGES: a tuple of `(begin, end)` pairs (inclusive), sorted, with overlapping and adjacent
  intervals merged (`[1-5,6-9]` is `[1-9]`). Always normalised, so `==` is tuple equality.
- SET: a `frozenset[str]`.

Subtraction saturates: taking away more than is there leaves nothing (Mesos never goes
negative; it drops a resource that becomes empty).

`scalar_to_fixed` is the one check of a scalar that comes from outside (wire records, the text
format, SDK quantities): a number, finite, not negative, not so small that it rounds to zero
(Mesos: "value <= 0") and at most `MAX_SCALAR` (2^53 thousandths, the largest count a double
holds exactly, so three decimals survive every float on the wire); totals of one resource in a
collection obey the same bound (`check_total`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import pairwise

from mezzo.core.errors import ValidationError

Interval = tuple[int, int]
RangesValue = tuple[Interval, ...]
Value = int | RangesValue | frozenset[str]

SCALAR = 0
RANGES = 1
SET = 2
KIND_NAMES = ("SCALAR", "RANGES", "SET")

#: Fixed-point factor: scalars are kept in thousandths.
SCALE = 1000
_MAX_RANGE_VALUE = 2**64 - 1


#: Largest scalar, in thousandths (see the module docstring).
MAX_SCALAR_FIXED = 2**53
MAX_SCALAR = MAX_SCALAR_FIXED / SCALE


def scalar_to_fixed(value: float) -> int:
    """Convert a scalar from outside to thousandths, rounding to nearest as Mesos does;
    ValidationError if it is not a usable amount (see the module docstring)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"scalar value must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValidationError(f"scalar value must be finite, not {value}")
    if value < 0:
        raise ValidationError(f"negative value {value}")
    if value > MAX_SCALAR:
        raise ValidationError(f"value {value} is too large (at most {format_scalar(MAX_SCALAR_FIXED)})")
    fixed = round(value * SCALE)
    if fixed == 0 and value != 0:
        raise ValidationError(f"value {value} rounds to 0 (scalars keep three decimals)")
    return fixed


def check_total(fixed: int, what: str) -> None:
    """A sum of scalars (thousandths) obeys the bound of a single one."""
    if fixed > MAX_SCALAR_FIXED:
        raise ValidationError(
            f"{what}: total {format_scalar(fixed)} is too large (at most {format_scalar(MAX_SCALAR_FIXED)})"
        )


def format_scalar(fixed: int) -> str:
    """`4000 -> "4"`, `500 -> "0.5"`, `1234 -> "1.234"` (text format and str())."""
    whole, frac = divmod(abs(fixed), SCALE)
    sign = "-" if fixed < 0 else ""
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:03d}".rstrip("0")


# --------------------------------------------------------------------------- ranges


def normalize_ranges(intervals: Iterable[Interval]) -> RangesValue:
    """Sort and merge overlapping or adjacent intervals; drop nothing else (inputs are valid)."""
    items = sorted(intervals)
    if len(items) <= 1:
        return tuple(items)
    out: list[Interval] = []
    cur_b, cur_e = items[0]
    for b, e in items[1:]:
        if b <= cur_e + 1:
            if e > cur_e:
                cur_e = e
        else:
            out.append((cur_b, cur_e))
            cur_b, cur_e = b, e
    out.append((cur_b, cur_e))
    return tuple(out)


def check_ranges(intervals: Iterable[Interval], *, what: str = "ranges") -> RangesValue:
    """Validate raw intervals (begin <= end, within uint64, no overlaps) and normalise them.

    Adjacent intervals (`[1-5,6-10]`) are fine and merge; overlapping ones are rejected as
    Mesos' resource validation does, because they usually reveal a typo in a flag.
    """
    items = sorted(intervals)
    for b, e in items:
        if (
            isinstance(b, bool)
            or isinstance(e, bool)
            or not isinstance(b, int)
            or not isinstance(e, int)
        ):
            raise ValidationError(f"invalid {what}: bounds must be integers")
        if b < 0 or e > _MAX_RANGE_VALUE:
            raise ValidationError(f"invalid {what}: [{b}-{e}] is outside 0..2^64-1")
        if b > e:
            raise ValidationError(f"invalid {what}: begin {b} is greater than end {e}")
    for (b1, e1), (b2, e2) in pairwise(items):
        if b2 <= e1:
            raise ValidationError(f"invalid {what}: [{b1}-{e1}] and [{b2}-{e2}] overlap")
    return normalize_ranges(items)


def ranges_add(a: RangesValue, b: RangesValue) -> RangesValue:
    if not a:
        return b
    if not b:
        return a
    return normalize_ranges(a + b)


def ranges_sub(a: RangesValue, b: RangesValue) -> RangesValue:
    """Interval difference `a - b`; both normalised. Splits intervals where `b` cuts them."""
    if not a or not b:
        return a
    out: list[Interval] = []
    j = 0
    nb = len(b)
    for lo, hi in a:
        # Skip subtrahend intervals entirely below this one.
        while j < nb and b[j][1] < lo:
            j += 1
        k = j
        cur = lo
        while k < nb and b[k][0] <= hi:
            sb, se = b[k]
            if sb > cur:
                out.append((cur, sb - 1))
            if se + 1 > cur:
                cur = se + 1
            if cur > hi:
                break
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


def ranges_contains(a: RangesValue, b: RangesValue) -> bool:
    """True when every interval of `b` lies within one interval of `a` (both normalised)."""
    if not b:
        return True
    i = 0
    na = len(a)
    for lo, hi in b:
        while i < na and a[i][1] < lo:
            i += 1
        if i == na or a[i][0] > lo or a[i][1] < hi:
            return False
    return True


def ranges_count(a: RangesValue) -> int:
    return sum(e - b + 1 for b, e in a)


def format_ranges(a: RangesValue) -> str:
    return "[" + ",".join(f"{b}-{e}" for b, e in a) + "]"


# --------------------------------------------------------------------------- generic


def kind_of(value: Value) -> int:
    if type(value) is int:
        return SCALAR
    if type(value) is tuple:
        return RANGES
    return SET


def add(a: Value, b: Value) -> Value:
    if type(a) is int:
        return a + b  # type: ignore[operator]
    if type(a) is tuple:
        return ranges_add(a, b)  # type: ignore[arg-type]
    return a | b  # type: ignore[operator]


def sub(a: Value, b: Value) -> Value:
    """`a - b`, saturating at empty (0 for scalars)."""
    if type(a) is int:
        d = a - b  # type: ignore[operator]
        return d if d > 0 else 0
    if type(a) is tuple:
        return ranges_sub(a, b)  # type: ignore[arg-type]
    return a - b  # type: ignore[operator]


def contains(a: Value, b: Value) -> bool:
    if type(a) is int:
        return a >= b  # type: ignore[operator]
    if type(a) is tuple:
        return ranges_contains(a, b)  # type: ignore[arg-type]
    return a >= b  # type: ignore[operator]


def is_empty(value: Value) -> bool:
    if type(value) is int:
        return value <= 0
    return not value


def quantity(value: Value) -> float:
    """The number the sorter sees: the scalar, or how many range values / set items."""
    if isinstance(value, int):
        return value / SCALE
    if isinstance(value, tuple):
        return float(ranges_count(value))
    return float(len(value))


def format_value(value: Value) -> str:
    if isinstance(value, int):
        return format_scalar(value)
    if isinstance(value, tuple):
        return format_ranges(value)
    return "{" + ",".join(sorted(value)) + "}"
