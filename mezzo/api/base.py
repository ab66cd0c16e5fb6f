"""The base of every wire record.

Conventions (see ../shared/spec/v1-http-api.md §3.1 and docs/architecture.md):
- field names are the proto names (snake_case); unknown fields are ignored when decoding;
- optional fields default to None and are omitted when unset; repeated fields default to an
  empty list and are omitted when empty;
- enums are `StrEnum`s whose values are the proto names, so they travel as strings;
- bytes fields are `bytes` and travel as standard base64.
"""

from __future__ import annotations

import msgspec


class Message(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Base class of every wire record (JSON object)."""
