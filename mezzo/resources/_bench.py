"""Micro-benchmark of the allocator's hot operations: `python -m mezzo.resources._bench`.

Prints microseconds per operation for a typical agent (`cpus:24;mem:4096;disk:4096;
ports:[31000-32000]`) minus/plus a typical offer. Numbers go into reports, not assertions.
"""

from __future__ import annotations

import timeit

from mezzo.resources.resources import Resources

AGENT = "cpus:24;mem:4096;disk:4096;ports:[31000-32000]"
TASK = "cpus:1.5;mem:512;disk:100;ports:[31005-31006]"


def main(number: int = 100_000) -> None:
    total = Resources.parse(AGENT)
    used = Resources.parse(TASK)
    offered = used.allocate("eng")
    cases = {
        "a + b": lambda: total + used,
        "a - b": lambda: total - used,
        "a.contains(b)": lambda: total.contains(used),
        "quantities() (cached)": lambda: total.quantities(),
        "quantities() (fresh)": lambda: (total - used).quantities(),
        "allocate(role)": lambda: used.allocate("eng"),
        "unallocate()": lambda: offered.unallocate(),
        "allocatable_to(role)": lambda: total.allocatable_to("eng"),
        "parse(agent)": lambda: Resources.parse(AGENT),
        "to_wire()": lambda: total.to_wire(refinement=False),
    }
    for name, fn in cases.items():
        n = number // 10 if name in ("parse(agent)", "to_wire()") else number
        best = min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6
        print(f"{name:24s} {best:7.2f} µs")


if __name__ == "__main__":
    main()
