"""A simulated cluster: one engine, the master node, agents and frameworks, and failover.

    cluster = SimCluster(seed=1)
    cluster.add_agents(96, "cpus:4;mem:15360")
    cluster.add_framework(SomeFramework(cluster.engine, ...))
    cluster.run(until=cluster.engine.now + 600)

Agents are mezzo's real agent core (`agent="core"`, `mezzo.sim.core_agent`, the default) or
the lighter stand-in speaking the same protocol (`agent="model"`, `mezzo.sim.agent`).

Failover (`fail_over`): the leading master dies; after the ZooKeeper session timeout a standby
is elected, recovers the registry (the same store) and starts serving; every agent and
framework learns of the new leader a detection delay later and re-registers after a jittered
backoff (the agent's `--registration_backoff_factor`, the SDK's reconnect backoff).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from mezzo.master.base import MasterOptions
from mezzo.resources import Resources
from mezzo.sim.agent import SimAgent
from mezzo.sim.core_agent import CoreAgent
from mezzo.sim.engine import Engine
from mezzo.sim.framework import SimFramework
from mezzo.sim.master_node import CostModel, MasterNode, cost_model
from mezzo.store.memory import MemoryStore


class SimCluster:
    def __init__(
        self,
        *,
        seed: int = 0,
        latency: float | None = None,
        cost: str | CostModel = "fixed",
        options: MasterOptions | None = None,
        codec: bool = True,
        keep_samples: bool = False,
        agent: str = "core",
    ) -> None:
        if agent not in ("core", "model"):
            raise ValueError(f"unknown agent {agent!r} (expected 'core' or 'model')")
        self.agent_kind = agent
        self.seed = seed
        self.rng = random.Random(seed)
        self.engine = Engine()
        self.latency = latency
        self.cost = cost_model(cost) if isinstance(cost, str) else cost
        self.options = options or MasterOptions()
        self.codec = codec
        self.store = MemoryStore()
        self._masters = 0
        self.keep_samples = keep_samples
        self.master = self._new_master()
        self.agents: list[SimAgent | CoreAgent] = []
        self.frameworks: list[SimFramework] = []

    def _new_master(self) -> MasterNode:
        self._masters += 1
        return MasterNode(
            self.engine, latency=self.latency, cost=self.cost, options=self.options,
            seed=self.seed * 1000 + self._masters, store=self.store,
            master_id=f"sim-master-{self._masters}", codec=self.codec,
            keep_samples=self.keep_samples,
        )

    # ------------------------------------------------------------------ building

    def add_agents(self, count: int, resources: str, *, prefix: str = "node",
                   spread: float = 0.0, names: list[str] | None = None
                   ) -> list[SimAgent | CoreAgent]:
        """`count` agents (hostnames `names`, or prefix + index) registering over `spread`
        seconds (at once when 0)."""
        total = Resources.parse(resources)
        added = []
        for i in range(count):
            index = len(self.agents)
            name = names[i] if names is not None else f"{prefix}{index}"
            agent: SimAgent | CoreAgent = (
                CoreAgent(self.engine, index, name, total) if self.agent_kind == "core"
                else SimAgent(self.engine, index, name, total))
            self.agents.append(agent)
            added.append(agent)
            delay = self.rng.uniform(0.0, spread) if spread > 0 else 0.0
            self.engine.after(delay, agent.connect, self.master)
        return added

    def add_framework(self, framework: SimFramework, at: float | None = None) -> SimFramework:
        self.frameworks.append(framework)
        when = self.engine.now if at is None else at
        self.engine.at(when, framework.connect, self.master)
        return framework

    def hostnames(self) -> list[str]:
        return [a.hostname for a in self.agents]

    # ------------------------------------------------------------------ running

    def run(self, until: float | None = None, stop: Callable[[], bool] | None = None,
            progress: Callable[[float], None] | None = None) -> None:
        self.engine.run(until=until, stop=stop, progress=progress)

    def run_for(self, seconds: float, **kw: object) -> None:
        self.run(until=self.engine.now + seconds, **kw)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ failover

    def fail_over(
        self,
        *,
        session_timeout: float,
        detect_delay: float = 0.05,
        agent_backoff: float = 1.0,
        framework_backoff: float = 1.0,
        on_elected: Callable[[MasterNode], None] | None = None,
        clients: Iterable[SimAgent | SimFramework] | None = None,
    ) -> None:
        """Kill the leading master now; a standby takes over `session_timeout` later."""
        old = self.master
        old.crash()
        for agent in self.agents:
            agent.master_lost()
        for framework in self.frameworks:
            framework.master_lost()
        self.engine.after(session_timeout, self._elect, detect_delay, agent_backoff,
                          framework_backoff, on_elected)

    def _elect(self, detect_delay: float, agent_backoff: float, framework_backoff: float,
               on_elected: Callable[[MasterNode], None] | None) -> None:
        self.master = new = self._new_master()
        if on_elected is not None:
            on_elected(new)
        rng = self.rng
        # Each client's detector hears of the new leader, then it waits a jittered backoff
        # in [0, factor) before subscribing (as the agent's registration backoff does).
        for agent in self.agents:
            self.engine.after(detect_delay + rng.uniform(0.0, agent_backoff), agent.connect, new)
        for framework in self.frameworks:
            self.engine.after(detect_delay + rng.uniform(0.0, framework_backoff),
                              framework.connect, new)
