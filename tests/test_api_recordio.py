"""RecordIO framing: exact bytes, any chunking, malformed lengths."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mezzo.api.recordio import RecordIODecoder, encode_record
from mezzo.core.errors import DecodeError


def test_record_bytes() -> None:
    assert encode_record(b'{"type":"HEARTBEAT"}') == b'20\n{"type":"HEARTBEAT"}'
    # The length counts bytes of the UTF-8 payload, not characters.
    payload = '{"m":"é"}'.encode()
    assert encode_record(payload) == b"%d\n" % len(payload) + payload
    assert len(payload) == 10


def test_empty_record_refused() -> None:
    with pytest.raises(ValueError):
        encode_record(b"")


def test_several_records_in_one_read_and_split_across_reads() -> None:
    stream = encode_record(b"a") + encode_record(b"bc") + encode_record(b"def")
    decoder = RecordIODecoder()
    assert decoder.feed(stream[:6]) == [b"a"]  # "1\na2\nb"
    assert decoder.buffered == 1
    assert decoder.feed(stream[6:9]) == [b"bc"]  # "c3\n"
    assert decoder.feed(stream[9:10]) == []  # "d"
    assert decoder.feed(stream[10:]) == [b"def"]
    assert decoder.buffered == 0


def test_a_stream_that_ends_after_a_length_prefix_is_mid_record() -> None:
    decoder = RecordIODecoder()
    assert decoder.feed(b"1\na5\n") == [b"a"]
    assert decoder.buffered == 0 and decoder.mid_record  # the 5 bytes never came
    assert decoder.feed(b"hello") == [b"hello"]
    assert not decoder.mid_record


def test_payload_with_newlines_and_digits() -> None:
    decoder = RecordIODecoder()
    assert decoder.feed(encode_record(b"12\n34\n") + encode_record(b"\n")) == [b"12\n34\n", b"\n"]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"x1\n", "not a decimal number"),
        (b"12 \n", "not a decimal number"),
        (b"\r\n", "not a decimal number"),
        (b"-5\n", "not a decimal number"),
        (b"0\n", "never empty"),
        (b"\n", "empty"),
        (b"67108865\n", "larger than"),
        (b"9" * 30, "larger than"),
    ],
)
def test_malformed_lengths(data: bytes, problem: str) -> None:
    with pytest.raises(DecodeError, match=problem):
        RecordIODecoder().feed(data)


def test_garbage_detected_before_newline_arrives() -> None:
    with pytest.raises(DecodeError):
        RecordIODecoder().feed(b"{")


def test_limit_is_configurable() -> None:
    decoder = RecordIODecoder(max_record_bytes=4)
    assert decoder.feed(b"4\nabcd") == [b"abcd"]
    with pytest.raises(DecodeError, match="larger than 4 bytes"):
        decoder.feed(b"5\n")


@given(
    records=st.lists(st.binary(min_size=1, max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_any_chunking_decodes_to_the_same_records(records: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_record(r) for r in records)
    points = sorted({cut % (len(stream) + 1) for cut in cuts} | {0, len(stream)})
    decoder = RecordIODecoder()
    out: list[bytes] = []
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(stream[start:end]))
    assert out == records
    assert decoder.buffered == 0
