"""Role names, the role hierarchy, reservations in both wire formats, allocation tagging."""

from __future__ import annotations

import msgspec
import pytest

from mezzo.api import common as api
from mezzo.core.errors import ValidationError
from mezzo.resources import (
    DYNAMIC,
    STATIC,
    Reservation,
    Resources,
    ancestors,
    is_ancestor,
    validate,
    validate_role,
)


def wire(text: str) -> list[api.Resource]:
    return msgspec.json.decode(text, type=list[api.Resource])


def as_json(resources: list[api.Resource]) -> list[dict]:
    return msgspec.json.decode(msgspec.json.encode(resources))


@pytest.mark.parametrize("role", ["*", "eng", "eng/web", "a.b", "a-b", "x/y/z", "_"])
def test_valid_roles(role: str) -> None:
    assert validate_role(role) == role


@pytest.mark.parametrize(
    "role",
    [
        "",
        "/eng",
        "eng/",
        "a//b",
        ".",
        "..",
        "a/./b",
        "a/../b",
        "a/*",
        "-a",
        "a/-b",
        "a b",
        "a\tb",
        "a\x01",
    ],
)
def test_invalid_roles(role: str) -> None:
    with pytest.raises(ValidationError, match="invalid role"):
        validate_role(role)


def test_hierarchy() -> None:
    assert ancestors("a/b/c") == ["a/b", "a"]
    assert ancestors("eng") == []
    assert is_ancestor("eng", "eng/web")
    assert not is_ancestor("eng", "eng")
    assert not is_ancestor("eng", "engineering/web")


def test_allocatable_to_includes_ancestor_reservations() -> None:
    r = Resources.parse("cpus:1;cpus(eng):2;cpus(eng/web):4;cpus(ops):8;cpus(eng/web/api):16")
    assert r.allocatable_to("eng/web").cpus() == 7
    assert r.reserved_to("eng").cpus() == 3
    assert r.reserved("eng/web").cpus() == 4
    assert r.reserved().cpus() == 30
    assert r.unreserved().cpus() == 1


def test_pre_refinement_input_is_converted() -> None:
    old = wire(
        '[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"role":"eng",'
        '"reservation":{"principal":"alice","labels":{"labels":[{"key":"k","value":"v"}]}}},'
        '{"name":"mem","type":"SCALAR","scalar":{"value":2},"role":"eng"},'
        '{"name":"disk","type":"SCALAR","scalar":{"value":3},"role":"*"}]'
    )
    r = Resources.from_wire(old)
    stacks = {it.name: it.reservations for it in r}
    assert stacks == {
        "cpus": (Reservation(DYNAMIC, "eng", "alice", (("k", "v"),)),),
        "mem": (Reservation(STATIC, "eng"),),
        "disk": (),
    }
    # Same resources in the post-refinement format decode to the same value.
    new = Resources.from_wire(r.to_wire(refinement=True))
    assert new == r
    assert as_json(r.to_wire(refinement=True)) == [
        {
            "name": "cpus",
            "type": "SCALAR",
            "scalar": {"value": 1.0},
            "reservations": [
                {
                    "type": "DYNAMIC",
                    "role": "eng",
                    "principal": "alice",
                    "labels": {"labels": [{"key": "k", "value": "v"}]},
                }
            ],
        },
        {
            "name": "mem",
            "type": "SCALAR",
            "scalar": {"value": 2.0},
            "reservations": [{"type": "STATIC", "role": "eng"}],
        },
        {"name": "disk", "type": "SCALAR", "scalar": {"value": 3.0}},
    ]
    assert as_json(r.to_wire(refinement=False)) == [
        {
            "name": "cpus",
            "type": "SCALAR",
            "scalar": {"value": 1.0},
            "role": "eng",
            "reservation": {
                "principal": "alice",
                "labels": {"labels": [{"key": "k", "value": "v"}]},
            },
        },
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 2.0}, "role": "eng"},
        {"name": "disk", "type": "SCALAR", "scalar": {"value": 3.0}, "role": "*"},
    ]
    assert Resources.from_wire(r.to_wire(refinement=False)) == r


def test_refined_reservation_stack() -> None:
    r = Resources.from_wire(
        wire(
            '[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"reservations":['
            '{"type":"STATIC","role":"eng"},{"type":"DYNAMIC","role":"eng/web","principal":"p"}]}]'
        )
    )
    (it,) = r
    assert it.role == "eng/web"
    assert r.allocatable_to("eng/web/api") == r
    assert not r.allocatable_to("eng")
    assert r.pop_reservation() == Resources.parse("cpus(eng):1")
    assert r.to_unreserved() == Resources.parse("cpus:1")
    assert (
        Resources.parse("cpus(eng):1").push_reservation(Reservation(DYNAMIC, "eng/web", "p")) == r
    )


