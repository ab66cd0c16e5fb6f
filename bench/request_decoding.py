"""What the bad-input checks of the decoding path cost on good input, and what refusing bad
input costs (issue 9).

For ACCEPT calls launching 1, 10, 100 and 1,000 command tasks it times `scheduler.decode_call`
(the whole decode, depth check included) and the JSON depth check alone (`codec._too_deep`,
which only scans bodies with more than 100 opening brackets); then the refusal of hostile
bodies (nested 100,000 deep, trailing garbage, invalid UTF-8). Median of repeated runs, in µs.

    .venv/bin/python bench/request_decoding.py
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

from mezzo.api import codec, scheduler
from mezzo.core.errors import ValidationError


def accept(tasks: int) -> bytes:
    task = {
        "name": "t", "task_id": {"value": "task-0000000000"}, "agent_id": {"value": "agent-" + "a" * 30},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
        "command": {"shell": True, "value": "sleep 1"},
    }
    return json.dumps({
        "type": "ACCEPT", "framework_id": {"value": "f"},
        "accept": {"offer_ids": [{"value": "o"}],
                   "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task] * tasks}}]},
    }).encode()


def median_us(fn: Callable[[], object], budget: float = 0.5) -> float:
    samples: list[float] = []
    deadline = time.perf_counter() + budget
    while time.perf_counter() < deadline or len(samples) < 5:
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def refuse(body: bytes) -> None:
    try:
        scheduler.decode_call(body)
    except ValidationError:
        return
    raise AssertionError("accepted")


def main() -> None:
    print(f"{'tasks':>6} {'bytes':>9} {'decode_call us':>15} {'depth check us':>15} {'share':>6}")
    for tasks in (1, 10, 100, 1000):
        body = accept(tasks)
        whole = median_us(lambda body=body: scheduler.decode_call(body))
        depth = median_us(lambda body=body: codec._too_deep(body))
        print(f"{tasks:>6} {len(body):>9} {whole:>15.1f} {depth:>15.1f} {depth / whole:>6.0%}")
    print()
    hostile = {
        "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
        "trailing garbage": accept(10) + b" xx",
        "invalid UTF-8": accept(10)[:-20] + b"\xff" + accept(10)[-20:],
    }
    for name, body in hostile.items():
        print(f"refusing {name} ({len(body)} bytes): {median_us(lambda body=body: refuse(body)):.1f} us")


if __name__ == "__main__":
    main()
