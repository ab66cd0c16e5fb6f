"""RecordIO framing of the v1 event streams (spec §2.2): `<decimal byte length>\\n<payload>`.

Owns the byte-level framing only: records are opaque bytes here (JSON goes through
`mezzo.api.codec`). The length counts bytes, is never 0, and nothing separates records, so a
stream is `20\\n{"type":"HEARTBEAT"}20\\n{"type":"HEARTBEAT"}`. Chunk boundaries of the transport
mean nothing: `RecordIODecoder` accepts any split of the stream.
"""

from __future__ import annotations

from mezzo.core.errors import DecodeError

DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024

# Longest length prefix we wait for before judging it: enough digits for any allowed size.
_MAX_PREFIX_DIGITS = 20


def encode_record(payload: bytes) -> bytes:
    """Frame one record; the payload must not be empty (length 0 is not a valid record)."""
    if not payload:
        raise ValueError("a RecordIO record cannot be empty")
    return b"%d\n%b" % (len(payload), payload)


class RecordIODecoder:
    """Incremental decoder: feed it whatever the transport delivers, get whole records back.

    After a DecodeError the stream is unusable (the framing is lost); callers drop the
    connection.
    """

    def __init__(self, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self._max = max_record_bytes
        self._buffer = bytearray()
        self._pending: int | None = None  # length of the record being read, once known

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes from the stream; return the records they complete, in order."""
        self._buffer += data
        records: list[bytes] = []
        while True:
            if self._pending is None:
                newline = self._buffer.find(b"\n")
                if newline < 0:
                    self._check_prefix(
                        bytes(self._buffer[: _MAX_PREFIX_DIGITS + 1]), complete=False
                    )
                    break
                self._pending = self._check_prefix(bytes(self._buffer[:newline]), complete=True)
                del self._buffer[: newline + 1]
            if len(self._buffer) < self._pending:
                break
            records.append(bytes(self._buffer[: self._pending]))
            del self._buffer[: self._pending]
            self._pending = None
        return records

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a record."""
        return len(self._buffer)

    @property
    def mid_record(self) -> bool:
        """Whether the stream stopped inside a record (or its length prefix): a stream that
        ends now is truncated, even right after a prefix whose payload never came."""
        return bool(self._buffer) or self._pending is not None

    def _check_prefix(self, prefix: bytes, *, complete: bool) -> int:
        # Fail as early as possible: a non-digit or an over-long prefix is wrong even before
        # its newline arrives.
        if prefix and not prefix.isdigit():
            raise DecodeError(f"invalid RecordIO length {_show(prefix)}: not a decimal number")
        if len(prefix) > _MAX_PREFIX_DIGITS or (prefix and int(prefix) > self._max):
            raise DecodeError(
                f"invalid RecordIO length {_show(prefix)}: larger than {self._max} bytes"
            )
        if not complete:
            return 0
        if not prefix:
            raise DecodeError("invalid RecordIO length '': empty")
        length = int(prefix)
        if length == 0:
            raise DecodeError("invalid RecordIO length '0': records are never empty")
        return length


def _show(prefix: bytes) -> str:
    return repr(prefix[:32].decode("latin-1"))
