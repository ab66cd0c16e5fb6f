"""Seeded generation of hostile HTTP requests from valid ones, and a raw client to send them.

The fuzz test (tests/test_fuzz_http.py) gives `Fuzzer` a corpus of valid calls per endpoint
(`Seed`s, built from the live ids of a real cluster) and draws, from one `random.Random(seed)`,
mutated requests (`FuzzRequest`):

- JSON mutations of the call: a value replaced by one of another type (a list or object for
  `type`, a string for a list...), a field dropped, an unknown field added, numbers huge,
  negative, non-finite (`"Infinity"`, `"NaN"`, `1e308`, 2^64), strings huge or exotic unicode
  (NUL, lone surrogates, right-to-left marks), a value wrapped 150 levels deep, `null`;
- body mutations: truncation, trailing garbage, invalid UTF-8, a byte flipped, a gzip body
  that is not gzip, an encoding nobody supports;
- header mutations: Content-Type missing or wrong, Accept refusing JSON, a wrong or missing
  `Mesos-Stream-Id`, a wrong method;
- framing: bad chunk sizes, a body shorter than its Content-Length (cut short by the client),
  HTTP/1.0;
- for `/files/*`: traversal paths, NUL bytes, over-long names, huge or negative offsets and
  lengths;
- for an agent's virtual paths (`/frameworks/<framework>/executors/<executor>/runs/latest[/...]`
  and `/slave/log`, in a `/files/*` query or a LIST_FILES/READ_FILE `path`): traversal after the
  prefix, a part dropped, an id empty, swapped, very long or with a NUL byte or exotic unicode,
  `latest` replaced, slashes doubled or added (`virtual_path`);
- for streaming requests (a `Seed` with `records`: ATTACH_CONTAINER_INPUT, a chunked
  `application/recordio` body of JSON records): one record mutated as above, RecordIO framing
  broken (a length that is not a number, zero, longer than the record, huge; a missing
  newline), the stream cut short mid-record, records reordered or dropped, the streaming
  headers (`Message-Content-Type`, `Content-Type`) wrong or missing.

Each request says whether the server may drop the connection instead of answering
(`may_drop`: framing it cannot parse). `send` writes the bytes on a fresh loopback connection
and returns what came back (`Outcome`); a streaming 200 (a SUBSCRIBE that survived mutation) is
read up to its headers and closed.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json"

# Exotic strings: NUL, a lone surrogate (escaped, as JSON allows), RTL override, emoji, a
# combining sequence, a very long one, and text that looks like a path or a Mesos list.
_STRINGS = [
    "", " ", "\u0000", "\ud800", "\u202e\u0041\u0042", "\U0001f600" * 8, "e\u0301" * 50,
    "x" * 70_000, "../../../../etc/passwd", "a,b", "*", "/", "-1", "NaN", "Infinity",
    "\u00ff\u00fe", "\n\r\t", "%00", "' OR 1=1 --",
]
_NUMBERS: list[Any] = [
    0, -1, -0.0, 1e308, -1e308, 2**64, -(2**63) - 1, 2**53 + 1, 1e-320, 0.0004, 3.5,
    "Infinity", "-Infinity", "NaN", "1e400", "12abc",
]
_GARBAGE = [b" xx", b"}", b"]]", b"\x00", b"{}", b",", b"\xff\xfe"]


@dataclass
class Seed:
    """A valid call on one endpoint: where it goes and how it is sent."""

    name: str
    path: str
    body: Any  # JSON-ready (dict); None for a GET
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] | None = None  # GET endpoints: mutated instead of the body
    streams: bool = False  # a 200 is a stream that does not end
    settles: bool = False  # when accepted, its effects on state arrive later (a launch...)
    # A streaming request: these JSON records, RecordIO-framed in a chunked body (`body` unused).
    records: list[Any] | None = None
    weight: int = 1  # how often it is drawn, relative to the others


RECORDIO_TYPE = "application/recordio"


@dataclass
class FuzzRequest:
    seed: str
    mutation: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    may_drop: bool = False
    version: str = "HTTP/1.1"
    raw_body: bytes | None = None  # bytes to send instead of `body` (bad framing)
    half_close: bool = False  # the client stops writing after the body
    streams: bool = False
    settles: bool = False

    def describe(self) -> str:
        return f"{self.seed}/{self.mutation} {self.method} {self.path[:120]}"


@dataclass
class Outcome:
    status: int  # 0: the connection ended before a status line
    body: bytes = b""
    error: str = ""

    @property
    def dropped(self) -> bool:
        return self.status == 0


class Fuzzer:
    """Draws mutated requests from `seeds`, deterministically for a given `seed`."""

    def __init__(self, seeds: list[Seed], seed: int) -> None:
        self.seeds = seeds
        self.rng = random.Random(seed)
        self._raw: dict[str, bytes] = {}  # placeholder string -> JSON bytes spliced in
        self._json_mutations: list[tuple[str, Callable[[Any], Any]]] = [
            ("wrong-type", self._wrong_type),
            ("drop-field", self._drop_field),
            ("unknown-field", self._unknown_field),
            ("number", self._number),
            ("string", self._string),
            ("deep", self._deep),
            ("null", self._null),
            ("type-shape", self._type_shape),
        ]

    def draw(self) -> FuzzRequest:
        if any(s.weight != 1 for s in self.seeds):
            seed = self.rng.choices(self.seeds, weights=[s.weight for s in self.seeds])[0]
        else:
            seed = self.rng.choice(self.seeds)
        if seed.query is not None:
            return self._query_request(seed)
        if seed.records is not None:
            return self._records_request(seed)
        roll = self.rng.random()
        if roll < 0.55:
            return self._json_request(seed)
        if roll < 0.75:
            return self._body_request(seed)
        if roll < 0.9:
            return self._header_request(seed)
        return self._framing_request(seed)

    # ------------------------------------------------------------------ JSON

    def _json_request(self, seed: Seed) -> FuzzRequest:
        # A call naming a virtual path has that path mutated a third of the time (no draw for
        # the other calls: their request sequences stay as they were).
        virtual = [p for p in self._paths(seed.body) if _is_virtual(_get(seed.body, p))]
        if virtual and self.rng.random() < 1 / 3:
            body = copy.deepcopy(seed.body)
            where = self.rng.choice(virtual)
            name, value = self.virtual_path(_get(body, where))
            _set(body, where, value)
            return self._request(seed, f"virtual-{name}", self._dumps(body))
        name, mutate = self.rng.choice(self._json_mutations)
        body = copy.deepcopy(seed.body)
        for _ in range(self.rng.choice((1, 1, 1, 2, 3))):
            body = mutate(body)
        return self._request(seed, name, self._dumps(body))

    def _paths(self, obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Every path to a value inside `obj` (not the root)."""
        out: list[tuple[Any, ...]] = []
        items: list[tuple[Any, Any]] = []
        if isinstance(obj, dict):
            items = list(obj.items())
        elif isinstance(obj, list):
            items = list(enumerate(obj))
        for key, value in items:
            out.append((*prefix, key))
            out.extend(self._paths(value, (*prefix, key)))
        return out

    def _pick(self, body: Any) -> tuple[Any, Any] | None:
        paths = self._paths(body)
        if not paths:
            return None
        path = self.rng.choice(paths)
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        return parent, path[-1]

    def _random_value(self) -> Any:
        kind = self.rng.randrange(7)
        if kind == 0:
            return self.rng.choice(_NUMBERS)
        if kind == 1:
            return self.rng.choice(_STRINGS)
        if kind == 2:
            return self.rng.choice([True, False])
        if kind == 3:
            return [self.rng.choice(_STRINGS[:6])]
        if kind == 4:
            return {"value": self.rng.choice(_STRINGS[:6])}
        if kind == 5:
            return []
        return {}

    def _wrong_type(self, body: Any) -> Any:
        picked = self._pick(body)
        if picked is not None:
            parent, key = picked
            parent[key] = self._random_value()
        return body

    def _drop_field(self, body: Any) -> Any:
        picked = self._pick(body)
        if picked is not None:
            parent, key = picked
            del parent[key]
        return body

    def _unknown_field(self, body: Any) -> Any:
        target = self._pick(body)
        container = body if target is None else target[0]
        if isinstance(container, dict):
            container[self.rng.choice(["zz_unknown", "\u0000", "type ", "x" * 300])] = self._random_value()
        return body

    def _number(self, body: Any) -> Any:
        numbers = [p for p in self._paths(body) if isinstance(_get(body, p), int | float)]
        paths = numbers or self._paths(body)
        if paths:
            _set(body, self.rng.choice(paths), self.rng.choice(_NUMBERS))
        return body

    def _string(self, body: Any) -> Any:
        strings = [p for p in self._paths(body) if isinstance(_get(body, p), str)]
        if strings:
            _set(body, self.rng.choice(strings), self.rng.choice(_STRINGS))
        return body

    def _deep(self, body: Any) -> Any:
        # Built as bytes (json.dumps itself would overflow the stack) and spliced in by _dumps.
        depth = self.rng.choice((99, 150, 3000))
        opening = [b"[" if self.rng.random() < 0.5 else b'{"a":' for _ in range(depth)]
        closing = [b"]" if o == b"[" else b"}" for o in reversed(opening)]
        token = f"@@deep-{len(self._raw)}@@"
        self._raw[token] = b"".join(opening) + b'"x"' + b"".join(closing)
        picked = self._pick(body)
        if picked is None:
            return token
        parent, key = picked
        parent[key] = token
        return body

    def _null(self, body: Any) -> Any:
        picked = self._pick(body)
        if picked is not None:
            parent, key = picked
            parent[key] = None
        return body

    def _type_shape(self, body: Any) -> Any:
        if isinstance(body, dict) and "type" in body:
            body["type"] = self.rng.choice(
                [[body["type"]], {"type": body["type"]}, 1, "UNKNOWN", "FROB", str(body["type"]).lower(), ""]
            )
        return body

    def virtual_path(self, path: str) -> tuple[str, str]:
        """A mutation of an agent's virtual path (`_is_virtual`): (its name, the new path)."""
        if path.rstrip("/") == "/slave/log":
            return self.rng.choice([
                ("log-slash", "/slave/log/"), ("log-traversal", "/slave/log/../../../etc/passwd"),
                ("log-dotdot", "/slave/log/.."), ("log-below", "/slave/log/x"),
                ("log-nul", "/slave/log\u0000"), ("log-double-slash", "//slave//log"),
                ("log-parent", "/slave"), ("log-case", "/SLAVE/LOG"), ("log-dot", "/slave/./log"),
                ("log-slashes", "/slave/log" + "/" * self.rng.choice((10, 5000))),
                ("log-unicode", "/slave/log" + self.rng.choice(_STRINGS[:7])),
                ("log-master", "/master/log"),
            ])
        parts = path.split("/")  # "", frameworks, F, executors, E, runs, latest, rest...
        kind = self.rng.randrange(11) if len(parts) >= 7 else 0
        if kind == 0:
            name = "traversal"
            parts.append(self.rng.choice(["..", "../..", "../../../../../../../../etc/passwd",
                                          "../../../executors", "%2e%2e", "./../latest/..", "../" * 40]))
        elif kind == 1:
            name = "missing-part"
            del parts[self.rng.randrange(1, min(len(parts), 7))]
        elif kind == 2:
            name = "empty-id"
            parts[self.rng.choice((2, 4))] = ""
        elif kind == 3:
            name = "nul"
            index = self.rng.randrange(1, len(parts))
            parts[index] = parts[index] + "\u0000" + self.rng.choice(["", "x", "/../.."])
        elif kind == 4:
            name = "long-id"
            parts[self.rng.choice((2, 4))] = "i" * self.rng.choice((255, 256, 4096, 7000))
        elif kind == 5:
            name = "latest"
            parts[6] = self.rng.choice(["LATEST", "", "..", "*", "latest ", "latest\n", "0",
                                        "00000000-0000-0000-0000-000000000000", "latest%2f"])
        elif kind == 6:
            name = "swapped"
            parts[2], parts[4] = parts[4], parts[2]
        elif kind == 7:
            name = "unicode-id"
            parts[self.rng.choice((2, 4))] = self.rng.choice(_STRINGS[:18])
        elif kind == 8:
            name = "slashes"
            index = self.rng.randrange(1, len(parts) + 1)
            parts.insert(index, "" if self.rng.random() < 0.5 else ".")
        elif kind == 9:
            name = "keyword"
            index = self.rng.choice((1, 3, 5))
            parts[index] = self.rng.choice([parts[index].upper(), parts[index][:-1], "slave", ""])
        else:
            name = "prefix-only"
            parts = parts[: self.rng.randrange(2, 8)]
        return name, "/".join(parts)

    # ------------------------------------------------------------------ body bytes

    def _body_request(self, seed: Seed) -> FuzzRequest:
        body = self._dumps(seed.body)
        kind = self.rng.randrange(7)
        headers: dict[str, str] = {}
        if kind == 0:
            name, body = "truncated", body[: self.rng.randrange(max(1, len(body)))]
        elif kind == 1:
            name, body = "trailing", body + self.rng.choice(_GARBAGE)
        elif kind == 2:
            cut = self.rng.randrange(len(body))
            name, body = "bad-utf8", body[:cut] + b"\xc3\x28\xff" + body[cut:]
        elif kind == 3:
            pos = self.rng.randrange(len(body))
            name = "flipped"
            body = body[:pos] + bytes([body[pos] ^ (1 << self.rng.randrange(8))]) + body[pos + 1 :]
        elif kind == 4:
            name, headers = "not-gzip", {"Content-Encoding": "gzip"}
        elif kind == 5:
            name = "gzip-truncated"
            body, headers = gzip.compress(body)[:-6], {"Content-Encoding": "gzip"}
        else:
            name = "encoding"
            headers = {"Content-Encoding": self.rng.choice(["br", "compress", "zstd", "gzip, foo", "\u00e9"])}
        return self._request(seed, name, body, extra_headers=headers)

    # ------------------------------------------------------------------ headers

    def _header_request(self, seed: Seed) -> FuzzRequest:
        body = self._dumps(seed.body)
        # A seed that authenticates may also have its credentials mangled (-> 401).
        kind = self.rng.randrange(7 if "Authorization" in seed.headers else 6)
        headers = {"Content-Type": JSON_TYPE, "Accept": JSON_TYPE, **seed.headers}
        method = seed.method
        if kind == 0:
            name = "no-content-type"
            headers["Content-Type"] = ""
        elif kind == 1:
            name = "content-type"
            headers["Content-Type"] = self.rng.choice(
                ["text/plain", "application/x-protobuf", "application/jsonx", "application/json; charset=latin-1", "*/*"]
            )
        elif kind == 2:
            name = "accept"
            headers["Accept"] = self.rng.choice(["text/html", "application/json;q=0", "application/x-protobuf", ""])
        elif kind == 3:
            name = "stream-id"
            headers["Mesos-Stream-Id"] = self.rng.choice(["", "not-a-uuid", "00000000-0000-0000-0000-000000000000", "\u00e9" * 3])
        elif kind == 4:
            name = "no-stream-id"
            headers.pop("Mesos-Stream-Id", None)
        elif kind == 5:
            name = "method"
            method = self.rng.choice(["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
        else:
            name = "authorization"
            mangled = self.rng.choice([
                None, "", "Basic", "Basic !!!not-base64", "Basic Zm9vOmJhcg==", "Bearer",
                "Bearer not.a.jwt", "Bearer eyJhbGciOiJub25lIn0.eyJmaWQiOiJ4In0.",
                "Negotiate abc", headers["Authorization"] + "x", "\u00e9" * 4])
            if mangled is None:
                headers.pop("Authorization", None)
            else:
                headers["Authorization"] = mangled
        return FuzzRequest(seed.name, name, method, seed.path, headers, body, streams=seed.streams, settles=seed.settles)

    # ------------------------------------------------------------------ framing

    def _framing_request(self, seed: Seed) -> FuzzRequest:
        body = self._dumps(seed.body)
        request = self._request(seed, "framing", body)
        kind = self.rng.randrange(5)
        headers = request.headers
        if kind == 0:
            request.mutation = "bad-chunk"
            headers.pop("Content-Length", None)
            headers["Transfer-Encoding"] = "chunked"
            request.raw_body = b"zz\r\n" + body + b"\r\n0\r\n\r\n"
            request.may_drop = True
        elif kind == 1:
            request.mutation = "chunk-size-lies"
            headers.pop("Content-Length", None)
            headers["Transfer-Encoding"] = "chunked"
            request.raw_body = b"%x\r\n" % (len(body) + 10) + body + b"\r\n0\r\n\r\n"
            request.half_close = True
            request.may_drop = True
        elif kind == 2:
            request.mutation = "cut-short"
            headers["Content-Length"] = str(len(body) + self.rng.choice((1, 100, 10_000)))
            request.half_close = True
            request.may_drop = True
        elif kind == 3:
            request.mutation = "http/1.0"
            request.version = "HTTP/1.0"
        else:
            request.mutation = "chunked"  # valid chunked framing, in pieces
            headers.pop("Content-Length", None)
            headers["Transfer-Encoding"] = "chunked"
            cut = self.rng.randrange(len(body))
            request.raw_body = b"".join(
                b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:cut], body[cut:]) if part
            ) + b"0\r\n\r\n"
        return request

    # ------------------------------------------------------------------ GET endpoints

    def _query_request(self, seed: Seed) -> FuzzRequest:
        assert seed.query is not None
        query = dict(seed.query)
        kind = self.rng.randrange(6)
        keys = list(query) or ["path"]
        key = self.rng.choice(keys)
        if "path" in query and _is_virtual(query["path"]) and self.rng.random() < 0.4:
            name, query["path"] = self.virtual_path(query["path"])
            name = f"virtual-{name}"
        elif kind == 0:
            name = "traversal"
            query["path"] = self.rng.choice(
                ["../../../../etc/passwd", query.get("path", "") + "/../../../..", "/etc/shadow", "/proc/self/environ",
                 query.get("path", "") + "/%2e%2e/%2e%2e", "//", "."]
            )
        elif kind == 1:
            name = "nul"
            query[key] = query.get(key, "") + "\u0000" + "x"
        elif kind == 2:
            name = "long-name"
            query["path"] = query.get("path", "/") + "/" + "n" * self.rng.choice((256, 4000, 7000))
        elif kind == 3:
            name = "number"
            query[self.rng.choice(["offset", "length", "limit"])] = str(
                self.rng.choice(["-1", "-2", "-99999999999999999999", "99999999999999999999", str(2**63), "1e9", "0x10", "", "nan", "1" * 5000])
            )
        elif kind == 4:
            name = "unicode"
            query[key] = self.rng.choice(_STRINGS[:18])
        else:
            name = "jsonp"
            query["jsonp"] = self.rng.choice(["cb", "a" * 5000, "</script>", "\u2028", ""])
        from urllib.parse import quote

        qs = "&".join(f"{quote(k, safe='')}={quote(v, safe='', errors='surrogatepass')}" for k, v in query.items())
        return FuzzRequest(seed.name, name, "GET", f"{seed.path}?{qs}", dict(seed.headers), b"")

    # ------------------------------------------------------------------ streaming requests

    def _records_request(self, seed: Seed) -> FuzzRequest:
        assert seed.records is not None
        records = [self._dumps(r) for r in seed.records]
        headers = {"Content-Type": RECORDIO_TYPE, "Message-Content-Type": JSON_TYPE,
                   "Accept": JSON_TYPE, **seed.headers}
        half_close = may_drop = False
        roll = self.rng.random()
        framed: bytes | None = None
        if roll < 0.35:
            name, mutate = self.rng.choice(self._json_mutations)
            index = self.rng.randrange(len(seed.records))
            body = copy.deepcopy(seed.records[index])
            for _ in range(self.rng.choice((1, 1, 2))):
                body = mutate(body)
            records[index] = self._dumps(body)
            name = f"record-{name}"
        elif roll < 0.65:
            kind = self.rng.randrange(8)
            index = self.rng.randrange(len(records))
            framed_records = [b"%d\n%b" % (len(r), r) for r in records]
            record = records[index]
            if kind == 0:
                name, framed_records[index] = "rio-not-a-number", b"zz\n" + record
            elif kind == 1:
                name, framed_records[index] = "rio-zero", b"0\n" + record
            elif kind == 2:
                name, framed_records[index] = "rio-negative", b"-%d\n%b" % (len(record), record)
            elif kind == 3:
                name = "rio-huge"
                framed_records[index] = self.rng.choice(
                    [b"99999999999999999999999\n", b"17000000\n", b"%d\n" % 2**64]) + record
            elif kind == 4:
                name, framed_records[index] = "rio-no-newline", b"%d%b" % (len(record), record)
            elif kind == 5:
                name = "rio-longer"  # the length promises more than the stream holds
                framed_records = framed_records[: index + 1]
                framed_records[index] = b"%d\n%b" % (len(record) + self.rng.choice((1, 50)), record)
            elif kind == 6:
                name = "rio-cut-mid-record"
                framed_records = framed_records[: index + 1]
                framed_records[index] = framed_records[index][: self.rng.randrange(1, len(framed_records[index]))]
            else:
                name = "rio-shorter"  # a length shorter than the record: the rest is garbage
                framed_records[index] = b"%d\n%b" % (max(1, len(record) - 3), record)
            framed = b"".join(framed_records)
        elif roll < 0.8:
            kind = self.rng.randrange(4)
            if kind == 0:
                name, records = "rio-dropped-record", records[1:] if self.rng.random() < 0.5 else records[:1]
            elif kind == 1:
                name, records = "rio-reordered", list(reversed(records))
            elif kind == 2:
                name, records = "rio-empty", []
            else:
                name, records = "rio-repeated-first", [records[0]] * 2 + records[1:]
        elif roll < 0.92:
            kind = self.rng.randrange(5)
            if kind == 0:
                name = "rio-no-message-type"
                headers.pop("Message-Content-Type")
            elif kind == 1:
                name = "rio-message-type"
                headers["Message-Content-Type"] = self.rng.choice(
                    ["application/x-protobuf", "text/plain", "", "application/recordio"])
            elif kind == 2:
                name = "rio-content-type"
                headers["Content-Type"] = self.rng.choice([JSON_TYPE, "application/recordio; x=\u00e9", "text/plain"])
            elif kind == 3:
                name = "rio-accept"
                headers["Accept"] = self.rng.choice(["text/html", "application/x-protobuf", "application/json;q=0"])
            else:
                name = "rio-method"
                return FuzzRequest(seed.name, name, self.rng.choice(["GET", "PUT"]), seed.path, headers,
                                   b"", streams=seed.streams, settles=seed.settles)
        else:
            name = "rio-cut-short"  # the client stops writing mid-stream and waits
            half_close = may_drop = True
            framed = b"".join(b"%d\n%b" % (len(r), r) for r in records)
            framed = framed[: self.rng.randrange(1, len(framed))]
        if framed is None:
            framed = b"".join(b"%d\n%b" % (len(r), r) for r in records)
        # Chunked, in pieces that split records anywhere (as a terminal's input arrives).
        cuts = sorted(self.rng.sample(range(1, max(2, len(framed))), min(3, max(0, len(framed) - 1))))
        pieces = [framed[a:b] for a, b in zip([0, *cuts], [*cuts, len(framed)], strict=True) if framed[a:b]]
        raw = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces)
        if not half_close:
            raw += b"0\r\n\r\n"
        headers["Transfer-Encoding"] = "chunked"
        return FuzzRequest(seed.name, name, seed.method, seed.path, headers, framed, raw_body=raw,
                           half_close=half_close, may_drop=may_drop, streams=seed.streams,
                           settles=seed.settles)

    # ------------------------------------------------------------------ helpers

    def _dumps(self, obj: Any) -> bytes:
        # ensure_ascii keeps lone surrogates as escapes (valid JSON text, invalid UTF-16)
        text = json.dumps(obj, ensure_ascii=True).encode()
        for token, raw in self._raw.items():
            text = text.replace(b'"' + token.encode() + b'"', raw)
        self._raw.clear()
        return text

    def _request(self, seed: Seed, mutation: str, body: bytes, extra_headers: dict[str, str] | None = None) -> FuzzRequest:
        headers = {"Content-Type": JSON_TYPE, "Accept": JSON_TYPE, **seed.headers, **(extra_headers or {})}
        return FuzzRequest(
            seed.name, mutation, seed.method, seed.path, headers, body, streams=seed.streams, settles=seed.settles
        )




