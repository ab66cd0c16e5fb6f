"""The master core's CPU time per call, measured the same way in a real master and in the simulator.

The simulator charges the master the CPU time the real core takes in the simulator's process
(`master_node.MeasuredCost`). Whether the same functions cost the same in a real master, whose
caches the network stack, the event loop and the other processes share, is a measurement: this
module wraps a fixed set of the core's entry points (`TIMED`) with `time.thread_time_ns` and
counts calls and CPU per function while switched on. The same wrappers run in both processes,
so the two sides are compared like with like, without a profiler's inflation. Each call is
also tagged with its position since the event loop last woke (below: "cold", the
first core call after a `select()` that slept, then w2, w3-4, ...), from the loop's `select()`
in a real master and the simulated loop's wake-ups in the simulator:

- the real master: `bench/coretime.py` is a launcher for `mezzo master` (as
  `mezzo.testing.profiled` is, switched on by SIGUSR1 and dumped by SIGUSR2 around the
  benchmark's steady window);
- the simulator: `simulated()` runs `bench/scale.py`'s shape (`calibration.scale_shape`) with
  the timers on over a steady window.

docs/evaluation.md, "The core's CPU in the real process" and "Cold and warm messages", gives
the commands and the figures.
"""

from __future__ import annotations

import importlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

# (module, class, methods). A scheduler or agent call is keyed by its type as well.
TIMED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("mezzo.master.core", "Master",
     ("scheduler_call", "agent_call", "subscribe", "agent_subscribe", "allocate", "tick")),
    ("mezzo.master.allocator.hierarchical", "HierarchicalAllocator",
     ("allocate", "recover_resources", "add_framework", "update_allocation")),
    # The outboxes: inside the core's calls, and not the same work in the two processes (the
    # real one also queues the record on its socket or stream, which the simulator charges
    # as the shell's per-record and per-write costs), so compared net of them.
    ("mezzo.master.http", "HttpOutbox", ("send_framework", "send_agent")),
    ("mezzo.sim.master_node", "_SimOutbox", ("send_framework", "send_agent")),
)

# CPU ns this thread spent in garbage collections (the gc callback's running total).
_GC = [0, 0]


