"""Resources: the text format, the JSON array form, and their error messages."""

from __future__ import annotations

import pytest

from mezzo.core.errors import ValidationError
from mezzo.resources import STATIC, Reservation, Resources


def test_sets_ranges_and_roles() -> None:
    r = Resources.parse(" cpus:4 ; mem:1024;ports:[1-5, 10-20];zones:{b,a};disk(ops):100; ")
    assert r.ports() == [(1, 5), (10, 20)]
    assert r.quantities() == {"cpus": 4, "mem": 1024, "disk": 100, "ports": 16, "zones": 2}
    (disk,) = [it for it in r if it.name == "disk"]
    assert disk.role == "ops"
    assert disk.reservations == (Reservation(STATIC, "ops"),)
    assert str(r) == "cpus:4;mem:1024;ports:[1-5,10-20];zones:{a,b};disk(ops):100"


def test_adjacent_intervals_merge_and_single_values() -> None:
    assert Resources.parse("ports:[1-5,6-9,20]").ports() == [(1, 9), (20, 20)]


def test_duplicate_tokens_add_up() -> None:
    assert Resources.parse("cpus:1;cpus:2.5").cpus() == 3.5


def test_star_role_is_unreserved_and_default_role_applies() -> None:
    assert Resources.parse("cpus(*):1") == Resources.parse("cpus:1")
    r = Resources.parse("cpus:1;mem(*):2", default_role="eng")
    assert r.reserved("eng") == Resources.parse("cpus(eng):1")
    assert r.unreserved() == Resources.parse("mem:2")


def test_fixed_point_three_decimals() -> None:
    r = Resources.parse("cpus:0.1") + Resources.parse("cpus:0.2")
    assert r == Resources.parse("cpus:0.3")
    with pytest.raises(ValidationError, match="rounds to 0"):  # Mesos: "value <= 0"
        Resources.parse("cpus:0.0004")
    assert Resources.parse("cpus:1.23456").cpus() == 1.235


def test_zero_and_empty_values_are_dropped() -> None:
    assert not Resources.parse("cpus:0;ports:[];s:{}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cpus:abc", r"invalid resource 'cpus:abc': 'abc' is not a number"),
        ("cpus:-1", r"invalid resource 'cpus:-1': negative value -1"),
        ("cpus:inf", r"invalid resource 'cpus:inf': scalar value must be finite, not inf"),
        ("cpus:nan", r"must be finite, not nan"),
        ("mem:1e308", r"value 1e\+308 is too large \(at most 9007199254740\.992\)"),
        ("mem:9007199254741", r"too large"),
        ("mem:9007199254740;mem:9007199254740", r"invalid resource 'mem': total 18014398509480 is too large"),
        ("cpus", r"invalid resource 'cpus': expected 'name:value'"),
        (":4", r"missing resource name"),
        ("cpus:", r"missing value"),
        ("ports:[5-1]", r"invalid resource 'ports:\[5-1\]': .*begin 5 is greater than end 1"),
        ("ports:[1-10,5-20]", r"\[1-10\] and \[5-20\] overlap"),
        ("ports:[1-x]", r"'x' is not a non-negative integer"),
        ("ports:[1-2-3]", r"'1-2-3' is not a range"),
        ("ports:[1-2", r"must end with '\]'"),
        ("s:{a,a}", r"duplicate set items"),
        ("s:{a,}", r"empty set item"),
        ("cpus(eng/):1", r"must not start or end with '/'"),
        ("cpus(a//b):1", r"must not contain '//'"),
        ("cpus(-x):1", r"starting with '-'"),
        ("cpus(eng:1", r"expected 'name\(role\)'"),
        ("gpus:1.5", r"gpus must be a whole number"),
    ],
)
def test_text_errors(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Resources.parse(text)


def test_bad_default_role() -> None:
    with pytest.raises(ValidationError, match="invalid default role"):
        Resources.parse("cpus:1", default_role="a b")


def test_json_array_form() -> None:
    text = """[
      {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}},
      {"name": "mem", "type": "SCALAR", "scalar": {"value": 512.5}, "role": "eng"},
      {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 3}]}},
      {"name": "zones", "type": "SET", "set": {"item": ["x"]}}
    ]"""
    assert Resources.parse(text) == Resources.parse("cpus:2;mem(eng):512.5;ports:[1-3];zones:{x}")


def test_json_default_role() -> None:
    text = '[{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}}]'
    assert Resources.parse(text, default_role="eng") == Resources.parse("cpus(eng):2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{", "invalid resources JSON"),
        ('[{"name": "cpus"}]', "invalid resources JSON"),
        ('[{"name": "cpus", "type": "TEXT"}]', "must be SCALAR, RANGES or SET"),
        ('[{"name": "cpus", "type": "SCALAR"}]', "SCALAR resource without 'scalar'"),
        (
            '[{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "set": {"item": []}}]',
            "must not carry 'set'",
        ),
        ('[{"name": "cpus", "type": "SCALAR", "scalar": {"value": -2}}]', "negative value"),
        ('[{"name": "", "type": "SCALAR", "scalar": {"value": 2}}]', "invalid resource name"),
        (
            '[{"name": "p", "type": "RANGES", "ranges": {"range": [{"begin": 3, "end": 1}]}}]',
            "begin 3 is greater than end 1",
        ),
        (
            '[{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "role": "a b"}]',
            "invalid role",
        ),
    ],
)
def test_json_errors(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Resources.parse(text)
