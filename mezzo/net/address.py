"""Master addresses: a `--master` string or a redirect `Location` → the base URL of a master.

Pure string handling with no I/O and only the standard library, so that short-lived clients
(the `mezzo` CLI) can use it without importing an HTTP stack; `mezzo.scheduler.leader`
re-exports both functions for the SDK.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from mezzo.core.errors import ConfigError

DEFAULT_MASTER_PORT = 5050


def default_scheme() -> str:
    """`https` when this process speaks TLS (`LIBPROCESS_SSL_ENABLED`, as Mesos's libprocess
    decides for all its connections), else `http`."""
    enabled = os.environ.get("LIBPROCESS_SSL_ENABLED", "").strip().lower()
    return "https" if enabled in ("1", "true", "yes") else "http"


def parse_master_address(text: str, default: str | None = None) -> str:
    """`host`, `host:port` or `http(s)://host:port[/...]` → base URL `http://host:port` (the
    scheme given, else `default`, else `default_scheme()`).

    A `zk://` URL names no single master: it is checked and returned as is, so that callers
    normalising a `--master` flag can hand it on to `SchedulerClient` (which follows the
    leader advertised there)."""
    text = text.strip()
    if not text:
        raise ConfigError("empty master address")
    if text.startswith("zk://"):
        # Imported here: it imports dataclasses (and with it inspect), which `mezzo run` against
        # a host:port would otherwise pay for at start-up.
        from mezzo.core.zkurl import parse_zk_url

        parse_zk_url(text)
        return text
    scheme = default or default_scheme()
    if text.startswith("//"):
        text = scheme + ":" + text
    if "://" not in text:
        text = scheme + "://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"unsupported master URL scheme {parts.scheme!r} in {text!r}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a non-numeric port
        raise ConfigError(f"bad master address {text!r}: {exc}") from None
    if not host:
        raise ConfigError(f"bad master address {text!r}: no host")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port or DEFAULT_MASTER_PORT}"


def base_from_location(location: str, current: str | None = None) -> str:
    """The base URL named by a redirect `Location` (`//host:port/path`, protocol-relative in
    Mesos, or absolute). A relative path keeps the current master."""
    if location.startswith("/") and not location.startswith("//"):
        if current is None:
            raise ConfigError(f"relative redirect {location!r} without a current master")
        return current
    # Mesos's Location is protocol-relative (`//host:port/...`): keep the current scheme.
    scheme = current.split("://", 1)[0] if current and "://" in current else None
    return parse_master_address(location, scheme)
