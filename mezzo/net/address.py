"""Master addresses: a `--master` string or a redirect `Location` → the base URL of a master.

Pure string handling with no I/O and only the standard library, so that short-lived clients
(the `mezzo` CLI) can use it without importing an HTTP stack; `mezzo.scheduler.leader`
re-exports both functions for the SDK.
"""

from __future__ import annotations

import os

from mezzo.core.errors import ConfigError

DEFAULT_MASTER_PORT = 5050
# What `split_url` reads itself: host names and IP addresses (IPv6 between brackets).
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")


def split_url(url: str) -> tuple[str, str, int | None, str]:
    """(scheme, host, port, path with its query) of a URL, as `urllib.parse.urlsplit` reads
    them: the host lower-cased and without brackets ("" if none), the port None when absent
    (ValueError, urlsplit's, for one that is not a number from 0 to 65535), the path as given
    (maybe ""). The plain cases — `http(s)://host[:port][/path][?query]` with a host name or an
    IP address — are read here; anything else (user info, a fragment, odd characters) by
    urlsplit itself, imported only then: it costs a short-lived client (the CLI) several ms of
    start-up on a slow machine."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("http", "https") and "#" not in rest and "@" not in rest \
            and all(" " < ch < "\x7f" for ch in url):
        cut = len(rest)
        for mark in "/?":
            at = rest.find(mark)
            if 0 <= at < cut:
                cut = at
        netloc, tail = rest[:cut], rest[cut:]
        host: str | None = None
        port_text: str | None = None
        if netloc.startswith("["):
            end = netloc.find("]")
            after = netloc[end + 1:] if end > 0 else "x"
            if end > 0 and set(netloc[1:end]) <= _IPV6_CHARS and (not after or after[0] == ":"):
                host, port_text = netloc[1:end], after[1:]
        elif netloc.count(":") <= 1:
            name, _, port_text = netloc.partition(":")
            if set(name) <= _NAME_CHARS:
                host = name
        if host is not None and (not port_text or (port_text.isdigit() and int(port_text) <= 65535)):
            return scheme, host.lower(), int(port_text) if port_text else None, tail
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port  # ValueError for a bad one
    tail = parts.path + ("?" + parts.query if parts.query else "")
    return parts.scheme, parts.hostname or "", port, tail


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
    try:
        scheme, host, port, _ = split_url(text)
    except ValueError as exc:  # a non-numeric port, an unclosed IPv6 bracket
        raise ConfigError(f"bad master address {text!r}: {exc}") from None
    if scheme not in ("http", "https"):
        raise ConfigError(f"unsupported master URL scheme {scheme!r} in {text!r}")
    if not host:
        raise ConfigError(f"bad master address {text!r}: no host")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or DEFAULT_MASTER_PORT}"


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
