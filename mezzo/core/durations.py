"""Mesos duration strings: `5secs`, `10mins`, `500ms`, `1.5hrs`, `2days`, `1weeks`, `100ns`."""

from __future__ import annotations

import re

from mezzo.core.errors import ConfigError

_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "secs": 1.0,
    "mins": 60.0,
    "hrs": 3600.0,
    "days": 86400.0,
    "weeks": 604800.0,
}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]+)\s*$")


def parse_duration(text: str) -> float:
    """Parse a Mesos duration into seconds; raise ConfigError naming the problem."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"invalid duration {text!r}: expected a number and a unit, e.g. 5secs")
    number, unit = match.groups()
    if unit not in _UNITS:
        units = ", ".join(_UNITS)
        raise ConfigError(f"invalid duration {text!r}: unknown unit {unit!r} (use one of {units})")
    return float(number) * _UNITS[unit]


def format_duration(seconds: float) -> str:
    """Format seconds the way Mesos prints durations (largest unit that divides evenly)."""
    if seconds == 0:
        return "0ns"
    for unit in ("weeks", "days", "hrs", "mins", "secs", "ms", "us", "ns"):
        factor = _UNITS[unit]
        value = seconds / factor
        if value >= 1 and abs(value - round(value)) < 1e-9:
            return f"{round(value)}{unit}"
    return f"{seconds:g}secs"
