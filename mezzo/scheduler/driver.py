"""`SchedulerDriver`: the thread-based face of the SDK, for plain (non-asyncio) scripts.

The driver runs a `SchedulerClient` on an event loop in a background thread and calls the
`Scheduler`'s plain callbacks on a separate callback thread, one at a time, in event order.
Because callbacks run off the loop thread, a callback may call the driver's methods (which block
until the master has answered) without deadlocking; so may any other thread.

    driver = SchedulerDriver(MyScheduler(), FrameworkInfo(user="me", name="demo"), "127.0.0.1:5050")
    driver.start()
    ...
    driver.stop()          # TEARDOWN; stop(failover=True) leaves the framework for failover
    driver.join()

Every call method mirrors `SchedulerClient` (same names and arguments) and raises the same
`SchedulerError`s.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from mezzo.api.common import (
    ExecutorInfo,
    Filters,
    FrameworkID,
    FrameworkInfo,
    OfferOperation,
    OperationID,
    OperationStatus,
    Request,
    TaskInfo,
    TaskStatus,
)
from mezzo.api.scheduler import Call
from mezzo.election.base import Detector
from mezzo.scheduler.calls import AgentRef, ExecutorRef, OfferRef, TaskRef
from mezzo.scheduler.client import SchedulerClient, SchedulerError, SchedulerOptions
from mezzo.scheduler.scheduler import Scheduler

T = TypeVar("T")


class SchedulerDriver:
    """Thread-safe driver: `start`, `stop(failover=...)`, `join`, `run`, and the call methods."""

    def __init__(
        self,
        scheduler: Scheduler,
        framework_info: FrameworkInfo,
        master: str,
        options: SchedulerOptions | None = None,
        *,
        detector: Detector | None = None,
    ) -> None:
        self.scheduler = scheduler
        self._framework_info = framework_info
        self._master = master
        self._options = options
        self._detector = detector
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: SchedulerClient | None = None
        self._thread: threading.Thread | None = None
        self._callbacks = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="mezzo-scheduler-callbacks"
        )
        self._ready = threading.Event()
        self._done = threading.Event()
        # Calls submitted to the loop and not answered yet; cancelled when the loop ends, so
        # that no caller waits forever on a loop that will never run its coroutine.
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._pending_lock = threading.Lock()
        self._start_error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the background thread and begin subscribing (returns at once)."""
        if self._thread is not None:
            raise SchedulerError("driver already started")
        self._thread = threading.Thread(target=self._main, name="mezzo-scheduler", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            raise self._start_error

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            with self._pending_lock:
                self._done.set()
                pending = list(self._pending)
            for future in pending:
                future.cancel()
            loop.close()
            self._callbacks.shutdown(wait=False)

    async def _serve(self) -> None:
        try:
            self._client = SchedulerClient(
                self._master,
                self._framework_info,
                self.scheduler,
                self._options,
                detector=self._detector,
                driver=self,
                invoker=self._invoke,
            )
            await self._client.start()
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._client.join()
        await self._client.abort()  # release sessions if it stopped by itself

    async def _invoke(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._callbacks, lambda: fn(*args))

    def stop(self, failover: bool = False) -> None:
        """Stop (TEARDOWN first unless `failover`). Safe from callbacks and other threads."""
        if self._client is None or self._loop is None or self._done.is_set():
            return
        with contextlib.suppress(SchedulerError):  # the loop finished meanwhile
            self._run(self._client.stop(failover=failover), timeout=None)

    def abort(self) -> None:
        """Stop without tearing the framework down."""
        self.stop(failover=True)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the driver stopped; True if it did within `timeout`."""
        stopped = self._done.wait(timeout)
        if stopped and self._thread is not None and threading.current_thread() is not self._thread:
            self._thread.join()
        return stopped

    def run(self) -> None:
        """`start()` then `join()`."""
        self.start()
        self.join()

    # ------------------------------------------------------------------ state

    @property
    def framework_id(self) -> FrameworkID | None:
        return None if self._client is None else self._client.framework_id

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    @property
    def client(self) -> SchedulerClient:
        if self._client is None:
            raise SchedulerError("driver not started")
        return self._client

    def wait_subscribed(self, timeout: float | None = None) -> FrameworkID:
        """Block until subscribed; raises TimeoutError or SchedulerError."""
        return self._run(self.client.wait_subscribed(timeout), timeout=None)

    # ------------------------------------------------------------------ plumbing

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        loop = self._loop
        if loop is None or self._client is None:
            coro.close()
            raise SchedulerError("driver not started")
        if threading.current_thread() is self._thread:
            coro.close()
            raise SchedulerError("driver methods cannot be called from the driver's loop thread")
        with self._pending_lock:
            if self._done.is_set():
                coro.close()
                raise SchedulerError("driver stopped")
            future = asyncio.run_coroutine_threadsafe(coro, loop)
            self._pending.add(future)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError("the driver did not answer in time") from None
        except concurrent.futures.CancelledError:
            raise SchedulerError("driver stopped") from None
        finally:
            with self._pending_lock:
                self._pending.discard(future)

    # ------------------------------------------------------------------ calls

    def call(self, call: Call) -> bytes:
        return self._run(self.client.call(call))

    def accept(
        self,
        offers: OfferRef | Iterable[OfferRef],
        operations: Sequence[OfferOperation],
        filters: Filters | None = None,
        *,
        refuse_seconds: float | None = None,
    ) -> None:
        self._run(self.client.accept(offers, operations, filters, refuse_seconds=refuse_seconds))

    def launch(
        self,
        offers: OfferRef | Iterable[OfferRef],
        tasks: Sequence[TaskInfo],
        filters: Filters | None = None,
        *,
        refuse_seconds: float | None = None,
    ) -> None:
        self._run(self.client.launch(offers, tasks, filters, refuse_seconds=refuse_seconds))

    def launch_group(
        self,
        offers: OfferRef | Iterable[OfferRef],
        executor: ExecutorInfo,
        tasks: Sequence[TaskInfo],
        filters: Filters | None = None,
        *,
        refuse_seconds: float | None = None,
    ) -> None:
        self._run(
            self.client.launch_group(
                offers, executor, tasks, filters, refuse_seconds=refuse_seconds
            )
        )

    def decline(
        self,
        offers: OfferRef | Iterable[OfferRef],
        filters: Filters | None = None,
        *,
        refuse_seconds: float | None = None,
    ) -> None:
        self._run(self.client.decline(offers, filters, refuse_seconds=refuse_seconds))

    def accept_inverse_offers(
        self, inverse_offers: OfferRef | Iterable[OfferRef], filters: Filters | None = None
    ) -> None:
        self._run(self.client.accept_inverse_offers(inverse_offers, filters))

    def decline_inverse_offers(
        self, inverse_offers: OfferRef | Iterable[OfferRef], filters: Filters | None = None
    ) -> None:
        self._run(self.client.decline_inverse_offers(inverse_offers, filters))

    def revive(self, roles: Iterable[str] = ()) -> None:
        self._run(self.client.revive(roles))

    def suppress(self, roles: Iterable[str] = ()) -> None:
        self._run(self.client.suppress(roles))

    def kill(
        self, task: TaskRef, agent: AgentRef | None = None, *, grace_period: float | None = None
    ) -> None:
        self._run(self.client.kill(task, agent, grace_period=grace_period))

    def shutdown(self, executor: ExecutorRef, agent: AgentRef) -> None:
        self._run(self.client.shutdown(executor, agent))

    def acknowledge(self, status: TaskStatus) -> None:
        self._run(self.client.acknowledge(status))

    def acknowledge_operation_status(self, status: OperationStatus) -> None:
        self._run(self.client.acknowledge_operation_status(status))

    def reconcile(
        self, tasks: Iterable[TaskStatus | TaskRef | tuple[TaskRef, AgentRef | None]] = ()
    ) -> None:
        self._run(self.client.reconcile(list(tasks)))

    def reconcile_operations(
        self, operations: Iterable[OperationID | tuple[OperationID, AgentRef | None]] = ()
    ) -> None:
        self._run(self.client.reconcile_operations(list(operations)))

    def message(self, agent: AgentRef, executor: ExecutorRef, data: bytes) -> None:
        self._run(self.client.message(agent, executor, data))

    def request(self, requests: Sequence[Request]) -> None:
        self._run(self.client.request(requests))

    def update_framework(
        self, framework_info: FrameworkInfo, suppressed_roles: Iterable[str] = ()
    ) -> None:
        self._run(self.client.update_framework(framework_info, list(suppressed_roles)))

    def teardown(self) -> None:
        self._run(self.client.teardown())