def _gc_timer(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _GC[1] = time.thread_time_ns()
    else:
        _GC[0] += time.thread_time_ns() - _GC[1]


# The regimes a timed call is tagged with when the event loop's `select()` is watched
# (`CoreTimes.watch_selector`): "cold" if a `select()` slept since the previous top-level timed
# call (the call is the first core call after the loop woke up), else "wN" by its position N
# among the top-level calls since that wake-up (bucketed by WARM_BOUNDS: w2, w3-4, w5-8...).
# SLEPT_NS: a `select()` that took longer than this slept (a poll that finds work ready returns
# in a few µs).
SLEPT_NS = 20_000
WARM_BOUNDS = (2, 4, 8, 16, 64)


def _warm_name(position: int) -> str:
    low = 2
    for high in WARM_BOUNDS:
        if position <= high:
            return f"w{low}" if low == high else f"w{low}-{high}"
        low = high + 1
    return f"w{low}+"


class CoreTimes:
    """Calls and CPU nanoseconds per timed function (inclusive of what it calls)."""

    def __init__(self) -> None:
        self.on = False
        self.calls: dict[str, int] = defaultdict(int)
        self.ns: dict[str, int] = defaultdict(int)
        self.gc_ns: dict[str, int] = defaultdict(int)  # collections inside the calls
        self.outbox_ns: dict[str, int] = defaultdict(int)  # outbox calls inside the calls
        # With the selector watched: the same per (function, regime), and the selects seen.
        self.regime_calls: dict[tuple[str, str], int] = defaultdict(int)
        self.regime_ns: dict[tuple[str, str], int] = defaultdict(int)
        self.regime_gc_ns: dict[tuple[str, str], int] = defaultdict(int)
        self.regime_outbox_ns: dict[tuple[str, str], int] = defaultdict(int)
        self.selects = 0
        self.sleeps = 0
        self.slept_ns = 0
        self._slept: int | None = None  # how long the last select slept, if one did since the last call
        self._position = 0  # top-level calls since the loop last woke
        self._regime = "cold"  # the regime of the top-level call under way
        self._stack: list[str] = []  # the timed calls under way, outermost first
        self._undo: list[Callable[[], None]] = []

    def reset(self) -> None:
        self.calls.clear()
        self.ns.clear()
        self.gc_ns.clear()
        self.outbox_ns.clear()
        self.regime_calls.clear()
        self.regime_ns.clear()
        self.regime_gc_ns.clear()
        self.regime_outbox_ns.clear()
        self.selects = self.sleeps = self.slept_ns = 0
        self._slept = None

    def watch_selector(self) -> CoreTimes:
        """Tag every timed call with the loop's idleness before it (`REGIMES`): wraps
        `select()` of the selector class asyncio's loop uses (`selectors.DefaultSelector`), timing
        each call with the monotonic clock."""
        import selectors

        cls: Any = selectors.DefaultSelector
        original = cls.select
        clock = time.monotonic_ns

        def select(this: Any, timeout: float | None = None) -> Any:
            started = clock()
            try:
                return original(this, timeout)
            finally:
                if self.on:
                    slept = clock() - started
                    self.selects += 1
                    if slept > SLEPT_NS:
                        self.sleeps += 1
                        self.slept_ns += slept
                        self._slept = slept

        cls.select = select
        self._undo.append(lambda: setattr(cls, "select", original))
        return self

    def woke(self, slept: float) -> None:
        """The simulated loop woke after `slept` seconds (`MasterNode.on_wake`): the next
        top-level call is tagged as a real one after a `select()` that slept that long."""
        if self.on:
            self.sleeps += 1
            self.slept_ns += int(slept * 1e9)
            self._slept = int(slept * 1e9)

    def _enter_regime(self) -> None:
        slept, self._slept = self._slept, None
        if slept is not None:
            self._position = 0
        self._position += 1
        self._regime = "cold" if self._position == 1 else _warm_name(self._position)

    def install(self) -> CoreTimes:
        import gc

        if _gc_timer not in gc.callbacks:
            gc.callbacks.append(_gc_timer)
            self._undo.append(lambda: gc.callbacks.remove(_gc_timer))
        for module_name, class_name, methods in TIMED:
            cls = getattr(importlib.import_module(module_name), class_name)
            for method in methods:
                self._wrap(cls, class_name, method)
        return self

    def uninstall(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _wrap(self, cls: type, class_name: str, method: str) -> None:
        original = getattr(cls, method)
        name = f"{class_name}.{method}"
        typed = method in ("scheduler_call", "agent_call")
        clock = time.thread_time_ns
        calls, ns, gc_ns, outbox_ns, stack = self.calls, self.ns, self.gc_ns, self.outbox_ns, self._stack
        outbox = class_name.endswith("Outbox")
        r_ns, r_gc, r_calls, r_outbox = self.regime_ns, self.regime_gc_ns, self.regime_calls, self.regime_outbox_ns

        def timed(this: Any, *args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return original(this, *args, **kwargs)
            key = f"{name}.{args[0].type}" if typed and args else name
            if not stack:
                self._enter_regime()
            gc0 = _GC[0]
            stack.append(key)
            started = clock()
            try:
                return original(this, *args, **kwargs)
            finally:
                spent = clock() - started
                stack.pop()
                ns[key] += spent
                collected = _GC[0] - gc0
                gc_ns[key] += collected
                calls[key] += 1
                tagged = (key, self._regime)
                r_ns[tagged] += spent
                r_gc[tagged] += collected
                r_calls[tagged] += 1
                if outbox:
                    for outer in stack:
                        outbox_ns[outer] += spent
                        r_outbox[(outer, self._regime)] += spent

        had = method in cls.__dict__
        setattr(cls, method, timed)
        self._undo.append(
            (lambda: setattr(cls, method, original)) if had else (lambda: delattr(cls, method)))

    def summary(self, **extra: Any) -> dict[str, Any]:
        """Per function: calls, mean CPU µs per call and of it in garbage collections."""
        return {**extra, "functions": {
            key: {"calls": self.calls[key], "us_per_call": round(self.ns[key] / 1e3 / self.calls[key], 2),
                  "gc_us_per_call": round(self.gc_ns[key] / 1e3 / self.calls[key], 2),
                  "outbox_us_per_call": round(self.outbox_ns[key] / 1e3 / self.calls[key], 2)}
            for key in sorted(self.ns) if self.calls[key]},
            "selects": self.selects, "sleeps": self.sleeps,
            "slept_ms": round(self.slept_ns / 1e6, 1),
            "regimes": {
                f"{key}@{regime}": {
                    "calls": n, "us_per_call": round(self.regime_ns[(key, regime)] / 1e3 / n, 2),
                    "gc_us_per_call": round(self.regime_gc_ns[(key, regime)] / 1e3 / n, 2),
                    "outbox_us_per_call": round(self.regime_outbox_ns[(key, regime)] / 1e3 / n, 2)}
                for (key, regime), n in sorted(self.regime_calls.items()) if n}}

    def dump(self, path: Path, **extra: Any) -> None:
        path.write_text(json.dumps(self.summary(**extra), indent=1) + "\n")


def simulated(agents: int = 1000, frameworks: int = 200, settle: float = 60.0,
              window: float = 20.0, factor: float = 1.0) -> dict[str, Any]:
    """`bench/scale.py`'s shape in the simulator (as `calibration.scale_shape`), the timers on
    over `window` virtual seconds after `settle`: the simulator's side of the comparison. The
    simulated master is charged `factor` times the core's CPU (1.0: the simulator's own
    measurement, which `master_node.CORE_SLOWDOWN` is derived from, does not depend on it)."""
    import random

    from mezzo.core.gc_tuning import tune_for_daemon
    from mezzo.sim.cluster import SimCluster
    from mezzo.sim.frameworks import ContinuousFramework, normal_duration

    tune_for_daemon()
    times = CoreTimes().install()
    try:
        cluster = SimCluster(seed=1, cost="measured")
        cluster.master.cost.core_factor = factor  # type: ignore[attr-defined]
        cluster.master.on_wake = times.woke
        rng = random.Random(1)
        cluster.add_agents(agents, "cpus:8;mem:16384;disk:100000;ports:[31000-32000]", spread=10.0)
        load = [cluster.add_framework(ContinuousFramework(
            cluster.engine, f"l{i}", task=(1.0, 2048.0), duration=normal_duration(rng, 30.0, 10.0),
            kill=True)) for i in range(frameworks)]
        cluster.run_for(settle)
        launched0 = sum(f.launched for f in load)  # type: ignore[attr-defined]
        times.reset()
        times.on = True
        cluster.run_for(window)
        times.on = False
        launches = sum(f.launched for f in load) - launched0  # type: ignore[attr-defined]
    finally:
        times.uninstall()
    return times.summary(agents=agents, window_s=window, launches=launches)


def simulated_rate(per_accept: int = 10, agents: int = 100, seconds: float = 10.0) -> dict[str, Any]:
    """`bench/launch.py rate`'s shape (as `calibration.launch_rate`: the master saturated, every
    offer accepted with `per_accept` tasks), the timers on throughout."""
    from mezzo.core.gc_tuning import tune_for_daemon
    from mezzo.sim.calibration import _Flood
    from mezzo.sim.cluster import SimCluster

    tune_for_daemon()
    times = CoreTimes().install()
    try:
        cluster = SimCluster(seed=1, cost="measured")
        cluster.master.cost.core_factor = 1.0  # type: ignore[attr-defined]
        cluster.master.on_wake = times.woke
        cluster.add_agents(agents, "cpus:100000;mem:10000000")
        fw = _Flood(cluster.engine, per_accept)
        cluster.add_framework(fw)
        times.on = True
        cluster.run_for(2.0 + seconds)
        times.on = False
    finally:
        times.uninstall()
    return times.summary(agents=agents, per_accept=per_accept, tasks=fw.running)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["rate"]:
        out = simulated_rate(*(int(a) for a in sys.argv[2:3]))
    else:
        out = simulated(*(int(a) for a in sys.argv[1:2]))
    print(json.dumps(out, indent=1))
