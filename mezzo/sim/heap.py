"""How much of the simulator's heap is the master's: the share of garbage collection to charge it.

The simulator runs the master core in one process with every simulated agent, framework and
the engine's events, so the heap the collector walks is much larger than a real master's, and
the collections that happen inside master jobs (measured as part of their CPU time) cost
what collecting the whole simulator costs. A collection's cost grows with the objects it
traverses, so the fair charge is the pause times the master's share of the collector's
tracked objects. `master_share` counts the tracked objects reachable from the master core
without passing through the simulator's own objects (the engine, the node, simulated agents and
frameworks; a `Link` is counted but not its owner) over all tracked objects not frozen
(`gc.freeze()` at start-up takes the imported modules out of every collection, in the real
master too).
"""

from __future__ import annotations

import gc
import types
from typing import Any

from mezzo.sim.master_node import Link

_SKIP = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)


def _simulator_object(obj: Any) -> bool:
    module = getattr(type(obj), "__module__", None) or ""
    if module.startswith("mezzo.sim.") and not isinstance(obj, Link):
        return True
    if isinstance(obj, types.MethodType):
        return _simulator_object(obj.__self__)
    return False


def master_objects(root: Any) -> int:
    """gc-tracked objects reachable from `root` (the master core) that a real master holds."""
    seen = {id(root)}
    stack = [root]
    count = 0
    while stack:
        obj = stack.pop()
        if gc.is_tracked(obj):
            count += 1
        if isinstance(obj, Link):
            continue  # its owner is a simulated agent or framework
        for ref in gc.get_referents(obj):
            if id(ref) in seen or isinstance(ref, _SKIP) or _simulator_object(ref):
                continue
            seen.add(id(ref))
            stack.append(ref)
    return count


def master_share(root: Any) -> float:
    """The master's share (0-1] of the tracked objects a collection of every generation walks."""
    total = sum(len(gc.get_objects(generation)) for generation in range(3))
    return min(1.0, master_objects(root) / max(total, 1))
