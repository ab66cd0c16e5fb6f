"""Parsing ``zk://[user:pass@]h1:2181,h2:2181/path`` URLs (the ``--zk`` flag of masters/agents)."""

from __future__ import annotations

from dataclasses import dataclass

from mezzo.core.errors import ConfigError


@dataclass(frozen=True)
class ZkUrl:
    hosts: str  # "h1:2181,h2:2181", as kazoo takes it
    path: str  # absolute, no trailing slash, never "/"
    auth: tuple[str, str] | None = None  # digest credentials

    def __str__(self) -> str:
        cred = f"{self.auth[0]}:{self.auth[1]}@" if self.auth else ""
        return f"zk://{cred}{self.hosts}{self.path}"


def parse_zk_url(url: str) -> ZkUrl:
    """Parse and validate; every malformed form raises ConfigError saying what is wrong."""
    prefix = "zk://"
    if not isinstance(url, str) or not url.startswith(prefix):
        raise ConfigError(
            f"ZooKeeper URL must look like zk://host:port[,host:port]/path, got {url!r}"
        )
    rest = url[len(prefix) :]
    authority, slash, path = rest.partition("/")
    auth: tuple[str, str] | None = None
    if "@" in authority:
        cred, _, authority = authority.rpartition("@")
        user, colon, password = cred.partition(":")
        if not user or not colon:
            raise ConfigError(f"ZooKeeper URL credentials must be user:password@ in {url!r}")
        auth = (user, password)
    if not authority:
        raise ConfigError(f"ZooKeeper URL has no hosts in {url!r}")
    for host in authority.split(","):
        name, colon, port = host.strip().rpartition(":")
        if not host.strip():
            raise ConfigError(f"ZooKeeper URL has an empty host in {url!r}")
        if colon and (not name or not port.isdigit() or not 0 < int(port) < 65536):
            raise ConfigError(f"ZooKeeper URL has a bad host:port {host!r} in {url!r}")
    if not slash or not path.strip("/"):
        raise ConfigError(f"ZooKeeper URL needs a path (e.g. zk://{authority}/mezzo), got {url!r}")
    clean = "/" + path.strip("/")
    if "//" in clean or any(part in (".", "..") for part in clean.split("/")[1:]):
        raise ConfigError(f"ZooKeeper URL has an invalid path {clean!r} in {url!r}")
    return ZkUrl(hosts=",".join(h.strip() for h in authority.split(",")), path=clean, auth=auth)
