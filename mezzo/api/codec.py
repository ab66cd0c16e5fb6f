"""The one JSON codec of mezzo: wire records <-> JSON bytes, with Mesos' leniency.

Every component encodes and decodes v1 JSON through this module, so the leniency rules and the
error messages are the same everywhere. Decoding follows stout's JSON -> protobuf mapping
(spec §3.1):

- numbers and bools may arrive as JSON strings (`"5"`, `"true"`); doubles may be `"Infinity"`
  or `"-Infinity"`;
- unknown fields are ignored; `null` means "unset" (also for lists and required fields, which
  then fail as missing);
- a bare value where a repeated field is expected counts as a one-element list, except a
  string: `"roles": "eng"` is refused (issue 9: a string is too easily meant as the list it
  spells, `"a,b"`, to be taken silently);
- enums travel as names: a JSON number is an error; an unknown name unsets an optional field
  and is an error for a required one;
- bytes are standard base64 (bad base64 is an error).

Hostile input: text that is not one JSON value (bad syntax, bad UTF-8 anywhere, even in the name
of a field that would be ignored, trailing data, truncation)
or that nests arrays/objects deeper than `MAX_DEPTH` (100, the limit of the picojson parser
Mesos uses) raises `JSONSyntaxError`, a `DecodeError`; nothing deeper ever reaches a record,
so no later encode of it can overflow the stack.

Speed: the common case (well-formed input) is one call into a cached, typed msgspec decoder in
non-strict mode, which already covers the string -> number/bool rules. Only when that fails do
we decode to builtins, repair what stout would accept (null, bare values, unknown optional enum
names) and convert again; anything left is reported as `DecodeError` with the field path, e.g.
`invalid field $.accept.offer_ids[0].value: expected str, got int`.
"""

from __future__ import annotations

import copy
import re
from typing import Any, TypeVar

import msgspec

from mezzo.core.errors import DecodeError, JSONSyntaxError

T = TypeVar("T")

__all__ = ["MAX_DEPTH", "DecodeError", "JSONSyntaxError", "convert", "decode", "encode", "to_builtins"]

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}

# Bound on repairs per message: each repair removes or wraps one value, so real inputs need few;
# the bound only guards against a repair loop.
_MAX_REPAIRS = 256

