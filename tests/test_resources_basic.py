"""Resources: parsing, arithmetic and containment basics."""

from __future__ import annotations

import pytest

from mezzo.core.errors import ValidationError
from mezzo.resources import Resources

AGENT = "cpus:24;mem:4096;disk:4096;ports:[31000-32000]"


def test_parse_typical_agent() -> None:
    r = Resources.parse(AGENT)
    assert r.cpus() == 24
    assert r.mem() == 4096
    assert r.disk() == 4096
    assert r.ports() == [(31000, 32000)]
    assert r.quantities() == {"cpus": 24.0, "mem": 4096.0, "disk": 4096.0, "ports": 1001.0}
    assert str(r) == AGENT


def test_add_and_subtract() -> None:
    a = Resources.parse(AGENT)
    b = Resources.parse("cpus:1.5;mem:100;ports:[31005-31010]")
    left = a - b
    assert left.cpus() == 22.5
    assert left.ports() == [(31000, 31004), (31011, 32000)]
    assert left + b == a
    assert a.contains(b) and b <= a and not a <= b


def test_subtraction_saturates() -> None:
    a = Resources.parse("cpus:1;mem:10")
    assert (a - Resources.parse("cpus:5")) == Resources.parse("mem:10")
    assert (a - Resources.parse("gpus:1")) == a


def test_bad_number_names_the_token() -> None:
    with pytest.raises(
        ValidationError, match=r"invalid resource 'cpus:abc': 'abc' is not a number"
    ):
        Resources.parse("cpus:abc")
