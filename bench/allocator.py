"""Allocator benchmark in the shape of Apache Mesos's DeclineOffers benchmark.

Every agent is `cpus:24;mem:4096;disk:4096;ports:[31000-32000]`; all frameworks are active in one
role. Measured:

- first_cycle_ms: the first `allocate()` on the fresh cluster (every agent offered once).
- filtered_cycle_ms: median over a few `allocate()` calls after every framework has declined
  every agent with a long filter; such a cycle offers nothing.
- first_cycle_cpu_ms, filtered_cycle_cpu_ms: the same, in CPU time of the process (on a
  machine shared with other jobs, wall time includes waiting for a CPU).

Reaching "every framework declined every agent" through real offer rounds takes
frameworks-many rounds (10 million declines for 10k x 1k), so the setup declines the first
cycle's offers through `recover_resources` like a scheduler would, then installs the remaining
(framework, agent) filters with `HierarchicalAllocator.refuse`, which writes the same filters a
decline writes (one per framework and agent, refusing the agent's whole resources).

With `--tenancy` the cluster is shared the way docs/tenancy.md describes: 100 roles, each under
quota (guarantee cpus:1000, limit cpus:3000; 100 x 1000 of the 10,000 x 24 cpus are held as
headroom until met), frameworks spread evenly over the roles, half of each role's frameworks with offer
constraints (`rack` equals one of 20 racks, or `rack` matches a regex over 10 of them), and
agents carrying a `rack` attribute.

Usage: python bench/allocator.py [--agents N --frameworks M] [--repeat K] [--tenancy]
Prints one JSON line per configuration.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

from mezzo.master.allocator import (
    AgentTraits,
    AllocatorOptions,
    FrameworkPolicy,
    HierarchicalAllocator,
    Quota,
    compile_offer_constraints,
)
from mezzo.resources import Resources

AGENT = "cpus:24;mem:4096;disk:4096;ports:[31000-32000]"
DEFAULTS = [(1_000, 100), (10_000, 1_000), (20_000, 2_000), (50_000, 1_000)]
LONG = 365 * 24 * 3600.0


ROLES = 100
RACKS = 20


def _constraint(role: str, i: int) -> dict[str, object]:
    predicate = (
        {"text_equals": {"value": f"rack-{i % RACKS}"}} if i % 4 == 1
        else {"text_matches": {"regex": "rack-[0-9]"}}  # racks 0-9
    )
    return {"role_constraints": {role: {"groups": [{"attribute_constraints": [
        {"selector": {"attribute_name": "rack"}, "predicate": predicate}]}]}}}


def run(agents: int, frameworks: int, repeat: int, tenancy: bool = False) -> dict[str, object]:
    allocator = HierarchicalAllocator(AllocatorOptions(seed=1))
    now = 0.0
    total = Resources.parse(AGENT)
    for i in range(frameworks):
        role = f"team-{i % ROLES}" if tenancy else "role"
        policy = None
        if tenancy and (i // ROLES) % 2 == 1:  # half of each role's frameworks
            policy = FrameworkPolicy(constraints=compile_offer_constraints(_constraint(role, i), [role]))
        allocator.add_framework(f"framework-{i}", [role], now=now, policy=policy)
    if tenancy:
        for r in range(ROLES):
            allocator.update_quota(f"team-{r}", Quota(guarantees={"cpus": 1000.0},
                                                      limits={"cpus": 3000.0}))
    for i in range(agents):
        traits = AgentTraits(hostname=f"h{i}", attributes={"rack": f"rack-{i % RACKS}"}) if tenancy else None
        allocator.add_agent(f"agent-{i}", total, {}, traits=traits)

    gc.collect()
    started, cpu_started = time.perf_counter(), time.process_time()
    offers = allocator.allocate(now)
    first_ms = (time.perf_counter() - started) * 1000.0
    first_cpu_ms = (time.process_time() - cpu_started) * 1000.0

    # Each framework declines what it was offered, with a long filter.
    for offer in offers:
        allocator.recover_resources(offer.framework_id, offer.agent_id, offer.resources, LONG, now)
    # ... and refuses every other agent the same way (see the module docstring).
    allocator.refuse(
        [f"framework-{i}" for i in range(frameworks)],
        [f"agent-{i}" for i in range(agents)],
        LONG,
        now,
    )

    timings = []
    cpu_timings = []
    count = 0
    for _ in range(repeat):
        now += 1.0
        gc.collect()
        started, cpu_started = time.perf_counter(), time.process_time()
        count += len(allocator.allocate(now))
        timings.append((time.perf_counter() - started) * 1000.0)
        cpu_timings.append((time.process_time() - cpu_started) * 1000.0)
    return {
        "agents": agents,
        "frameworks": frameworks,
        "tenancy": tenancy,
        "first_cycle_ms": round(first_ms, 1),
        "filtered_cycle_ms": round(statistics.median(timings), 1),
        # CPU time of this process over the same calls: what a shared machine's load changes
        # least (wall time there includes waiting for a CPU).
        "first_cycle_cpu_ms": round(first_cpu_ms, 1),
        "filtered_cycle_cpu_ms": round(statistics.median(cpu_timings), 1),
        "offers": len(offers),
        "filtered_offers": count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int)
    parser.add_argument("--frameworks", type=int)
    parser.add_argument("--repeat", type=int, default=5, help="filtered cycles to time")
    parser.add_argument("--tenancy", action="store_true",
                        help="100 roles under quota, half the frameworks with offer constraints")
    args = parser.parse_args()
    if (args.agents is None) != (args.frameworks is None):
        parser.error("give both --agents and --frameworks, or neither")
    configs = [(args.agents, args.frameworks)] if args.agents else DEFAULTS
    for agents, frameworks in configs:
        print(json.dumps(run(agents, frameworks, args.repeat, args.tenancy)), flush=True)


if __name__ == "__main__":
    main()
