"""Per-framework offer policy in the allocator: offer constraints on agent attributes,
per-role minimum allocatable resources (FrameworkInfo.offer_filters), GPU_RESOURCES gating."""

from __future__ import annotations

import pytest

from mezzo.master.allocator import (
    NON_TEXT,
    AgentTraits,
    AllocatorOptions,
    ConstraintError,
    FrameworkPolicy,
    HierarchicalAllocator,
    compile_offer_constraints,
)
from mezzo.resources import Resources

R = Resources.parse


def attr(name: str, predicate: dict) -> dict:
    return {"selector": {"attribute_name": name}, "predicate": predicate}


def constraints(role: str, *groups: list[dict]) -> dict:
    return {"role_constraints": {role: {"groups": [
        {"attribute_constraints": group} for group in groups
    ]}}}


def policy(spec: dict | None = None, roles: tuple[str, ...] = ("*",), **kw: object) -> FrameworkPolicy:
    return FrameworkPolicy(constraints=compile_offer_constraints(spec, roles), **kw)  # type: ignore[arg-type]


def agents_of(offers: list) -> set[str]:
    return {o.agent_id for o in offers}


def cluster(**options: object) -> HierarchicalAllocator:
    a = HierarchicalAllocator(AllocatorOptions(**options))  # type: ignore[arg-type]
    a.add_agent("r1", R("cpus:4;mem:4096"), {}, traits=AgentTraits(
        hostname="h1", attributes={"rack": "r1", "cores": NON_TEXT}))
    a.add_agent("r2", R("cpus:4;mem:4096"), {}, traits=AgentTraits(
        hostname="h2", zone="z2", attributes={"rack": "r2"}))
    a.add_agent("bare", R("cpus:4;mem:4096"), {}, traits=AgentTraits(hostname="h3"))
    return a


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        ({"exists": {}}, {"r1", "r2"}),
        ({"not_exists": {}}, {"bare"}),
        ({"text_equals": {"value": "r1"}}, {"r1"}),
        ({"text_not_equals": {"value": "r1"}}, {"r2", "bare"}),
        ({"text_matches": {"regex": "r[0-9]"}}, {"r1", "r2"}),
        ({"text_matches": {"regex": "r"}}, set()),  # the whole value must match
        ({"text_not_matches": {"regex": "r1"}}, {"r2", "bare"}),
    ],
)
def test_each_predicate_on_a_text_attribute(predicate: dict, expected: set[str]) -> None:
    a = cluster()
    a.add_framework("f", ["*"], now=0, policy=policy(constraints("*", [attr("rack", predicate)])))
    assert agents_of(a.allocate(0)) == expected


def test_text_predicates_hold_for_non_text_attributes_like_mesos() -> None:
    a = cluster()
    spec = constraints("*", [attr("cores", {"text_equals": {"value": "x"}})])
    a.add_framework("f", ["*"], now=0, policy=policy(spec))
    assert agents_of(a.allocate(0)) == {"r1"}  # exists and is not TEXT: the scheduler decides


def test_groups_are_ored_constraints_in_a_group_are_anded_and_pseudoattributes_work() -> None:
    a = cluster()
    hostname = {"selector": {"pseudoattribute_type": "HOSTNAME"},
                "predicate": {"text_equals": {"value": "h3"}}}
    zone = {"selector": {"pseudoattribute_type": "ZONE"}, "predicate": {"exists": {}}}
    spec = constraints(
        "*",
        [hostname],
        [attr("rack", {"exists": {}}), zone],  # r2 only: r1 has no zone
    )
    a.add_framework("f", ["*"], now=0, policy=policy(spec))
    assert agents_of(a.allocate(0)) == {"bare", "r2"}


