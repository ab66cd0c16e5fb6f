"""The exception hierarchy of mezzo, drawn once here.

    MezzoError
    ├── ValidationError      bad input from a client (HTTP 400, CLI one-line error)
    │   └── DecodeError      malformed wire data (JSON, RecordIO, field types); names the field
    │       └── JSONSyntaxError  not JSON at all (syntax, UTF-8, trailing data, nesting too deep)
    ├── ConfigError          bad flags or configuration (CLI one-line error, exit 2)
    ├── NotFoundError        an id that names nothing the component knows
    └── CallRefused          a decision core refusing a call before any state changed (the
                             HTTP status and a one-line message the shell answers with)
"""

from __future__ import annotations


class MezzoError(Exception):
    """Base class of every error mezzo raises on purpose."""


class ValidationError(MezzoError):
    """A request or value that breaks the rules; the message says which rule."""


class DecodeError(ValidationError):
    """Wire data that cannot be decoded; the message names the field and the problem."""


class JSONSyntaxError(DecodeError):
    """Bytes that are not one well-formed JSON value (before any field is looked at)."""


class ConfigError(MezzoError):
    """A flag or configuration value that cannot be used."""


class NotFoundError(MezzoError):
    """An id that names nothing known."""


class CallRefused(MezzoError):
    """A call refused before any state changed: HTTP status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
