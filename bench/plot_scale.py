"""Plot `bench/scale.py`'s rows against the number of agents: launch overhead beside the paper's
Fig. 10, and (when the rows have them) the failover times, split into election and recovery.

    .venv/bin/python bench/scale.py ... | tee scale.jsonl
    .venv/bin/python bench/plot_scale.py scale.jsonl [more.jsonl ...] docs/img/scale-overhead.png

Every input line that is a JSON object is a row; lines that are not are skipped. Rows of the
same size from several files are all drawn (one point each). The paper's points are the two
figures it states in the text of §6.5 for Fig. 10 (about 0.25 s at 10,000 emulated slaves,
about 0.75 s at 50,000), not values read off its plot.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

PAPER = [(10_000, 0.25), (50_000, 0.75)]
OVERHEAD_GOAL_S = 0.1
FAILOVER_GOAL_S = 5.0


def read_rows(paths: list[Path]) -> list[dict[str, Any]]:
    rows = []
    for path in paths:
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                rows.append(json.loads(line))
    rows.sort(key=lambda r: r["agents"])
    return rows


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not math.isnan(value) else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+", help="JSON lines printed by bench/scale.py")
    parser.add_argument("output", type=Path, help="the PNG to write")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_rows(args.results)
    if not rows:
        raise SystemExit("no rows in " + ", ".join(map(str, args.results)))
    failovers = [r for r in rows if r.get("failover_s") is not None or r.get("failover_elected_s") is not None]
    panels = 2 if failovers else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    ax = axes[0][0]
    measured = [r for r in rows if not math.isnan(_number(r.get("launch_overhead_p50_s")))]
    agents = [r["agents"] for r in measured]
    ax.plot(agents, [r["launch_overhead_p50_s"] for r in measured], "o-", label="mezzo, p50 (real TCP)")
    ax.plot(agents, [_number(r.get("launch_overhead_p99_s")) for r in measured], "x--", label="mezzo, p99")
    ax.plot(*zip(*PAPER, strict=True), "s:", color="gray", label="Mesos paper, Fig. 10 (stated)")
    ax.axhline(OVERHEAD_GOAL_S, color="green", linewidth=0.8, linestyle="-.", label="goal: p50 ≤ 0.1 s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("agents")
    ax.set_ylabel("task launch overhead (s)")
    frameworks = sorted({r.get("frameworks", 0) for r in measured})
    ax.set_title(f"Launch overhead vs. cluster size ({', '.join(map(str, frameworks))} busy frameworks)",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if failovers:
        ax = axes[0][1]
        # Several rows of one size (several runs) stand side by side.
        seen: dict[int, int] = {}
        sizes = []
        for r in failovers:
            k = seen[r["agents"]] = seen.get(r["agents"], -1) + 1
            sizes.append(r["agents"] * 1.18**k)
        # Rows of older runs carry only the total: drawn whole, as the election part.
        elected = [_number(r.get("failover_elected_s", r.get("failover_s"))) for r in failovers]
        recovery = [_number(r.get("failover_recovery_s", 0.0)) for r in failovers]
        width = [s * 0.15 for s in sizes]
        ax.bar(sizes, elected, width=width, label="until the standby leads (ZK session expiry)")
        ax.bar(sizes, recovery, width=width, bottom=elected,
               label="until every agent and framework is back")
        for size, r in zip(sizes, failovers, strict=True):
            if r.get("failover_s") is None:
                ax.annotate("incomplete", (size, _number(r.get("failover_elected_s"))), fontsize=7)
            elif r.get("lost"):
                ax.annotate(f"{r['lost']} lost", (size, r["failover_s"]), fontsize=7)
        ax.axhline(FAILOVER_GOAL_S, color="green", linewidth=0.8, linestyle="-.", label="goal: ≤ 5 s")
        ax.set_xscale("log")
        ax.set_xlabel("agents")
        ax.set_ylabel("leader failover (s)")
        ax.set_title("Failover: SIGKILL of the leader → everything back", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=120)


if __name__ == "__main__":
    main()