def test_constrained_framework_leaves_other_agents_to_the_next_framework() -> None:
    a = cluster()
    a.add_framework("picky", ["*"], now=0,
                    policy=policy(constraints("*", [attr("rack", {"text_equals": {"value": "r1"}})])))
    a.add_framework("z-any", ["*"], now=0)
    # "picky" sorts first (DRF ties go by name; it holds nothing) but takes only r1.
    got = {o.agent_id: o.framework_id for o in a.allocate(0)}
    assert got == {"r1": "picky", "r2": "z-any", "bare": "z-any"}


def test_constraints_are_per_role() -> None:
    a = cluster()
    spec = constraints("web", [attr("rack", {"text_equals": {"value": "r2"}})])
    a.add_framework("f", ["web"], now=0, policy=policy(spec, roles=("web",)))
    assert agents_of(a.allocate(0)) == {"r2"}
    a.add_framework("g", ["batch"], now=0, policy=policy(None, roles=("batch",)))
    assert agents_of(a.allocate(0)) == {"r1", "bare"}


def test_update_framework_changes_constraints_at_the_next_allocation() -> None:
    a = cluster()
    only = lambda rack: policy(constraints("*", [attr("rack", {"text_equals": {"value": rack}})]))  # noqa: E731
    a.add_framework("f", ["*"], now=0, policy=only("r1"))
    assert agents_of(a.allocate(0)) == {"r1"}
    a.update_framework("f", ["*"], [], policy=only("r2"))
    assert agents_of(a.allocate(1)) == {"r2"}
    a.update_framework("f", ["*"], [], policy=None)
    assert agents_of(a.allocate(2)) == {"bare"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (constraints("*", [attr("rack", {"text_matches": {"regex": "r[0-9"}})]),
         "Failed to construct regex from pattern 'r[0-9'"),
        (constraints("other", [attr("rack", {"exists": {}})]),
         "for a role 'other' not contained in the set of roles"),
        ({"role_constraints": {"*": {"groups": []}}}, "empty 'RoleConstraints::groups'"),
        ({"role_constraints": {"*": {"groups": [{}]}}}, "contains an empty RoleConstraints::Group"),
        (constraints("*", [{"selector": {}, "predicate": {"exists": {}}}]), "Exactly one of"),
        (constraints("*", [{"selector": {"pseudoattribute_type": "RACK"},
                            "predicate": {"exists": {}}}]), "Unknown pseudoattribute type"),
        (constraints("*", [attr("rack", {"bogus": {}})]), "Unknown predicate type"),
    ],
)
def test_invalid_constraints_are_refused_with_mesos_messages(spec: dict, message: str) -> None:
    with pytest.raises(ConstraintError, match=message.replace("[", r"\[")):
        compile_offer_constraints(spec, ["*"])


def test_per_role_minimum_overrides_the_global_minimum() -> None:
    a = HierarchicalAllocator(AllocatorOptions())
    a.add_agent("small", R("cpus:1;mem:256"), {})
    a.add_agent("big", R("cpus:8;mem:8192"), {})
    a.add_framework("f", ["*"], now=0,
                    policy=FrameworkPolicy(min_allocatable={"*": ({"cpus": 2.0, "mem": 1024.0},)}))
    assert agents_of(a.allocate(0)) == {"big"}
    # Lowering it below the global minimum lets a chunk the global minimum refuses through.
    b = HierarchicalAllocator(AllocatorOptions())
    b.add_agent("tiny", R("cpus:0.005;mem:16"), {})
    b.add_framework("plain", ["*"], now=0)
    assert b.allocate(0) == []
    b.add_framework("f", ["*"], now=0,
                    policy=FrameworkPolicy(min_allocatable={"*": ({"mem": 8.0},)}))
    assert [(o.framework_id, o.agent_id) for o in b.allocate(1)] == [("f", "tiny")]