# Deepest nesting of arrays/objects accepted (picojson's DEFAULT_MAX_DEPTHS, as in Mesos).
MAX_DEPTH = 100
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_SKELETON = bytes.maketrans(b"{}", b"[]")
_TOO_MANY_OPENERS = b"[" * (MAX_DEPTH + 1)

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]*)`$")
_PATH_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def encode(msg: Any) -> bytes:
    """Compact JSON of a wire record (or of builtins); proto defaults are already filled."""
    return _encoder.encode(msg)


def to_builtins(msg: Any) -> Any:
    """The record as JSON-ready builtins (dicts, lists, str; bytes as base64, enums as names)."""
    return msgspec.to_builtins(msg)


def decode(data: bytes | str, type_: type[T]) -> T:
    """Decode JSON `data` into `type_`, leniently (see the module docstring)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if not raw.isascii():
        # msgspec checks UTF-8 only in what it keeps: not in the names of unknown fields.
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONSyntaxError(f"not JSON: invalid UTF-8 at byte {exc.start}") from None
    if _too_deep(raw):
        raise JSONSyntaxError(f"not JSON: nested deeper than {MAX_DEPTH} levels")
    decoder: msgspec.json.Decoder[T] | None = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_, strict=False)
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError:
        pass  # maybe something stout accepts; take the slow path below
    except msgspec.DecodeError as exc:
        raise _syntax_error(exc) from None
    try:
        parsed = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        # The typed decoder stopped at a field error before it saw the bad syntax.
        raise _syntax_error(exc) from None
    return _convert_repairing(parsed, type_)


def _syntax_error(exc: msgspec.DecodeError) -> JSONSyntaxError:
    detail = str(exc).removeprefix("JSON is malformed: ")
    return JSONSyntaxError(f"not JSON: {_lower_first(detail)}")


def _too_deep(data: bytes) -> bool:
    """True if arrays/objects nest deeper than MAX_DEPTH (brackets inside strings don't
    count), with C-speed bytes operations only (bench/request_decoding.py):

    - escapes out (escaped backslashes first, then escaped quotes; a backslash left escapes
      neither), then a skeleton of quotes and brackets, `{}` written as `[]` (valid JSON pairs
      them alike; invalid JSON fails in the parser anyway);
    - depth cannot exceed the number of opening brackets: most bodies stop there;
    - if every string of the skeleton is `""` (no brackets inside strings: its `""` pairs
      account for all quotes), quotes go; otherwise the string contents are cut out;
    - 101 openers in a row are too deep at once; else innermost pairs are removed one level
      per pass."""
    if len(data) <= 4096 and data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return False  # the common small call: two counts
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = data.translate(_SKELETON, _NOT_STRUCTURE)
    if skeleton.count(b"[") <= MAX_DEPTH:
        return False
    if skeleton.count(b'""') * 2 == skeleton.count(b'"'):
        skeleton = skeleton.translate(None, b'"')
    else:
        skeleton = b"".join(skeleton.split(b'"')[::2])
    if _TOO_MANY_OPENERS in skeleton:
        return True
    for level in range(MAX_DEPTH):
        if not skeleton:
            return False
        reduced = skeleton.replace(b"[]", b"")
        if len(reduced) == len(skeleton):
            # No pair left: `]...][...[`, not JSON. The parser stops at the first unmatched
            # `]`, nested at most `level` deep; only openers alone could take it deeper.
            return reduced[:1] == b"[" and level + len(reduced) > MAX_DEPTH
        skeleton = reduced
    return bool(skeleton)


def convert(obj: Any, type_: type[T]) -> T:
    """Convert builtins (e.g. parsed JSON) into `type_` with the same leniency as `decode`.

    `obj` is not modified; repairs are made on a copy.
    """
    try:
        return msgspec.convert(obj, type_, strict=False)
    except msgspec.ValidationError:
        pass
    return _convert_repairing(copy.deepcopy(obj), type_)


def _convert_repairing(obj: Any, type_: type[T]) -> T:
    """Convert `obj` (owned: it is repaired in place) or raise a DecodeError naming the field."""
    for _ in range(_MAX_REPAIRS):
        try:
            return msgspec.convert(obj, type_, strict=False)
        except msgspec.ValidationError as exc:
            error = exc
        message, path = _split(str(error))
        if path is None or not _repair(obj, type_, message, path):
            raise DecodeError(_describe(message, path)) from None
    raise DecodeError(_describe(message, path))


def _repair(root: Any, type_: Any, message: str, path: str) -> bool:
    """Apply the one stout leniency that explains this error; False if none does."""
    steps = _parse_path(path)
    if steps is None or not steps:
        return False
    parent = _follow(root, steps[:-1])
    last = steps[-1]
    if parent is None:
        return False
    value = parent[last]
    if value is None and isinstance(parent, dict):
        del parent[last]  # null = unset
        return True
    if message.startswith("Expected `array`") and not isinstance(value, list | str):
        parent[last] = [value]  # bare value for a repeated field
        return True
    if message.startswith("Invalid enum value") and isinstance(parent, dict) and isinstance(last, str):
        # Unknown enum name: unset the field, unless the field is required (then the original
        # error stands; detected by converting again without it).
        del parent[last]
        try:
            msgspec.convert(root, type_, strict=False)
        except msgspec.ValidationError as exc:
            retry_message, retry_path = _split(str(exc))
            missing = _MISSING.match(retry_message)
            parent_path = path[: -len(last) - 1]
            if missing and missing["field"] == last and (retry_path or "$") == parent_path:
                parent[last] = value
                return False
        return True
    return False


def _parse_path(path: str) -> list[str | int] | None:
    steps: list[str | int] = []
    rest = path[1:]  # drop "$"
    pos = 0
    while pos < len(rest):
        m = _PATH_TOKEN.match(rest, pos)
        if m is None:
            return None  # e.g. `[...]` for a map value: cannot navigate
        steps.append(m[1] if m[1] is not None else int(m[2]))
        pos = m.end()
    return steps


def _follow(root: Any, steps: list[str | int]) -> Any:
    node = root
    for step in steps:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    return node if isinstance(node, dict | list) else None


def _split(text: str) -> tuple[str, str | None]:
    m = _AT.match(text)
    assert m is not None  # the pattern matches any string
    return m["msg"], m["path"]


def _describe(message: str, path: str | None) -> str:
    """One line for the client: what is wrong, and where."""
    where = path or "$"
    missing = _MISSING.match(message)
    if missing:
        return f"missing required field {where}.{missing['field']}"
    text = _lower_first(message.replace("`", "").replace(" | null", ""))
    return f"invalid field {where}: {text}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
