"""The master's CPU per agent PONG (and per PING it sends), over real HTTP on loopback.

A real `mezzo master` process (in-memory registry, `--agent_ping_timeout` short so that it
pings often) and `--agents` emulated agents in this process (`mezzo.testing.emulated_agent`:
the agent core answers each PING with a PONG call, POSTed on its kept-alive call connection).
Over `--seconds`, the master's CPU time (psutil, user + sys) is divided by the pongs it
answered (counted as the agents post them). Reports the master's CPU per ping/pong round trip
(the PING it writes on the agent's stream, the PONG call it receives), robust to load, beside
the rate, and how many agents it marked unreachable (none, unless it fell behind).

    .venv/bin/python bench/pong.py --agents 500 --ping 1secs --seconds 20

With `--calls N` each agent also sends N PONG calls a second of its own (unasked: the master
takes them as it takes any PONG), and with a long `--ping` those calls are nearly all the
master hears: the master's CPU per call received on an agent's socket (what the simulator's
`AGENT_MESSAGE_OVERHEAD` models, plus a PONG's few µs in the core).

    .venv/bin/python bench/pong.py --agents 300 --ping 60secs --calls 10 --seconds 15

`loop_turns_per_pong` is the master's event-loop iterations per call over the window (its
`_run_once` counted), `wakeups_per_pong` how many of them woke from sleep (the main thread's
voluntary context switches, psutil): with a bare turn's cost (`bench/writes.py --turns`) it splits the CPU per
call into the turns the calls took and the rest (docs/evaluation.md, "Calibration").

Recorded in docs/benchmarks.md, "Scale (issue 12)".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mezzo.testing.shell_probe import agent_message_cost  # noqa: E402

# The master's entry point, counting its event loop's iterations (`_run_once` calls: a Python
# call per turn, ~0.1 µs, inside what is measured) into a file a thread rewrites every 50 ms,
# so that the CPU per call can be split into the turns it took and the rest.
_RUNNER = """
import asyncio.base_events, threading, time
_count = [0]
_run_once = asyncio.base_events.BaseEventLoop._run_once
def _counted(self):
    _count[0] += 1
    _run_once(self)
asyncio.base_events.BaseEventLoop._run_once = _counted
def _dump():
    while True:
        with open({turns_file!r} + ".tmp", "w") as f:
            f.write(str(_count[0]))
        import os
        os.replace({turns_file!r} + ".tmp", {turns_file!r})
        time.sleep(0.05)
threading.Thread(target=_dump, daemon=True).start()
from mezzo.cli.main import main
main()
"""


def _turns(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


async def run(args: argparse.Namespace) -> dict[str, object]:
    work = tempfile.mkdtemp(prefix="mezzo-pong-")
    port_file = os.path.join(work, "port")
    runner = Path(work) / "mezzo_master.py"
    turns_file = Path(work) / "loop_turns"
    runner.write_text(_RUNNER.format(turns_file=str(turns_file)))
    master = subprocess.Popen(
        [sys.executable, *(["-m", "cProfile", "-o", args.profile] if args.profile else []),
         str(runner), "master",
         "--port", "0", "--port_file", port_file, "--registry", "in_memory", "--work_dir", work,
         "--agent_ping_timeout", args.ping, "--max_agent_ping_timeouts", "5",
         "--logging_level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and Path(port_file).read_text().strip()):
            if time.monotonic() > deadline or master.poll() is not None:
                raise SystemExit("the master did not start")
            await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{Path(port_file).read_text().strip()}"
        result = await agent_message_cost(
            url, master.pid, agents=args.agents, calls=args.calls, seconds=args.seconds,
            extra=lambda: {"loop_turns_per_pong": _turns(turns_file)})
        return {"ping": args.ping, **result, "load": [round(x, 2) for x in os.getloadavg()]}
    finally:
        master.send_signal(signal.SIGINT if args.profile else signal.SIGTERM)
        master.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--ping", default="1secs", help="the master's --agent_ping_timeout")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--calls", type=float, default=0.0,
                        help="PONG calls a second each agent sends unasked (see the docstring)")
    parser.add_argument("--profile", default=None, help="run the master under cProfile, stats to this file")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
