"""Property tests: across random event sequences nothing is allocated twice and no agent is
ever over-allocated; the allocator's books always balance."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mezzo.master.allocator import Allocation, AllocatorOptions, create_allocator
from mezzo.resources import EMPTY, Resources

TOTALS = [
    Resources.parse("cpus:4;mem:4096;ports:[31000-31010]"),
    Resources.parse("cpus:2;mem:1024;cpus(r1):2;mem(r1):512"),
    Resources.parse("cpus:1;mem:64;disk:100"),
]
ROLES = ["r1", "r2", "r1/sub", "*"]
HALF = Resources.parse("cpus:0.5;mem:32")

op = st.one_of(
    st.tuples(st.just("add_agent"), st.integers(0, 5), st.integers(0, len(TOTALS) - 1)),
    st.tuples(st.just("remove_agent"), st.integers(0, 5)),
    st.tuples(
        st.just("add_framework"),
        st.integers(0, 3),
        st.sets(st.sampled_from(ROLES), min_size=1, max_size=2),
    ),
    st.tuples(st.just("remove_framework"), st.integers(0, 3)),
    st.tuples(st.just("allocate")),
    st.tuples(st.just("recover"), st.integers(0, 50), st.sampled_from([None, 0, 5, 100])),
    st.tuples(st.just("recover_part"), st.integers(0, 50)),
    st.tuples(st.just("suppress"), st.integers(0, 3)),
    st.tuples(st.just("revive"), st.integers(0, 3)),
    st.tuples(st.just("toggle_agent"), st.integers(0, 5)),
    st.tuples(st.just("tick"), st.integers(1, 50)),
)


def total_of(resources: list[Resources]) -> Resources:
    out = EMPTY
    for r in resources:
        out = out + r
    return out


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["hierarchical", "random"]), st.lists(op, max_size=60))
def test_never_allocated_twice_never_over_allocated(kind: str, ops: list[tuple]) -> None:
    a = create_allocator(kind, AllocatorOptions(seed=1))
    now = 0.0
    agents: dict[str, Resources] = {}
    active_agents: dict[str, bool] = {}
    frameworks: set[str] = set()
    held: list[Allocation] = []  # outstanding allocations as the master would track them
    for step in ops:
        name = step[0]
        if name == "add_agent":
            aid = f"a{step[1]}"
            if aid not in agents:
                agents[aid] = TOTALS[step[2]]
                active_agents[aid] = True
                a.add_agent(aid, TOTALS[step[2]], {})
        elif name == "remove_agent":
            aid = f"a{step[1]}"
            if aid in agents:
                a.remove_agent(aid)
                del agents[aid]
                held = [h for h in held if h.agent_id != aid]
        elif name == "add_framework":
            fid = f"f{step[1]}"
            if fid not in frameworks:
                frameworks.add(fid)
                a.add_framework(fid, sorted(step[2]), now=now)
        elif name == "remove_framework":
            fid = f"f{step[1]}"
            if fid in frameworks:
                a.remove_framework(fid)
                frameworks.discard(fid)
                held = [h for h in held if h.framework_id != fid]
        elif name == "allocate":
            offers = a.allocate(now)
            for offer in offers:
                assert offer.agent_id in agents and active_agents[offer.agent_id]
                assert offer.framework_id in frameworks
                assert offer.resources
                assert offer.resources.allocatable_to(offer.role) == offer.resources
            held.extend(offers)
        elif name in ("recover", "recover_part") and held:
            h = held.pop(step[1] % len(held))
            if name == "recover":
                a.recover_resources(h.framework_id, h.agent_id, h.resources, step[2], now)
            else:
                part = h.resources - (h.resources - HALF)
                a.recover_resources(h.framework_id, h.agent_id, part, 10, now)
                rest = h.resources - part
                if rest:
                    held.append(Allocation(h.framework_id, h.agent_id, h.role, rest))
        elif name in ("suppress", "revive"):
            fid = f"f{step[1]}"
            if fid in frameworks:
                getattr(a, name)(fid)
        elif name == "toggle_agent":
            aid = f"a{step[1]}"
            if aid in agents:
                active_agents[aid] = not active_agents[aid]
                (a.activate_agent if active_agents[aid] else a.deactivate_agent)(aid)
        elif name == "tick":
            now += step[1]

        # Invariants: per agent, what the master holds fits in the agent, with nothing
        # counted twice, and the allocator's own books balance to the agent's total.
        for aid, total in agents.items():
            outstanding = total_of([h.resources for h in held if h.agent_id == aid])
            assert total.contains(outstanding), (aid, outstanding, total)
            agent = a._agents[aid]  # type: ignore[attr-defined]
            books = total_of(list(agent.allocated.values()))
            assert books == outstanding
            assert agent.available + books == total
        stats = a.statistics()
        assert stats.agents == len(agents)