@pytest.mark.parametrize(
    ("stack", "message"),
    [
        (
            '[{"type":"DYNAMIC","role":"eng"},{"type":"DYNAMIC","role":"ops"}]',
            "does not refine 'eng'",
        ),
        (
            '[{"type":"DYNAMIC","role":"eng"},{"type":"DYNAMIC","role":"eng"}]',
            "does not refine 'eng'",
        ),
        (
            '[{"type":"DYNAMIC","role":"eng"},{"type":"STATIC","role":"eng/a"}]',
            "STATIC reservation cannot refine",
        ),
        ('[{"type":"DYNAMIC","role":"*"}]', "cannot reserve to role"),
        ('[{"type":"DYNAMIC"}]', "reservation has no role"),
        ('[{"type":"DYNAMIC","role":"a//b"}]', "invalid role"),
    ],
)
def test_bad_reservation_stacks(stack: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        validate(
            wire(
                f'[{{"name":"cpus","type":"SCALAR","scalar":{{"value":1}},"reservations":{stack}}}]'
            )
        )


def test_pre_refinement_dynamic_reservation_needs_role() -> None:
    with pytest.raises(ValidationError, match="needs a role other than"):
        validate(
            wire(
                '[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"role":"*","reservation":{}}]'
            )
        )


def test_reserved_and_unreserved_never_offset() -> None:
    r = Resources.parse("cpus:4") - Resources.parse("cpus(eng):1")
    assert r == Resources.parse("cpus:4")
    assert not Resources.parse("cpus:4").contains(Resources.parse("cpus(eng):1"))


def test_allocation_tagging() -> None:
    total = Resources.parse("cpus:4;mem:100;ports:[1-10]")
    a = Resources.parse("cpus:1;ports:[1-2]").allocate("eng")
    b = Resources.parse("cpus:2;mem:10").allocate("ops")
    allocated = a + b
    assert allocated.allocations() == {"eng": a, "ops": b}
    assert allocated.unallocate() == Resources.parse("cpus:3;mem:10;ports:[1-2]")
    assert total - allocated == total  # tagged resources are different identities
    assert (total - allocated.unallocate()).quantities() == {"cpus": 1, "mem": 90, "ports": 8}
    assert not allocated.without_allocation()
    assert (allocated + total).without_allocation() == total
    assert a.unallocate().allocate("eng") == a
    out = as_json(a.to_wire(refinement=False, with_allocation=True))
    assert out[0]["allocation_info"] == {"role": "eng"}
    assert "allocation_info" not in as_json(a.to_wire())[0]
    assert Resources.from_wire(a.to_wire(with_allocation=True)) == a


def test_revocable_and_shared() -> None:
    r = Resources.from_wire(
        wire(
            '[{"name":"cpus","type":"SCALAR","scalar":{"value":2},"revocable":{}},'
            '{"name":"cpus","type":"SCALAR","scalar":{"value":1}},'
            '{"name":"disk","type":"SCALAR","scalar":{"value":64},"role":"eng","reservation":{"principal":"p"},'
            '"disk":{"persistence":{"id":"v1"},"volume":{"container_path":"data","mode":"RW"}},"shared":{}}]'
        )
    )
    assert r.revocable().cpus() == 2
    assert r.non_revocable().cpus() == 1
    vol = r.shared()
    assert vol.disk() == 64 and not r.non_shared().disk()
    # Shared resources add and subtract by copy count; quantities count a volume once.
    two = vol + vol
    assert len(two) == 2 and two.quantities() == {"disk": 64}
    assert two.contains(vol) and not vol.contains(two)
    assert two - vol == vol and (vol - two).is_empty()
    out = as_json(vol.to_wire())
    assert out[0]["shared"] == {} and out[0]["disk"]["persistence"] == {"id": "v1"}
    assert Resources.from_wire(r.to_wire()) == r
    assert "{REV}" in str(r) and "<SHARED>" in str(r)


def test_sharing_requires_persistent_volume() -> None:
    with pytest.raises(ValidationError, match="only persistent volumes can be shared"):
        validate(wire('[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"shared":{}}]'))


def test_gpus_whole_numbers_on_the_wire() -> None:
    with pytest.raises(ValidationError, match="gpus must be a whole number"):
        validate(wire('[{"name":"gpus","type":"SCALAR","scalar":{"value":0.5}}]'))
