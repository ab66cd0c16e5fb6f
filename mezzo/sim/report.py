"""Experiment results and their three outputs: JSON, a Markdown table and a plot.

Every experiment returns a `Result`; `write(result, out_dir, plot)` writes
`NAME.json` (`{"experiment", "scale", "seed", "rows", "paper", ...}`), `NAME.md` (the paper's
figures beside mezzo's) and `NAME.png` (matplotlib, imported only here and only when a plot
is written, so `mezzo --version` never loads it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass
class Result:
    experiment: str
    scale: str
    seed: int
    rows: list[dict[str, Any]]
    paper: dict[str, Any]
    # Extra top-level keys (e.g. macro's utilisation gains) and run facts (cost model,
    # virtual seconds simulated, wall seconds).
    extra: dict[str, Any] = field(default_factory=dict)
    # Markdown: the comparison table, paper beside mezzo.
    table: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "scale": self.scale,
            "seed": self.seed,
            "rows": self.rows,
            "paper": self.paper,
            **self.extra,
        }


class Progress(Protocol):
    """Where long runs report how far they got (a rich progress bar in the CLI)."""

    def start(self, label: str, total: float) -> None: ...

    def update(self, completed: float) -> None: ...


class NoProgress:
    def start(self, label: str, total: float) -> None:
        pass

    def update(self, completed: float) -> None:
        pass


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.2f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write(result: Result, out_dir: Path, plot: Callable[[Result, Any], None] | None) -> list[Path]:
    """Write NAME.json, NAME.md and (if `plot`) NAME.png; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = result.experiment
    paths = [out_dir / f"{name}.json", out_dir / f"{name}.md"]
    paths[0].write_text(json.dumps(result.to_json(), indent=2, sort_keys=False) + "\n")
    paths[1].write_text(f"# {name} ({result.scale} scale, seed {result.seed})\n\n{result.table}")
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(7, 4.2), dpi=100)
        plot(result, fig)
        fig.tight_layout()
        png = out_dir / f"{name}.png"
        # No timestamps in the file: same result, same bytes.
        fig.savefig(png, metadata={"Software": None})
        plt.close(fig)
        paths.append(png)
    return paths
