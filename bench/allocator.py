"""Allocator benchmark in the shape of Apache Mesos's DeclineOffers benchmark.

Every agent is `cpus:24;mem:4096;disk:4096;ports:[31000-32000]`; all frameworks are active in one
role. Measured:

- first_cycle_ms: the first `allocate()` on the fresh cluster (every agent offered once).
- filtered_cycle_ms: median over a few `allocate()` calls after every framework has declined
  every agent with a long filter; such a cycle offers nothing.

Reaching "every framework declined every agent" through real offer rounds takes
frameworks-many rounds (10 million declines for 10k x 1k), so the setup declines the first
cycle's offers through `recover_resources` like a scheduler would, then installs the remaining
(framework, agent) filters with `HierarchicalAllocator.refuse`, which writes the same filters a
decline writes (one per framework and agent, refusing the agent's whole resources).

Usage: python bench/allocator.py [--agents N --frameworks M] [--repeat K]
Prints one JSON line per configuration.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

from mezzo.master.allocator import AllocatorOptions, HierarchicalAllocator
from mezzo.resources import Resources

AGENT = "cpus:24;mem:4096;disk:4096;ports:[31000-32000]"
DEFAULTS = [(1_000, 100), (10_000, 1_000), (20_000, 2_000), (50_000, 1_000)]
LONG = 365 * 24 * 3600.0


def run(agents: int, frameworks: int, repeat: int) -> dict[str, object]:
    allocator = HierarchicalAllocator(AllocatorOptions(seed=1))
    now = 0.0
    total = Resources.parse(AGENT)
    for i in range(frameworks):
        allocator.add_framework(f"framework-{i}", ["role"], now=now)
    for i in range(agents):
        allocator.add_agent(f"agent-{i}", total, {})

    gc.collect()
    started = time.perf_counter()
    offers = allocator.allocate(now)
    first_ms = (time.perf_counter() - started) * 1000.0

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
    count = 0
    for _ in range(repeat):
        now += 1.0
        gc.collect()
        started = time.perf_counter()
        count += len(allocator.allocate(now))
        timings.append((time.perf_counter() - started) * 1000.0)
    return {
        "agents": agents,
        "frameworks": frameworks,
        "first_cycle_ms": round(first_ms, 1),
        "filtered_cycle_ms": round(statistics.median(timings), 1),
        "offers": len(offers),
        "filtered_offers": count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int)
    parser.add_argument("--frameworks", type=int)
    parser.add_argument("--repeat", type=int, default=5, help="filtered cycles to time")
    args = parser.parse_args()
    if (args.agents is None) != (args.frameworks is None):
        parser.error("give both --agents and --frameworks, or neither")
    configs = [(args.agents, args.frameworks)] if args.agents else DEFAULTS
    for agents, frameworks in configs:
        print(json.dumps(run(agents, frameworks, args.repeat)), flush=True)


if __name__ == "__main__":
    main()
