"""Plot `bench/scale.py`'s launch overhead against the number of agents, beside the paper.

    .venv/bin/python bench/scale.py ... | tee scale.jsonl
    .venv/bin/python bench/plot_scale.py scale.jsonl docs/img/scale-overhead.png

The paper's points are the two figures it states in the text of §6.5 for Fig. 10 (about 0.25 s
at 10,000 emulated slaves, about 0.75 s at 50,000), not values read off its plot.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PAPER = [(10_000, 0.25), (50_000, 0.75)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="JSON lines printed by bench/scale.py")
    parser.add_argument("output", type=Path, help="the PNG to write")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.startswith("{")]
    rows.sort(key=lambda r: r["agents"])
    agents = [r["agents"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(agents, [r["launch_overhead_p50_s"] for r in rows], "o-", label="mezzo, p50 (real TCP)")
    ax.plot(agents, [r["launch_overhead_p99_s"] for r in rows], "x--", label="mezzo, p99")
    ax.plot(*zip(*PAPER, strict=True), "s:", color="gray", label="Mesos paper, Fig. 10 (stated)")
    ax.axhline(0.1, color="green", linewidth=0.8, linestyle="-.", label="goal: p50 ≤ 0.1 s")
    ax.set_xscale("log")
    ax.set_xlabel("agents")
    ax.set_ylabel("task launch overhead (s)")
    ax.set_title("Launch overhead vs. cluster size (200 busy frameworks)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=120)


if __name__ == "__main__":
    main()
