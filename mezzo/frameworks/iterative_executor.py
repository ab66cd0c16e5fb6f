"""The iterative framework's executor: holds one data partition in memory across iterations.

Launched by the agent as `python -m mezzo.frameworks.iterative_executor` (the ExecutorInfo
command of the `iterative` framework), it speaks the v1 executor API through
`mezzo.executor.ExecutorClient`:
- LAUNCH of the holder task: remember which partition to serve (the task's `data`), report
  TASK_RUNNING. Loading is lazy: the first iteration pays for it.
- MESSAGE `iterate` (weights): load the partition if it is not in memory (or if caching is
  off), compute the gradient in a worker thread (so heartbeats and acknowledgements keep
  flowing), answer with a `gradient` MESSAGE carrying the load and compute times.
- MESSAGE `stop`, KILL or SHUTDOWN: report the holder task FINISHED/KILLED and exit.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

from mezzo.api.common import KillPolicy, TaskID, TaskInfo, TaskState
from mezzo.executor import Executor, ExecutorClient
from mezzo.frameworks.iterative_core import (
    Partition,
    PartitionSpec,
    decode,
    encode,
    generate_partition_text,
    gradient,
    parse_partition,
)

log = logging.getLogger("mezzo.frameworks.iterative_executor")


def load(spec: PartitionSpec) -> Partition:
    """Produce and parse the partition's text (standing in for reading an input block)."""
    return parse_partition(
        generate_partition_text(spec.seed, spec.partition, spec.points, spec.dims)
    )


class PartitionExecutor(Executor):
    def __init__(self) -> None:
        self.task_id: TaskID | None = None
        self.spec: PartitionSpec | None = None
        self.partition: Partition | None = None
        self.done = asyncio.Event()
        self._busy = asyncio.Lock()

    async def launch_task(self, driver: Any, task: TaskInfo) -> None:
        if self.task_id is not None:
            await driver.send_status(
                task.task_id, TaskState.TASK_ERROR, message="this executor holds one partition"
            )
            return
        try:
            self.spec = PartitionSpec.from_bytes(task.data or b"")
        except (ValueError, KeyError) as exc:
            await driver.send_status(task.task_id, TaskState.TASK_ERROR, message=str(exc))
            return
        self.task_id = task.task_id
        await driver.send_status(
            task.task_id, TaskState.TASK_RUNNING, message=f"partition {self.spec.partition}"
        )

    async def framework_message(self, driver: Any, data: bytes) -> None:
        try:
            message = decode(data)
        except ValueError:
            return
        if message["type"] == "stop":
            await self._finish(driver, TaskState.TASK_FINISHED, "stopped by the scheduler")
        elif message["type"] == "iterate":
            # Callbacks run one at a time, so a gradient blocks later events: hand it to a
            # task and return, letting acknowledgements and kills through.
            asyncio.get_running_loop().create_task(self._iterate(driver, message))

    async def _iterate(self, driver: Any, message: dict[str, Any]) -> None:
        assert self.spec is not None
        async with self._busy:
            load_seconds = 0.0
            if self.partition is None or not message.get("cache", True):
                started = time.perf_counter()
                self.partition = await asyncio.to_thread(load, self.spec)
                load_seconds = time.perf_counter() - started
            started = time.perf_counter()
            grad, loss = await asyncio.to_thread(gradient, self.partition, message["weights"])
            reply = {
                "type": "gradient",
                "iteration": message["iteration"],
                "partition": self.spec.partition,
                "gradient": grad,
                "count": self.partition.count,
                "loss": loss,
                "load_seconds": load_seconds,
                "compute_seconds": time.perf_counter() - started,
            }
            await driver.send_framework_message(encode(reply))

    async def kill_task(self, driver: Any, task_id: TaskID, kill_policy: KillPolicy | None) -> None:
        if self.task_id == task_id:
            await self._finish(driver, TaskState.TASK_KILLED, "killed")

    async def shutdown(self, driver: Any) -> None:
        await self._finish(driver, TaskState.TASK_KILLED, "executor shut down")

    async def _finish(self, driver: Any, state: TaskState, message: str) -> None:
        if self.task_id is not None and not self.done.is_set():
            await driver.send_status(self.task_id, state, message=message)
        self.done.set()


async def serve() -> None:
    executor = PartitionExecutor()
    client = ExecutorClient(executor)
    await client.start()
    stopped = asyncio.ensure_future(client.join())
    done = asyncio.ensure_future(executor.done.wait())
    await asyncio.wait({stopped, done}, return_when=asyncio.FIRST_COMPLETED)
    if done.done():
        # Give the agent a moment to acknowledge the terminal update before we go.
        deadline = time.monotonic() + 5.0
        while client.unacknowledged_updates and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    stopped.cancel()
    done.cancel()
    await client.stop()


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