def test_gpu_agents_go_only_to_gpu_capable_frameworks_unless_the_flag_is_off() -> None:
    a = HierarchicalAllocator(AllocatorOptions())
    a.add_agent("gpu", R("cpus:4;mem:4096;gpus:2"), {})
    a.add_agent("cpu", R("cpus:4;mem:4096"), {})
    a.add_framework("plain", ["*"], now=0)
    assert agents_of(a.allocate(0)) == {"cpu"}
    a.add_framework("gpu-fw", ["*"], now=0, policy=FrameworkPolicy(gpu_capable=True))
    offers = a.allocate(1)
    assert [(o.framework_id, o.agent_id) for o in offers] == [("gpu-fw", "gpu")]
    b = HierarchicalAllocator(AllocatorOptions(filter_gpu_resources=False))
    b.add_agent("gpu", R("cpus:4;mem:4096;gpus:2"), {})
    b.add_framework("plain", ["*"], now=0)
    assert agents_of(b.allocate(0)) == {"gpu"}


def test_constraint_verdicts_are_shared_by_alike_agents_and_forgotten_with_their_pair() -> None:
    # Verdicts are cached per agent signature (its values of the selectors in use) and per
    # (framework, role) bit: a freed bit taken by another framework must not inherit them.
    a = HierarchicalAllocator(AllocatorOptions())
    for i in range(6):
        a.add_agent(f"a{i}", R("cpus:4;mem:4096"), {}, traits=AgentTraits(
            hostname=f"h{i}", attributes={"rack": f"r{i % 2}"}))
    only = lambda rack, role="*": policy(  # noqa: E731
        constraints(role, [attr("rack", {"text_equals": {"value": rack}})]), roles=(role,))
    # Keeps the selector set unchanged through the removals below.
    a.add_framework("keeper", ["other"], now=0, policy=only("r9", "other"))
    a.add_framework("old", ["*"], now=0, policy=only("r0"))
    offers = a.allocate(0)
    assert {o.agent_id for o in offers} == {"a0", "a2", "a4"}
    for o in offers:
        a.recover_resources(o.framework_id, o.agent_id, o.resources, None, 0)
    a.remove_framework("old")
    a.add_framework("new", ["*"], now=0, policy=only("r1"))  # gets the freed bit
    assert {o.agent_id for o in a.allocate(1)} == {"a1", "a3", "a5"}


def test_a_new_selector_gives_agents_new_signatures() -> None:
    a = HierarchicalAllocator(AllocatorOptions())
    a.add_agent("x", R("cpus:4;mem:4096"), {}, traits=AgentTraits(
        hostname="hx", zone="z1", attributes={"rack": "r1"}))
    a.add_agent("y", R("cpus:4;mem:4096"), {}, traits=AgentTraits(
        hostname="hy", zone="z2", attributes={"rack": "r1"}))
    a.add_framework("racks", ["*"], now=0,
                    policy=policy(constraints("*", [attr("rack", {"text_equals": {"value": "r1"}})])))
    assert agents_of(a.allocate(0)) == {"x", "y"}  # x and y look alike so far
    a.remove_framework("racks")
    zone = {"selector": {"pseudoattribute_type": "ZONE"}, "predicate": {"text_equals": {"value": "z2"}}}
    a.add_framework("zones", ["*"], now=0, policy=policy(constraints("*", [zone])))
    assert agents_of(a.allocate(1)) == {"y"}


def test_the_same_constraints_compile_to_one_shared_value() -> None:
    # Frameworks with the same constraints share them, so the allocator evaluates them once
    # per agent signature; a different spec, or the same one of another role, is its own.
    spec = lambda role, rack: constraints(role, [attr("rack", {"text_equals": {"value": rack}})])  # noqa: E731
    a = compile_offer_constraints(spec("web", "r1"), ["web"])["web"]
    assert compile_offer_constraints(spec("web", "r1"), ["web"])["web"] is a
    assert compile_offer_constraints(spec("db", "r1"), ["db"])["db"] is a
    assert compile_offer_constraints(spec("web", "r2"), ["web"])["web"] is not a
