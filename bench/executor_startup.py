"""Start-up of the built-in command executor: `python -S -E command.py` from exec to exit.

Without its environment the executor imports everything it needs, says what is missing on
stderr and exits 1: the time from start to exit is the interpreter's start-up plus the
executor's imports, which is what every exec'd executor pays before it can SUBSCRIBE. Several
scripts (e.g. the bundled one and one from an older checkout) are run alternately, so that a
busy machine slows them alike. One JSON line per script: wall-clock p50/min and the CPU time
of the child per start.

    .venv/bin/python bench/executor_startup.py
    .venv/bin/python bench/executor_startup.py /path/to/old/mezzo/executor/command.py mezzo/executor/command.py

Recorded in docs/benchmarks.md, "Command executor start-up".
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BUNDLED = Path(__file__).resolve().parents[1] / "mezzo" / "executor" / "command.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scripts", nargs="*", default=[str(BUNDLED)])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20, help="runs of each not counted")
    args = parser.parse_args()
    wall: dict[str, list[float]] = {s: [] for s in args.scripts}
    cpu: dict[str, float] = dict.fromkeys(args.scripts, 0.0)
    for i in range(args.warmup + args.runs):
        for script in args.scripts:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-S", "-E", script], env={},
                           stderr=subprocess.DEVNULL, check=False)
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if i >= args.warmup:
                wall[script].append(elapsed * 1000)
                cpu[script] += (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    for script in args.scripts:
        print(json.dumps({
            "bench": "executor_startup", "script": script, "runs": args.runs,
            "wall_p50_ms": round(statistics.median(wall[script]), 2),
            "wall_min_ms": round(min(wall[script]), 2),
            "cpu_ms_per_start": round(cpu[script] / args.runs * 1000, 2),
        }), flush=True)


if __name__ == "__main__":
    main()
