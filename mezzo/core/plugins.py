"""Loads a plug-in class named by an import path (`package.module:Class` or
`package.module.Class`), as the allocator and authorizer flags name theirs."""

from __future__ import annotations

import importlib

from mezzo.core.errors import ConfigError

__all__ = ["load_class"]


def load_class(path: str, base: type, what: str) -> type:
    """The subclass of `base` that `path` names; a one-line ConfigError (naming `what`)
    otherwise."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{what} {path!r} is neither a known name nor 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {what} module {module_name!r}: {exc}") from exc
    try:
        found = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no {what} {attr!r}") from None
    if not isinstance(found, type) or not issubclass(found, base):
        raise ConfigError(f"{path!r} is not an {base.__name__} subclass")
    return found
