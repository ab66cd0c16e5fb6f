"""Run `mezzo master` with the core's entry points timed (`mezzo.sim.coretime`), on over a window.

    python -m bench.coretime OUT_DIR master --zk ...

A launcher like `mezzo.testing.profiled`: SIGUSR1 resets the counters and switches the timers
on, SIGUSR2 switches them off and writes `OUT_DIR/master.<pid>.json` (calls and CPU µs per call
per timed function, and per function and position since the event loop last woke: the loop's
`select()` is watched, `CoreTimes.watch_selector`). `bench/scale.py --cprofile DIR` sends those signals around its steady
window; to time instead of profile, run a copy of it whose launcher is this module:

    sed 's/"mezzo.testing.profiled"/"bench.coretime"/' bench/scale.py > /var/tmp/scale_coretime.py
    TMPDIR=/var/tmp PYTHONPATH=$PWD flock /work/wt/bench.lock .venv/bin/python \\
        /var/tmp/scale_coretime.py --sizes 1000 --settle 30 --window 20 --pin --cprofile DIR

The simulator's side: `python -m mezzo.sim.coretime` (docs/evaluation.md, "The core's CPU in
the real process").
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType

from mezzo.sim.coretime import CoreTimes


def main() -> int:
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    out.mkdir(parents=True, exist_ok=True)
    times = CoreTimes().install().watch_selector()
    name = argv[0] if argv else "mezzo"

    def on(_signum: int, _frame: FrameType | None) -> None:
        times.reset()
        times.on = True

    def off(_signum: int, _frame: FrameType | None) -> None:
        times.on = False
        times.dump(out / f"{name}.{os.getpid()}.json", pid=os.getpid())

    signal.signal(signal.SIGUSR1, on)
    signal.signal(signal.SIGUSR2, off)
    if os.environ.get("CORETIME_FROM_START"):
        # For a benchmark that sends no signals (`bench/launch.py`): on from the start,
        # written when the master exits.
        import atexit

        times.on = True
        atexit.register(off, 0, None)
    from mezzo.cli.main import main as mezzo_main

    sys.argv = ["mezzo", *argv]
    mezzo_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
