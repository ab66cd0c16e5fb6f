"""CLI start-up benchmark: process start → exit of `mezzo` commands, as a user runs them.

Against a real local cluster (`mezzo.testing.local_cluster`: a `mezzo master` process and one
`mezzo agent` process with real command executors, on loopback), this runs the installed
console script (`.venv/bin/mezzo`, the file a user's shell runs) as a fresh process, N times per
command, and measures from just before `fork/exec` to the `wait` that reaps it:

- `mezzo --version`                 (start-up alone: interpreter + the CLI's imports)
- `mezzo tasks`                     (one GET of `/master/state`, a table)
- `mezzo run -- true`               (subscribe, offer, launch, the task's life, its output,
                                     teardown: the whole user-visible path)
- `mezzo <command> --help` for every sub-command (the daemons' `master`, `agent`, `local`,
  `demo` among them: their options come from flag tables, not from the daemons' code)

For each: wall-clock p50 / p90 and the child's CPU time (user + sys from `wait4`) p50, which
stays meaningful on a machine loaded by other work, where the wall clock does not. Each command
runs a few times first (warm-up: page cache, the master's first-call paths). One JSON line per
command goes to stdout, then a Markdown table.

Byte code: the package's modules are compiled first (`compileall`), as a regular install does.
Without it (an editable install run with `PYTHONDONTWRITEBYTECODE=1`, as in this container's
environment) every command compiles the CLI's modules from source at each start, ~10-20 ms.

    .venv/bin/python bench/cli.py                 # 30 runs per command
    .venv/bin/python bench/cli.py --runs 100 --agents 1
    .venv/bin/python bench/cli.py --baseline /tmp/old    # before/after: `git archive REV mezzo`
                                                         # unpacked in /tmp/old, runs interleaved

Recorded in docs/benchmarks.md, "CLI start-up and `mezzo run` (issue 12)".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mezzo.testing.local_cluster import ClusterSpec, LocalCluster  # noqa: E402

MEZZO = str(Path(sys.executable).parent / "mezzo")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_once(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """One run of `argv` from fork/exec to its reaping: (wall s, the child's CPU s)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {err.decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def summary(command: str, walls: list[float], cpus: list[float]) -> dict[str, object]:
    return {
        "command": command,
        "runs": len(walls),
        "wall_p50_ms": round(statistics.median(walls) * 1000, 1),
        "wall_p90_ms": round(percentile(walls, 0.9) * 1000, 1),
        "wall_min_ms": round(min(walls) * 1000, 1),
        "cpu_p50_ms": round(statistics.median(cpus) * 1000, 1),
    }


def time_command(
    argv: list[str], runs: int, warmup: int, baseline: str | None = None
) -> list[dict[str, object]]:
    """The command's row; with `baseline` (another checkout's directory), first the row of
    that code (on the commands' PYTHONPATH), each of its runs right before one of ours, so
    both see the same moments of a noisy machine."""
    command = " ".join(["mezzo", *argv[1:]])
    trees: list[tuple[str, dict[str, str] | None]] = [("", None)]
    if baseline is not None:
        trees.insert(0, (f"{command} [baseline]", {**os.environ, "PYTHONPATH": baseline}))
    samples: list[tuple[list[float], list[float]]] = [([], []) for _ in trees]
    for i in range(warmup + runs):
        for (_, env), (walls, cpus) in zip(trees, samples, strict=True):
            wall, cpu = run_once(argv, env)
            if i >= warmup:
                walls.append(wall)
                cpus.append(cpu)
    return [
        summary(name or command, walls, cpus)
        for (name, _), (walls, cpus) in zip(trees, samples, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--agents", type=int, default=1)
    parser.add_argument("--no-help", action="store_true", help="skip the `--help` rows")
    parser.add_argument("--baseline", metavar="DIR", default=None,
                        help="also time the code of another checkout (DIR holds its `mezzo` "
                             "package), run for run alternately with this one's")
    args = parser.parse_args()
    import compileall

    compileall.compile_dir(str(ROOT / "mezzo"), quiet=1)
    if args.baseline is not None:
        args.baseline = str(Path(args.baseline).resolve())
        compileall.compile_dir(str(Path(args.baseline) / "mezzo"), quiet=1)
    from mezzo.cli.group import COMMANDS

    load = os.getloadavg()
    spec = ClusterSpec(agents=args.agents, agent_resources="cpus:8;mem:8192;disk:8192")
    with LocalCluster(spec) as cluster:
        cluster.wait_for_agents(args.agents, 30)
        master = ["--master", cluster.master_address]
        commands = [
            [MEZZO, "--version"],
            [MEZZO, "tasks", *master],
            [MEZZO, "run", *master, "--", "true"],
        ]
        if not args.no_help:
            commands += [[MEZZO, "--help"]] + [[MEZZO, name, "--help"] for name in COMMANDS]
        rows = [row for argv in commands
                for row in time_command(argv, args.runs, args.warmup, args.baseline)]
    for row in rows:
        print(json.dumps(row))
    after = os.getloadavg()
    print(f"\nload average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}; cores: {os.cpu_count()}")
    print("| command | wall p50 (ms) | wall p90 (ms) | wall min (ms) | CPU p50 (ms) |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| `{str(row['command']).replace(' --master ' + cluster.master_address, '')}` "
            f"| {row['wall_p50_ms']} | {row['wall_p90_ms']} | {row['wall_min_ms']} "
            f"| {row['cpu_p50_ms']} |"
        )


if __name__ == "__main__":
    main()
