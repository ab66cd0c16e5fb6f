"""Leader election contracts: a ``Contender`` runs for leadership, a ``Detector`` follows it.

A master contends with its MasterInfo JSON (``{"id","hostname","port","pid","version",
"address":{"hostname","ip","port"}}``), built by the master; this layer only checks that it is a
JSON object with ``address.ip`` and ``address.port`` (what pymesos reads, spec §13.1).

Leadership comes in *terms*: each time a contender is elected a new term starts (1, 2, ...), and
it ends when leadership is lost (session expired, disconnected too long, node deleted, withdraw).
A master typically does::

    contender.contend()
    term = await contender.elected()      # recover the registry, start serving
    await contender.lost(term)            # then exit, as a Mesos master does

Callbacks and awaitables are both offered. ZooKeeper events arrive on kazoo threads: callbacks
registered with ``loop=`` are marshalled to that asyncio loop with ``call_soon_threadsafe``;
awaitables always resolve on the loop that awaits them; ``wait_*`` methods block a thread.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mezzo.core.errors import ValidationError

log = logging.getLogger(__name__)

Payload = dict[str, Any] | bytes


def encode_master_info(payload: Payload) -> bytes:
    """The MasterInfo JSON bytes to advertise; rejects payloads pymesos could not use."""
    info = decode_master_info(payload) if isinstance(payload, bytes | bytearray) else payload
    if not isinstance(info, dict):
        raise ValidationError("MasterInfo payload must be a JSON object")
    address = info.get("address")
    if not isinstance(address, dict) or "ip" not in address or "port" not in address:
        raise ValidationError(
            "MasterInfo payload needs address.ip and address.port (read by pymesos)"
        )
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return json.dumps(info, separators=(",", ":")).encode()


def decode_master_info(raw: bytes) -> dict[str, Any]:
    try:
        info = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValidationError(f"MasterInfo is not JSON: {e}") from e
    if not isinstance(info, dict):
        raise ValidationError("MasterInfo JSON is not an object")
    return info


@dataclass(frozen=True)
class LeaderInfo:
    """The current leader as advertised: its node name, sequence, parsed and raw MasterInfo."""

    name: str
    sequence: int | None
    info: dict[str, Any]
    raw: bytes

    @property
    def address(self) -> str:
        """``ip:port`` exactly as pymesos derives it (``address.ip`` + ``address.port``)."""
        addr = self.info.get("address") or {}
        ip = addr.get("ip") or addr.get("hostname") or self.info.get("hostname")
        port = addr.get("port") or self.info.get("port")
        return f"{ip}:{port}"

    @property
    def scheme(self) -> str:
        """`https` when the leader advertised it serves TLS (mezzo's `scheme` key beside the
        MasterInfo in ZooKeeper), else `http`."""
        return "https" if self.info.get("scheme") == "https" else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    @property
    def id(self) -> str | None:
        value = self.info.get("id")
        return None if value is None else str(value)


class _Listeners:
    """Callbacks that may be called on any thread, optionally marshalled to an asyncio loop."""

    def __init__(self) -> None:
        self._items: list[tuple[Callable[..., None], asyncio.AbstractEventLoop | None]] = []
        self._lock = threading.Lock()

    def add(
        self, callback: Callable[..., None], loop: asyncio.AbstractEventLoop | None
    ) -> Callable[[], None]:
        item = (callback, loop)
        with self._lock:
            self._items.append(item)

        def remove() -> None:
            with self._lock:
                if item in self._items:
                    self._items.remove(item)

        return remove

    def fire(self, *args: Any) -> None:
        with self._lock:
            items = list(self._items)
        for callback, loop in items:
            if loop is None:
                try:
                    callback(*args)
                except Exception:  # a faulty listener must not break election bookkeeping
                    log.exception("election listener %r failed", callback)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(callback, *args)


class _Waiters:
    """Thread-safe state-change signalling to blocked threads and to asyncio futures.

    State is mutated under ``lock``; after each mutation ``changed()`` wakes every waiter whose
    predicate now holds (predicates are evaluated under the lock, so they see consistent state).
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._cond = threading.Condition(self.lock)
        self._async: list[
            tuple[Callable[[], Any], asyncio.AbstractEventLoop, asyncio.Future[Any]]
        ] = []

    def changed(self) -> None:
        with self.lock:
            self._cond.notify_all()
            still: list[
                tuple[Callable[[], Any], asyncio.AbstractEventLoop, asyncio.Future[Any]]
            ] = []
            for pred, loop, fut in self._async:
                value = pred()
                if value is None or value is False:
                    still.append((pred, loop, fut))
                elif not loop.is_closed():
                    loop.call_soon_threadsafe(_resolve, fut, value)
            self._async = still

    def wait(self, pred: Callable[[], Any], timeout: float | None) -> Any:
        with self.lock:
            ok = self._cond.wait_for(lambda: pred() not in (None, False), timeout)
            return pred() if ok else None

    async def wait_async(self, pred: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        with self.lock:
            value = pred()
            if value is not None and value is not False:
                return value
            entry = (pred, loop, fut)
            self._async.append(entry)
        try:
            return await fut
        finally:
            with self.lock:
                if entry in self._async:
                    self._async.remove(entry)


def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


class Contender(abc.ABC):
    """Runs for leadership; see the module docstring for terms, callbacks and awaitables."""

    def __init__(self) -> None:
        self._waiters = _Waiters()
        self._term = 0  # number of the latest term (0: never elected)
        self._leading = False
        self._elected_listeners = _Listeners()
        self._lost_listeners = _Listeners()

    # ---- the implementation's duties ----------------------------------------------------

    @abc.abstractmethod
    def contend(self) -> None:
        """Start contending (non-blocking); elections are reported through the signals below."""

    @abc.abstractmethod
    def withdraw(self) -> None:
        """Stop contending and give up leadership (reported as lost if leading). Idempotent."""

    # ---- state, shared by implementations -----------------------------------------------

    @property
    def is_leader(self) -> bool:
        with self._waiters.lock:
            return self._leading

    @property
    def term(self) -> int:
        with self._waiters.lock:
            return self._term

    def _set_elected(self) -> None:
        with self._waiters.lock:
            if self._leading:
                return
            self._leading = True
            self._term += 1
            term = self._term
            self._waiters.changed()
        log.info("elected leader (term %d)", term)
        self._elected_listeners.fire(term)

    def _set_lost(self, reason: str) -> None:
        with self._waiters.lock:
            if not self._leading:
                return
            self._leading = False
            term = self._term
            self._waiters.changed()
        log.warning("leadership lost (term %d): %s", term, reason)
        self._lost_listeners.fire(term, reason)

    # ---- observers ----------------------------------------------------------------------

    def on_elected(
        self, callback: Callable[[int], None], loop: asyncio.AbstractEventLoop | None = None
    ) -> Callable[[], None]:
        """``callback(term)`` on each election; returns a function that unregisters it."""
        return self._elected_listeners.add(callback, loop)

    def on_lost(
        self, callback: Callable[[int, str], None], loop: asyncio.AbstractEventLoop | None = None
    ) -> Callable[[], None]:
        """``callback(term, reason)`` when a term ends; returns a function that unregisters it."""
        return self._lost_listeners.add(callback, loop)

    def _elected_pred(self) -> int | None:
        return self._term if self._leading else None

    def _lost_pred(self, term: int | None) -> Callable[[], bool]:
        def pred() -> bool:
            wanted = self._term if term is None else term
            # Over once a later term started, or this term is the current one and not leading.
            return wanted >= 1 and (
                self._term > wanted or (self._term == wanted and not self._leading)
            )

        return pred

    async def elected(self) -> int:
        """Wait until leading; returns the term number."""
        return int(await self._waiters.wait_async(self._elected_pred))

    async def lost(self, term: int | None = None) -> None:
        """Wait until ``term`` (default: the current, or the first one) has ended."""
        if term is None:
            term = max(self.term, 1)
        await self._waiters.wait_async(self._lost_pred(term))

    def wait_elected(self, timeout: float | None = None) -> int | None:
        """Block until leading (the term) or ``timeout`` (None)."""
        result = self._waiters.wait(self._elected_pred, timeout)
        return None if result is None else int(result)

    def wait_lost(self, term: int | None = None, timeout: float | None = None) -> bool:
        if term is None:
            term = max(self.term, 1)
        return bool(self._waiters.wait(self._lost_pred(term), timeout))

    def close(self) -> None:
        self.withdraw()


_UNSET: Any = object()


class Detector(abc.ABC):
    """Follows the current leader; ``None`` means no leader is known right now."""

    def __init__(self) -> None:
        self._waiters = _Waiters()
        self._leader: LeaderInfo | None = None
        self._listeners = _Listeners()

    @abc.abstractmethod
    def start(self) -> None:
        """Begin following (non-blocking). Idempotent."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop following and release resources."""

    def leader(self) -> LeaderInfo | None:
        with self._waiters.lock:
            return self._leader

    def _set_leader(self, leader: LeaderInfo | None) -> None:
        with self._waiters.lock:
            if leader == self._leader:
                return
            self._leader = leader
            self._waiters.changed()
        log.info(
            "leader is now %s", "none" if leader is None else f"{leader.name} at {leader.address}"
        )
        self._listeners.fire(leader)

    def on_change(
        self,
        callback: Callable[[LeaderInfo | None], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Callable[[], None]:
        """``callback(leader)`` after every change; returns a function that unregisters it."""
        return self._listeners.add(callback, loop)

    async def detect(self, previous: LeaderInfo | None = _UNSET) -> LeaderInfo | None:
        """Mesos-style: return the leader as soon as it differs from ``previous``.

        Without ``previous``, return the current leader once one is known.
        """
        if previous is _UNSET:
            box = await self._waiters.wait_async(lambda: (self._leader,) if self._leader else None)
        else:
            box = await self._waiters.wait_async(
                lambda: (self._leader,) if self._leader != previous else None
            )
        return box[0]  # boxed in a tuple so that a change to None still counts as a result

    def wait_for(
        self, pred: Callable[[LeaderInfo | None], bool], timeout: float | None = None
    ) -> tuple[bool, LeaderInfo | None]:
        """Block until ``pred(leader)`` holds; (held?, leader)."""
        box = self._waiters.wait(lambda: (self._leader,) if pred(self._leader) else None, timeout)
        return (box is not None, box[0] if box is not None else self.leader())
