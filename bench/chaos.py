"""Chaos runs (issue 9): a real HA cluster under a seeded storm of crashes, pauses and a
ZooKeeper outage while a framework runs short tasks; prints the faults injected, the tasks and
the verdict of each run (see mezzo/testing/chaos.py for the scenario and the verdict).

    .venv/bin/python bench/chaos.py --seeds 1 2 3 4 5
    .venv/bin/python bench/chaos.py --seeds 7 --tasks 200 --keep /tmp/chaos-7   # keep the logs

Exits 1 if any run breaks a rule. Results are recorded in docs/benchmarks.md ("Chaos").
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mezzo.testing.chaos import ChaosOptions, run_chaos  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--tasks", type=int, default=ChaosOptions.tasks)
    parser.add_argument("--keep", type=Path, help="keep each run's work dir under this directory")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    failed = 0
    for seed in args.seeds:
        work = Path(tempfile.mkdtemp(prefix=f"mezzo-chaos-{seed}-"))
        started = time.monotonic()
        verdict, faults = run_chaos(ChaosOptions(seed=seed, tasks=args.tasks), work)
        elapsed = time.monotonic() - started
        print(json.dumps({"seed": seed, "seconds": round(elapsed), "ok": verdict.ok,
                          "faults": faults, **verdict.figures}), flush=True)
        for violation in verdict.violations:
            print(f"  VIOLATION {violation}", flush=True)
        failed += not verdict.ok
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copytree(work, args.keep / f"seed-{seed}", dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.sock"))
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(args.seeds) - failed} of {len(args.seeds)} runs passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
