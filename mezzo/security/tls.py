"""TLS for every mezzo server and client, configured as Mesos's libprocess is (docs/ssl.md).

Mesos configures SSL with environment variables, read by every process (master, agent,
executors, schedulers); mezzo reads the same ones, and its daemons also take flags of the same
names without the prefix (a flag wins over the environment):

| environment | flag | meaning |
| --- | --- | --- |
| `LIBPROCESS_SSL_ENABLED` | `--ssl_enabled` | serve HTTPS only, and speak HTTPS to the others |
| `LIBPROCESS_SSL_CERT_FILE` | `--ssl_cert_file` | this process's certificate (PEM), also shown to servers that ask for one |
| `LIBPROCESS_SSL_KEY_FILE` | `--ssl_key_file` | its private key (PEM) |
| `LIBPROCESS_SSL_CA_FILE` | `--ssl_ca_file` | the CA certificates that peers' certificates are checked against (default: the system's) |
| `LIBPROCESS_SSL_CA_DIR` | `--ssl_ca_dir` | a directory of them |
| `LIBPROCESS_SSL_VERIFY_CERT` | `--ssl_verify_cert` | a server checks a client's certificate when one is presented |
| `LIBPROCESS_SSL_REQUIRE_CERT` | `--ssl_require_cert` | a server refuses clients without a valid certificate (implies verify) |

Booleans take `true`/`false` or `1`/`0` as Mesos does. With TLS on, a server needs a
certificate and key (`ConfigError` naming the variable otherwise). Clients always check the
server's certificate and host name against the CA (or the system's trust store): there is no
"don't verify" switch.

`TlsConfig.child_environment()` is what a daemon hands its children (the agent: its executors)
so that they speak TLS to it with the same trust. Nothing here opens a socket: the servers and
clients take `server_context()` / `client_context()`.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mezzo.core.errors import ConfigError
from mezzo.security.tls_flags import TLS_FLAGS

__all__ = ["ENV_PREFIX", "TLS_FLAGS", "TlsConfig", "client_ssl", "process_tls"]

ENV_PREFIX = "LIBPROCESS_SSL_"
_FIELDS = ("enabled", "cert_file", "key_file", "ca_file", "ca_dir", "verify_cert", "require_cert")
_BOOLS = frozenset({"enabled", "verify_cert", "require_cert"})



def _bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise ConfigError(f"{name}: expected true or false, got {text!r}")


@dataclass(frozen=True)
class TlsConfig:
    enabled: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    ca_dir: str | None = None
    verify_cert: bool = False
    require_cert: bool = False

    @classmethod
    def load(cls, flags: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None, *, server: bool = False) -> TlsConfig:
        """From `LIBPROCESS_SSL_*` (default: this process's environment) with `ssl_*` flags
        (raw strings or typed values; None = not given) on top. A `server`'s is validated
        (certificate and key present and loadable); a client needs neither."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in _FIELDS:
            given = (flags or {}).get(f"ssl_{name}")
            where = f"--ssl_{name}"
            if given is None:
                given = env.get(ENV_PREFIX + name.upper())
                where = ENV_PREFIX + name.upper()
            if given is None or given == "":
                continue
            if name in _BOOLS:
                values[name] = given if isinstance(given, bool) else _bool(where, str(given))
            else:
                values[name] = str(given).removeprefix("file://")
        config = cls(**values)
        if server:
            config.validate()
        elif config.ca_file and not Path(config.ca_file).is_file():
            raise ConfigError(f"{ENV_PREFIX}CA_FILE: cannot read {config.ca_file}")
        return config

    def validate(self) -> None:
        if not self.enabled:
            return
        for name, path in (("CERT_FILE", self.cert_file), ("KEY_FILE", self.key_file)):
            if not path:
                raise ConfigError(f"SSL requires a {name.lower().replace('_', ' ')}: set "
                                  f"{ENV_PREFIX}{name} (or --ssl_{name.lower()})")
            if not Path(path).is_file():
                raise ConfigError(f"{ENV_PREFIX}{name}: cannot read {path}")
        if self.ca_file and not Path(self.ca_file).is_file():
            raise ConfigError(f"{ENV_PREFIX}CA_FILE: cannot read {self.ca_file}")
        try:
            self.server_context()
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"SSL: cannot load the certificate, key or CA: {exc}") from None

    @property
    def scheme(self) -> str:
        return "https" if self.enabled else "http"

    def server_context(self) -> ssl.SSLContext:
        """What a server (master, agent) serves with: its certificate; clients' certificates
        checked (`verify_cert`) or required (`require_cert`) against the CA."""
        assert self.cert_file and self.key_file
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.require_cert or self.verify_cert:
            context.verify_mode = ssl.CERT_REQUIRED if self.require_cert else ssl.CERT_OPTIONAL
            if self.ca_file or self.ca_dir:
                context.load_verify_locations(cafile=self.ca_file, capath=self.ca_dir)
            else:
                context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        return context

    def client_context(self) -> ssl.SSLContext:
        """What a client uses: the server checked against the CA (or the system's store) and
        its host name; our certificate shown when we have one (servers that require one)."""
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=self.ca_file, capath=self.ca_dir)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def child_environment(self) -> dict[str, str]:
        """`LIBPROCESS_SSL_*` for a child process (an executor) to speak TLS like us."""
        if not self.enabled:
            return {}
        out = {ENV_PREFIX + "ENABLED": "true"}
        for name in ("cert_file", "key_file", "ca_file", "ca_dir"):
            value = getattr(self, name)
            if value:
                out[ENV_PREFIX + name.upper()] = value
        return out


def process_tls() -> TlsConfig:
    """This process's TLS configuration, from its environment as it is now."""
    return TlsConfig.load()


def client_ssl(config: TlsConfig | None = None) -> ssl.SSLContext | None:
    """The `ssl=` of an aiohttp connector: None (aiohttp's default: verify against the system's
    store) unless a CA or a client certificate is configured."""
    config = config or process_tls()
    if not (config.enabled or config.ca_file or config.ca_dir):
        return None
    return config.client_context()
