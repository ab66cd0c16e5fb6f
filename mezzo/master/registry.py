"""The registry: the master's only durable state (admitted, unreachable and gone agents, and
the role weights set by operators).

Changes are named operations (`AdmitAgent`, `MarkUnreachable`, `MarkReachable`, `MarkGone`,
`RemoveAgent`, `UpdateWeights`, `UpdateQuota`), applied by the `Registrar` over a `mezzo.store.Store` (sqlite under
`--work_dir` by default, `in_memory` for tests, ZooKeeper with `--zk`). A restarted or newly
elected master `recover()`s the registry before serving anything; agents it lists must
re-register within `--agent_reregister_timeout` or they are marked unreachable.

Writes are compare-and-swap against the versions this master read at recovery or wrote itself
(a key it does not know is expected to be absent). Only the leader writes, so a version
conflict means another master has written the registry since: this one is no longer the
leader, whatever it believes. Like Mesos's registrar it then gives up (`on_conflict`; the
master stops serving and exits) instead of overwriting the newer state. Each operation is one
atomic `Store.commit` (a ZooKeeper multi, one SQLite transaction), so a refused operation leaves
nothing half-written, and a delete of a key known to be absent is not sent at all.

Layout in the store (one key per agent and state; an operation commits its keys together):

    agents/admitted/<agent id>     AgentInfo JSON
    agents/unreachable/<agent id>  {"info": AgentInfo, "time": <seconds>}
    agents/gone/<agent id>         {"time": <seconds>}
    weights                        {"<role>": <weight>, ...} (every weighted role; one key,
                                   since role names contain '/')
    quotas                         {"<role>": {"guarantees": {...}, "limits": {...}}, ...}
                                   (every role with a quota; one key, like weights)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter

import msgspec

from mezzo.api.codec import decode, encode
from mezzo.api.common import AgentInfo
from mezzo.core.metrics import DaemonMetrics
from mezzo.store.base import Put, Remove, Store, StoreOp, VersionConflict

log = logging.getLogger(__name__)

ADMITTED = "agents/admitted/"
UNREACHABLE = "agents/unreachable/"
GONE = "agents/gone/"
WEIGHTS = "weights"
QUOTAS = "quotas"


@dataclass(frozen=True, slots=True)
class AdmitAgent:
    info: AgentInfo  # with its id


@dataclass(frozen=True, slots=True)
class MarkUnreachable:
    info: AgentInfo
    time: float


@dataclass(frozen=True, slots=True)
class MarkReachable:
    info: AgentInfo


@dataclass(frozen=True, slots=True)
class MarkGone:
    agent_id: str
    time: float


@dataclass(frozen=True, slots=True)
class RemoveAgent:
    agent_id: str


@dataclass(frozen=True, slots=True)
class UpdateWeights:
    """The role weights after an operator's UPDATE_WEIGHTS (all of them, not the change)."""

    weights: dict[str, float]


@dataclass(frozen=True, slots=True)
class UpdateQuota:
    """Every role's quota after an operator's UPDATE_QUOTA / SET_QUOTA / REMOVE_QUOTA (all of
    them, not the change): role -> {"guarantees": {name: value}, "limits": {name: value}}."""

    quotas: dict[str, dict[str, dict[str, float]]]


RegistryOperation = (
    AdmitAgent | MarkUnreachable | MarkReachable | MarkGone | RemoveAgent | UpdateWeights
    | UpdateQuota
)


class _Unreachable(msgspec.Struct):
    info: AgentInfo
    time: float


class _Gone(msgspec.Struct):
    time: float


@dataclass
class RegistryState:
    admitted: dict[str, AgentInfo] = field(default_factory=dict)
    unreachable: dict[str, tuple[AgentInfo, float]] = field(default_factory=dict)
    gone: dict[str, float] = field(default_factory=dict)
    # Empty when no operator ever set weights (then --weights applies and is stored).
    weights: dict[str, float] = field(default_factory=dict)
    quotas: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


# Registry operations committed together at most (a ZooKeeper multi must stay well under the
# server's 1 MB request limit: an admitted agent's info is ~0.5-2 KB).
MAX_BATCH = 256


