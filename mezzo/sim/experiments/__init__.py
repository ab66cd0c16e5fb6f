"""The paper's experiments (§6 of the Mesos paper), one module each, by name.

Each module has `TITLE`, `run(scale, seed, progress, **options) -> Result` and
`plot(result, figure)`. `mezzo sim list` shows them; `mezzo sim run NAME` runs one.
Modules are imported only when their experiment runs.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# name -> one-line description (kept here so listing them imports nothing heavy)
EXPERIMENTS: dict[str, str] = {
    "macro": "4 frameworks share 96 agents under DRF vs static partitions (Figs 5-7, Tables 4-5)",
    "overhead": "one framework alone through mezzo vs the same work scheduled directly (§6.2)",
    "locality": "16 Hadoop-like frameworks on 93 agents: static vs delay scheduling 0/1/5 s (Fig. 8)",
    "spark": "logistic regression, Hadoop-style vs Spark-style iterations (Fig. 9)",
    "scalability": "200 frameworks, 1,000 -> 50,000 agents: overhead of launching a task (Fig. 10)",
    "failover": "master failover with 200 frameworks and 200 -> 50,000 agents: MTTR (§6.6)",
    "model": "§4.2's analytic model (Table 2) vs simulation",
}

SCALES = ("small", "paper")


def load(name: str) -> ModuleType:
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r} (known: {', '.join(EXPERIMENTS)})")
    return importlib.import_module(f"mezzo.sim.experiments.{name}")