def _is_virtual(value: Any) -> bool:
    """Is `value` one of an agent's virtual paths (an executor's latest run, or its log)?"""
    return isinstance(value, str) and (value.startswith("/frameworks/") or value.rstrip("/") == "/slave/log")


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        obj = obj[step]
    return obj


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        obj = obj[step]
    obj[path[-1]] = value


def encode_request(request: FuzzRequest, host: str) -> bytes:
    """The request as bytes on the wire (header values that cannot be latin-1 are UTF-8)."""
    headers = {"Host": host, "Connection": "close", **request.headers}
    body = request.raw_body if request.raw_body is not None else request.body
    if "Transfer-Encoding" not in headers and request.method != "GET":
        headers.setdefault("Content-Length", str(len(body)))
    lines = [f"{request.method} {request.path} {request.version}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if v != "" or k != "Content-Type"]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n" + body


async def send(address: tuple[str, int], request: FuzzRequest, timeout: float = 20.0) -> Outcome:
    """Send one request on a fresh connection and read the answer (see the module docstring)."""
    host, port = address
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        return Outcome(0, error=f"connect: {exc}")
    try:
        writer.write(encode_request(request, f"{host}:{port}"))
        await writer.drain()
        if request.half_close and writer.can_write_eof():
            writer.write_eof()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        if request.streams and status == 200:
            return Outcome(status)  # a stream: nothing more to wait for
        rest = await asyncio.wait_for(reader.read(), timeout)
        return Outcome(status, rest)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        return Outcome(0, error=type(exc).__name__)
    except TimeoutError:
        return Outcome(0, error="timeout")
    finally:
        writer.close()
