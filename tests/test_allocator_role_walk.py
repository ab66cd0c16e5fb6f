"""`RoleWalk`: the lazy walk of the role tree the allocator reads per agent gives the order of
`RoleTree` iteration, and after `freeze()` the nodes being walked keep their order while
allocations change (what the snapshot iteration does)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from mezzo.master.allocator.role_tree import RoleTree
from mezzo.master.allocator.sorter import DRFSorter, RandomSorter, Totals

ROLES = ["a", "a/x", "a/y", "a/x/deep", "b", "b/z", "c", "d/e", "d/f"]


def tree(kind: str, roles: list[str], charges: list[tuple[str, float]]) -> RoleTree:
    totals = Totals({"cpus": 100.0, "mem": 1000.0})
    rng = random.Random(7)
    t = RoleTree(lambda: DRFSorter(totals) if kind == "drf" else RandomSorter(totals, rng=rng))
    for role in roles:
        t.add_role(role)
    for role, cpus in charges:
        t.allocated(role, {"cpus": cpus})
    return t


roles_st = st.lists(st.sampled_from(ROLES), min_size=1, max_size=len(ROLES), unique=True)


@settings(max_examples=150, deadline=None)
@given(roles=roles_st, data=st.data())
def test_walk_gives_the_iteration_order(roles: list[str], data: st.DataObject) -> None:
    charges = data.draw(st.lists(st.tuples(st.sampled_from(roles), st.floats(0.5, 9.0)), max_size=8))
    assert list(tree("drf", roles, charges).walk()) == list(tree("drf", roles, charges))
    # A random sorter draws the same numbers either way (its walk reads snapshots).
    assert list(tree("random", roles, charges).walk()) == list(tree("random", roles, charges))


@settings(max_examples=150, deadline=None)
@given(roles=roles_st, data=st.data())
def test_frozen_walk_keeps_the_snapshot_order_while_shares_change(
    roles: list[str], data: st.DataObject
) -> None:
    charges = data.draw(st.lists(st.tuples(st.sampled_from(roles), st.floats(0.5, 9.0)), max_size=8))
    later = data.draw(st.lists(st.tuples(st.sampled_from(roles), st.floats(0.5, 40.0)), max_size=6))
    # The allocator's pattern: read a role, freeze, charge, read on; against the snapshot
    # iteration interleaved with the same charges.
    lazy_tree, snap_tree = tree("drf", roles, charges), tree("drf", roles, charges)
    walk, snapshot = lazy_tree.walk(), iter(snap_tree)
    lazy, snap = [], []
    for role, cpus in later:
        a, b = next(walk, None), next(snapshot, None)
        lazy.append(a)
        snap.append(b)
        walk.freeze()
        lazy_tree.allocated(role, {"cpus": cpus})
        snap_tree.allocated(role, {"cpus": cpus})
    assert lazy + list(walk) == snap + list(snapshot)
