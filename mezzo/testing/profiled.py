"""Run a mezzo command under cProfile switched on and off by signals: a benchmark's window only.

    python -m mezzo.testing.profiled OUT_DIR master --zk ...

SIGUSR1 turns the profiler on; SIGUSR2 turns it off and writes the statistics gathered so far
to `OUT_DIR/<command>.<pid>.prof` (read them with `pstats`). The benchmark sends the signals
around its steady window (`bench/scale.py --cprofile DIR`), so start-up and the measurements'
own requests stay out of the profile. cProfile inflates Python time (about 1.5x in the master):
use it for where the time goes, and the unprofiled runs for how much.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
from pathlib import Path
from types import FrameType


def main() -> int:
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    out.mkdir(parents=True, exist_ok=True)
    profile = cProfile.Profile()
    name = argv[0] if argv else "mezzo"

    def on(_signum: int, _frame: FrameType | None) -> None:
        profile.enable()

    def off(_signum: int, _frame: FrameType | None) -> None:
        profile.disable()
        profile.dump_stats(out / f"{name}.{os.getpid()}.prof")

    signal.signal(signal.SIGUSR1, on)
    signal.signal(signal.SIGUSR2, off)
    from mezzo.cli.main import main as mezzo_main

    sys.argv = ["mezzo", *argv]
    mezzo_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