class Registrar:
    """Applies registry operations to a store and recovers the registry from it."""

    def __init__(self, store: Store, on_conflict: Callable[[str], None] | None = None) -> None:
        self.store = store
        # Called (once) when a write finds the registry changed by another master.
        self.on_conflict = on_conflict
        self.fenced: str | None = None  # the conflict that ended our writes, if any
        self._versions: dict[str, int] = {}  # key -> version as last read or written by us
        # Mesos's registrar/* metrics: fetch and store times, the registry's size, and the
        # operations being applied (applied inline, one at a time).
        self.metrics = DaemonMetrics()
        self.fetch_timer = self.metrics.timer(
            "registrar/state_fetch_ms", "registrar_state_fetch", "Time to read the registry")
        self.store_timer = self.metrics.timer(
            "registrar/state_store_ms", "registrar_state_store", "Time to commit one registry operation")
        self._sizes: dict[str, int] = {}  # key -> bytes of its value
        self.queued_operations = 0  # being committed now (the master's shell queues more)

    def statistics(self) -> dict[str, float]:
        return {
            "registrar/queued_operations": float(self.queued_operations),
            "registrar/registry_size_bytes": float(sum(self._sizes.values())),
            **self.metrics.timer_snapshot(),
        }

    def recover(self) -> RegistryState:
        started = perf_counter()
        state = self._recover()
        self.fetch_timer.observe(perf_counter() - started)
        return state

    def _recover(self) -> RegistryState:
        state = RegistryState()
        self._versions.clear()
        self._sizes.clear()
        for key, value in self._read_all(ADMITTED):
            state.admitted[key[len(ADMITTED) :]] = decode(value, AgentInfo)
        for key, value in self._read_all(UNREACHABLE):
            u = decode(value, _Unreachable)
            state.unreachable[key[len(UNREACHABLE) :]] = (u.info, u.time)
        for key, value in self._read_all(GONE):
            state.gone[key[len(GONE) :]] = decode(value, _Gone).time
        entry = self.store.get_many([WEIGHTS])[0]
        if entry is not None:
            self._versions[WEIGHTS] = entry.version
            self._sizes[WEIGHTS] = len(entry.value)
            state.weights = decode(entry.value, dict[str, float])
        entry = self.store.get_many([QUOTAS])[0]
        if entry is not None:
            self._versions[QUOTAS] = entry.version
            self._sizes[QUOTAS] = len(entry.value)
            state.quotas = decode(entry.value, dict[str, dict[str, dict[str, float]]])
        return state

    def _read_all(self, prefix: str) -> list[tuple[str, bytes]]:
        """Every value under `prefix`. After a failover agents are waiting while this runs, so
        the reads are pipelined (`Store.get_many`): with ZooKeeper, all requests go out before
        the first answer is awaited (1,000 agents in bench/failover.py: ~1.3 s one by one,
        ~0.44 s on 16 threads, 0.23-0.51 s pipelined while the CPUs are busy with the
        reconnecting agents)."""
        keys = self.store.list(prefix)
        entries = self.store.get_many(keys)
        found: list[tuple[str, bytes]] = []
        for key, entry in zip(keys, entries, strict=True):
            if entry is not None:  # a key deleted between list and get is gone: skip it
                self._versions[key] = entry.version
                self._sizes[key] = len(entry.value)
                found.append((key, entry.value))
        return found

    def apply(self, op: RegistryOperation) -> None:
        self.apply_batch([op])

    def apply_batch(self, operations: list[RegistryOperation]) -> None:
        """Apply `operations` in order, in as few store commits as they allow: consecutive
        operations on different keys go in one commit (a single ZooKeeper multi: after a
        thousand agents register at once, one round trip instead of a thousand), at most
        `MAX_BATCH` of them; an operation on a key already in the commit starts the next one.
        Each operation stays atomic (all its writes or none): a commit is all or nothing."""
        if self.fenced is not None:
            return  # another master owns the registry now; we are on our way out
        try:
            group: list[StoreOp] = []
            keys: set[str] = set()
            count = 0
            for operation in operations:
                ops = self._store_ops(operation)
                if group and (count >= MAX_BATCH or any(o.key in keys for o in ops)):
                    self._commit(group, count)
                    group, keys, count = [], set(), 0
                    ops = self._store_ops(operation)  # with the versions just written
                group.extend(ops)
                keys.update(o.key for o in ops)
                count += 1
            if group:
                self._commit(group, count)
        except VersionConflict as conflict:
            self.fenced = str(conflict)
            log.error("registry changed by another master (%s): giving up the registry", conflict)
            if self.on_conflict is not None:
                self.on_conflict(f"registry changed by another master: {conflict}")

    def _store_ops(self, op: RegistryOperation) -> list[StoreOp]:
        """The writes and deletes of one operation (none if it changes nothing)."""
        ops: list[StoreOp] = []
        match op:
            case AdmitAgent(info=info) | MarkReachable(info=info):
                assert info.id is not None
                self._put(ops, ADMITTED + info.id.value, encode(info))
                self._remove(ops, UNREACHABLE + info.id.value)
            case MarkUnreachable(info=info, time=time):
                assert info.id is not None
                self._put(ops, UNREACHABLE + info.id.value, encode(_Unreachable(info=info, time=time)))
                self._remove(ops, ADMITTED + info.id.value)
            case MarkGone(agent_id=agent_id, time=time):
                self._put(ops, GONE + agent_id, encode(_Gone(time=time)))
                self._remove(ops, ADMITTED + agent_id)
                self._remove(ops, UNREACHABLE + agent_id)
            case RemoveAgent(agent_id=agent_id):
                self._remove(ops, ADMITTED + agent_id)
                self._remove(ops, UNREACHABLE + agent_id)
            case UpdateWeights(weights=weights):
                self._put(ops, WEIGHTS, encode(dict(sorted(weights.items()))))
            case UpdateQuota(quotas=quotas):
                self._put(ops, QUOTAS, encode(dict(sorted(quotas.items()))))
        return ops

    def _commit(self, ops: list[StoreOp], operations: int) -> None:
        """One atomic store commit of the writes of `operations` registry operations."""
        if not ops:
            return
        started = perf_counter()
        self.queued_operations += operations
        try:
            versions = self.store.commit(ops)
        finally:
            self.queued_operations -= operations
        self.store_timer.observe(perf_counter() - started)
        for store_op, version in zip(ops, versions, strict=True):
            if version is None:
                self._versions.pop(store_op.key, None)
                self._sizes.pop(store_op.key, None)
            else:
                self._versions[store_op.key] = version
                if isinstance(store_op, Put):
                    self._sizes[store_op.key] = len(store_op.value)

    def _put(self, ops: list[StoreOp], key: str, value: bytes) -> None:
        ops.append(Put(key, value, self._versions.get(key)))

    def _remove(self, ops: list[StoreOp], key: str) -> None:
        version = self._versions.get(key)
        if version is not None:  # a key we know to be absent needs no operation at all
            ops.append(Remove(key, version))

    def close(self) -> None:
        self.store.close()
