"""The master's CPU cost per v1 scheduler call over HTTP (issue 11: the HTTP shell's share).

A real `mezzo master` process; `--frameworks` frameworks subscribe (`mezzo/testing/raw_scheduler.py`)
and each then posts one call after another on its own keep-alive connection, the next as soon
as the 202 is back, as a pymesos scheduler does (one call at a time per driver). The requests
are the bytes pymesos's `http.client` sends (Host, Accept-Encoding: identity, Content-Length,
Content-Type, Mesos-Stream-Id), written on a raw socket from `--clients` processes: the
clients must cost the shared CPUs as little as possible, since the master is what is measured.
`http.client` writes a request's head and body apart (two `send()`s); `--split` does too, else
each request is one write.

The call (`--call`) is one the master accepts with 202 and really handles, but that emits no
event, so that the figure is the cost of a request and not of stream records as well:

- `reconcile` (default): implicit RECONCILE of a framework with no tasks: decoded, the
  framework and stream id checked, counted, the (empty) task set walked;
- `suppress` / `revive`: the allocator's suppression of the framework's role toggled (revive
  also asks for an allocation run; with no agents the run is cheap);

ACKNOWLEDGE, the launch path's most frequent call, needs real updates from agents, whose own
requests would then share the master's CPU: `bench/launch.py rate` is that figure.

The result: requests per second, the master's CPU time (user + system, psutil) per request
over the window, and what the same call costs the decoder and the master core alone (measured
in this process on an in-process `Master` with a subscribed framework); the difference is the
HTTP shell's cost per request (aiohttp, middlewares, the handler, the 202 and its write).

    .venv/bin/python bench/scheduler_calls.py --frameworks 16 --clients 2 --seconds 10
    MEZZO_BENCH_PROFILE=/tmp/master.prof .venv/bin/python bench/scheduler_calls.py  # cProfile

Results are recorded in docs/benchmarks.md ("Scheduler calls: the HTTP shell's cost").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mezzo.testing.shell_probe import CALLS, scheduler_call_cost  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--call", choices=sorted(CALLS), default="reconcile")
    parser.add_argument("--frameworks", type=int, default=16)
    parser.add_argument("--clients", type=int, default=1, help="processes posting the calls")
    parser.add_argument("--split", action="store_true",
                        help="write each request's head and body apart, as http.client (pymesos) does")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    result = asyncio.run(scheduler_call_cost(args.call, args.frameworks, args.clients, args.split,
                                             args.seconds, args.warmup))
    print(json.dumps({**result, "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}))


if __name__ == "__main__":
    main()
