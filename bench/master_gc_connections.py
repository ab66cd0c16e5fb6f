"""Objects the garbage collector tracks per connected agent in a real master process.

A full collection walks every tracked object, so its pause grows with them (issue 12). The
in-process bench (bench/master_memory.py) counts the master's state; this one counts what an
agent's *connection* adds in the real daemon: a `mezzo master` subprocess (in-memory registry,
the daemon's collector settings) and `--agents` emulated agents (bench/launch.py's, in a second
process) connected to it. The master runs under a small wrapper that, on SIGUSR1, collects,
times one more full collection and writes a histogram of the tracked objects by type
(coroutines, cells and functions by their qualified name) to a file; the difference between
before and after the agents connected, per agent, is printed (most numerous first).

    .venv/bin/python bench/master_gc_connections.py --agents 300

Recorded in docs/benchmarks.md, "Garbage-collector pauses (issue 12)".
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.launch import _agents_main  # noqa: E402

# Run in the master's process: `mezzo master ...` with a SIGUSR1 handler writing the histogram.
WRAPPER = r"""
import gc, json, os, signal, sys, time

OUT = sys.argv[1]

def dump(*_):
    gc.collect()
    hist = {}
    objects = gc.get_objects()
    for o in objects:
        kind = type(o)
        key = f"{kind.__module__}.{kind.__qualname__}"
        if kind.__name__ in ("coroutine", "function", "method"):
            key += ":" + getattr(o, "__qualname__", "")
        elif kind.__name__ == "cell":
            try:
                key += ":" + type(o.cell_contents).__qualname__
            except ValueError:
                pass
        hist[key] = hist.get(key, 0) + 1
    del objects
    started = time.process_time()
    gc.collect()
    cpu_ms = (time.process_time() - started) * 1000
    with open(OUT + ".tmp", "w") as f:
        json.dump({"tracked": sum(hist.values()), "gc_cpu_ms": cpu_ms, "types": hist}, f)
    os.replace(OUT + ".tmp", OUT)

signal.signal(signal.SIGUSR1, dump)
from mezzo.cli.main import main
sys.argv = ["mezzo", *sys.argv[2:]]
sys.exit(main())
"""


def snapshot(proc: subprocess.Popen[bytes], path: Path) -> dict[str, Any]:
    path.unlink(missing_ok=True)
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 60
    while not path.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("the master did not answer SIGUSR1")
        time.sleep(0.05)
    return dict(json.loads(path.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=300)
    parser.add_argument("--agent-resources", default="cpus:16;mem:32768;disk:100000;ports:[31000-32000]")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    port_file, dump = work / "port", work / "gc.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, str(dump), "master", "--ip", "127.0.0.1", "--port", "0",
         "--registry", "in_memory", "--port_file", str(port_file), "--logging_level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )
    agents: multiprocessing.Process | None = None
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("master failed to start")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        time.sleep(1.0)  # let start-up finish (leading, registry recovered)
        before = snapshot(proc, dump)
        ready = multiprocessing.Event()
        agents = multiprocessing.Process(target=_agents_main, args=(url, args.agents, args.agent_resources, ready),
                                         daemon=True)
        agents.start()
        if not ready.wait(120):
            raise SystemExit("the agents did not register")
        time.sleep(2.0)  # their SUBSCRIBED and first pings handled
        after = snapshot(proc, dump)
    finally:
        if agents is not None:
            agents.terminate()
        proc.terminate()
        proc.wait(30)
    per_agent = (after["tracked"] - before["tracked"]) / args.agents
    print(json.dumps({"agents": args.agents, "tracked_before": before["tracked"], "tracked_after": after["tracked"],
                      "tracked_per_agent": round(per_agent, 1), "gc_cpu_ms_before": round(before["gc_cpu_ms"], 1),
                      "gc_cpu_ms_after": round(after["gc_cpu_ms"], 1)}))
    diff = {k: after["types"].get(k, 0) - before["types"].get(k, 0) for k in after["types"]}
    for name, count in sorted(diff.items(), key=lambda item: -item[1])[: args.top]:
        print(f"  {count / args.agents:6.2f}  {name}")


if __name__ == "__main__":
    main()
