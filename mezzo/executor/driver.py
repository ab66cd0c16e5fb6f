"""`ExecutorDriver`: the thread-based face of the executor SDK, for plain scripts.

The driver runs an `ExecutorClient` on an event loop in a background thread and calls the
`Executor`'s plain callbacks on a separate callback thread, one at a time, in event order.
Because callbacks run off the loop thread, a callback may call the driver's methods (which
block until the agent has answered) without deadlocking; so may any other thread.

    driver = ExecutorDriver(MyExecutor())   # settings from the MESOS_* environment
    driver.run()                             # start, then block until SHUTDOWN / stop()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from mezzo.api.common import Reason, TaskID, TaskState, TaskStatus
from mezzo.executor.client import ExecutorClient, ExecutorSettings
from mezzo.executor.executor import Executor

T = TypeVar("T")


class ExecutorDriver:
    """Thread-safe driver: `start`, `stop`, `join`, `run`, `send_status`, `update`,
    `send_framework_message`."""

    def __init__(self, executor: Executor, settings: ExecutorSettings | None = None) -> None:
        self.executor = executor
        self.settings = settings if settings is not None else ExecutorSettings.from_env()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: ExecutorClient | None = None
        self._thread: threading.Thread | None = None
        self._callbacks = concurrent.futures.ThreadPoolExecutor(1, "executor-callbacks")
        self._ready = threading.Event()
        self._done = threading.Event()
        self._start_error: BaseException | None = None

    def start(self) -> None:
        """Start the loop thread and subscribe in the background."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name="executor-driver", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            raise self._start_error

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        finally:
            self._done.set()
            self._callbacks.shutdown(wait=False)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._client = ExecutorClient(
                self.executor, self.settings, driver=self, invoker=self._invoke
            )
            await self._client.start()
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._client.join()
        await self._client.stop()

    async def _invoke(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._callbacks, lambda: fn(*args))

    def stop(self) -> None:
        """Stop the client (no SHUTDOWN callback). Safe from callbacks and other threads."""
        if self._client is None or self._loop is None or self._done.is_set():
            return
        with contextlib.suppress(RuntimeError):  # the loop already finished
            asyncio.run_coroutine_threadsafe(self._client.stop(), self._loop)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the driver to finish; True if it did."""
        return self._done.wait(timeout)

    def run(self) -> None:
        self.start()
        self.join()

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    @property
    def client(self) -> ExecutorClient:
        assert self._client is not None, "start() the driver first"
        return self._client

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        if self._loop is None or self._done.is_set():
            coro.close()
            raise RuntimeError("the executor driver is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def update(self, status: TaskStatus) -> TaskStatus:
        return self._run(self.client.update(status))

    def send_status(
        self,
        task_id: TaskID | str,
        state: TaskState | str,
        *,
        message: str | None = None,
        reason: Reason | str | None = None,
        data: bytes | None = None,
        healthy: bool | None = None,
    ) -> TaskStatus:
        return self._run(
            self.client.send_status(
                task_id, state, message=message, reason=reason, data=data, healthy=healthy
            )
        )

    def send_framework_message(self, data: bytes) -> None:
        self._run(self.client.send_framework_message(data))
