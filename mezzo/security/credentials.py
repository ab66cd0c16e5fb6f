"""Credentials files in Mesos's two formats (docs/authentication.md, `--credentials`,
`--credential`):

- JSON: `{"credentials": [{"principal": "sherman", "secret": "kitesurf"}, ...]}`;
- text: one `principal secret` pair per line (whitespace separated; blank lines skipped).

A path may be given as `file:///path` or `/path`. Any problem (missing file, bad JSON, a
line without a secret, an empty principal) is a one-line `ConfigError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mezzo.core.errors import ConfigError

__all__ = ["Credential", "load_credential", "load_credentials", "read_path_flag"]


@dataclass(frozen=True)
class Credential:
    principal: str
    # Kept out of repr so that a logged credential never shows its secret.
    secret: str = ""

    def __repr__(self) -> str:
        return f"Credential(principal={self.principal!r})"


def read_path_flag(flag: str, value: str) -> str:
    """The text of the file a path flag names (`file://` prefix allowed)."""
    path = value[len("file://"):] if value.startswith("file://") else value
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"--{flag}: cannot read {path}: {exc.strerror or exc}") from None


def parse_credentials(text: str, *, source: str = "credentials") -> list[Credential]:
    """Credentials from the text of a file in either format."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except ValueError as exc:
            raise ConfigError(f"{source}: invalid JSON: {exc}") from None
        entries = doc.get("credentials") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise ConfigError(f"{source}: expected {{\"credentials\": [...]}}")
        out = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("principal"), str):
                raise ConfigError(f"{source}: every credential needs a string 'principal'")
            secret = entry.get("secret", "")
            if not isinstance(secret, str):
                raise ConfigError(f"{source}: the secret of {entry['principal']!r} must be a string")
            out.append(_checked(Credential(entry["principal"], secret), source))
        return out
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ConfigError(f"{source}: line {number}: expected 'principal secret'")
        out.append(_checked(Credential(fields[0], fields[1]), source))
    return out


def _checked(credential: Credential, source: str) -> Credential:
    if not credential.principal or ":" in credential.principal:
        # HTTP Basic separates principal from secret with the first ':'.
        raise ConfigError(f"{source}: invalid principal {credential.principal!r} (empty or with ':')")
    return credential


def load_credentials(value: str, flag: str = "credentials") -> dict[str, str]:
    """The master's `--credentials`: principal -> secret."""
    creds = parse_credentials(read_path_flag(flag, value), source=f"--{flag}")
    return {c.principal: c.secret for c in creds}


def load_credential(value: str, flag: str = "credential") -> Credential:
    """An agent's (or a client's) `--credential`: exactly one credential."""
    creds = parse_credentials(read_path_flag(flag, value), source=f"--{flag}")
    if len(creds) != 1:
        raise ConfigError(f"--{flag}: expected exactly one credential, found {len(creds)}")
    return creds[0]
