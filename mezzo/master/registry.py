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
    journal                        {"seq": n, "commits": [[seq, [key, ...]], ...]}: the keys
                                   each of the latest commits changed (see below)

A warm standby. Reading the registry is one ZooKeeper read per key: about 120 µs of CPU each
in kazoo, so ~1.1 s for 9,000 agents, spent after the election while every agent and framework
waits (and, with the GIL, while the master's loop can hardly accept their connections). So a
standby keeps a copy: it reads the registry once, then every second `refresh()` reads only the
`journal` key, which every commit rewrites in the same atomic commit, and re-reads the keys
the commits since its copy changed. The journal keeps the latest commits' keys, up to
`JOURNAL_MAX_KEYS`; a standby that fell further behind (as while thousands of agents first
register) reads everything again, spending at most `FULL_READ_SHARE` of its time so. Once
elected, `recover()` brings the copy up to date the same way, which after a leader's death
is usually one read. The copy is exact: the journal is read before the keys it names, a key
is re-read after each commit that changed it, and any gap means a full read. A registry
without a journal may be written by a master older than the journal (a rolling upgrade),
which does not keep it: a copy taken then is never trusted, and the whole registry is read
again once the journal appears (a newer leader's first commit) and at the election. The
journal's version is also one more compare-and-swap in every commit, so a second writer is
caught at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic, perf_counter

import msgspec

from mezzo.api.codec import decode, encode
from mezzo.api.common import AgentInfo
from mezzo.core.metrics import DaemonMetrics
from mezzo.store.base import Entry, Put, Remove, Store, StoreOp, VersionConflict

log = logging.getLogger(__name__)

ADMITTED = "agents/admitted/"
UNREACHABLE = "agents/unreachable/"
GONE = "agents/gone/"
WEIGHTS = "weights"
QUOTAS = "quotas"
JOURNAL = "journal"
# Keys the journal remembers across its latest commits (the latest commit's always): a
# standby that missed fewer re-reads just those (~45 bytes each in every commit).
JOURNAL_MAX_KEYS = 1024
# A standby behind the journal reads the whole registry again, but spends at most this share
# of its time doing so (a whole read of 9,000 agents is ~1.1 s: then every ~5.5 s), and waits
# at least FULL_READ_MIN_SECONDS between whole reads.
FULL_READ_SHARE = 0.2
FULL_READ_MIN_SECONDS = 1.0


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


class _Journal(msgspec.Struct):
    seq: int  # commits so far (since the journal began)
    commits: list[tuple[int, list[str]]]  # (seq, keys it changed), oldest first

    def after(self, seq: int) -> set[str] | None:
        """The keys changed by the commits after `seq`, or None if some are not listed."""
        if seq > self.seq:
            return None  # the registry was begun again: this copy is of another one
        listed = {n: keys for n, keys in self.commits}
        if any(n not in listed for n in range(seq + 1, self.seq + 1)):
            return None
        return {key for n in range(seq + 1, self.seq + 1) for key in listed[n]}

    def then(self, keys: list[str]) -> _Journal:
        """The journal after one more commit that changed `keys`."""
        seq = self.seq + 1
        commits = [*self.commits, (seq, keys)]
        total = sum(len(k) for _, k in commits)
        while len(commits) > 1 and total > JOURNAL_MAX_KEYS:
            total -= len(commits.pop(0)[1])
        return _Journal(seq=seq, commits=commits)


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
        # The registry as last read or written: every key's value (see "A warm standby"),
        # exact as of `_journal.seq` when `_warm`.
        self._values: dict[str, bytes] = {}
        self._journal = _Journal(seq=0, commits=[])
        self._warm = False
        self._last_full_read: float | None = None  # monotonic()
        self._journal_missing = False  # the last whole read found no journal
        self._full_read_seconds = 0.0  # how long it took
        self._reading = threading.Lock()  # refresh (a standby's thread) vs recover
        self.full_reads = 0  # whole-registry reads so far (a standby's are the costly ones)

    def statistics(self) -> dict[str, float]:
        return {
            "registrar/queued_operations": float(self.queued_operations),
            "registrar/registry_size_bytes": float(sum(self._sizes.values())),
            **self.metrics.timer_snapshot(),
        }

    def recover(self) -> RegistryState:
        """The registry now: this master's copy brought up to date, or read whole."""
        started = perf_counter()
        with self._reading:
            self._refresh(full_read_allowed=True)
            state = self._state()
        self.fetch_timer.observe(perf_counter() - started)
        return state

    def refresh(self) -> None:
        """A standby's periodic catch-up (see "A warm standby"): one read of the journal, the
        keys changed since, or the whole registry (so often: FULL_READ_SHARE)."""
        with self._reading:
            wait = max(FULL_READ_MIN_SECONDS, self._full_read_seconds / FULL_READ_SHARE)
            due = self._last_full_read is None or monotonic() - self._last_full_read >= wait
            if not due and self._journal_missing:
                # A registry without a journal may have been written by an older master, so
                # only a whole read after the journal began can be trusted: once, at once.
                due = self.store.get(JOURNAL) is not None
            self._refresh(full_read_allowed=due)

    @property
    def warm(self) -> bool:
        """Whether this master's copy was exact at its last read of the journal."""
        return self._warm

    def _refresh(self, full_read_allowed: bool) -> None:
        entry = self.store.get(JOURNAL) if self._warm else None
        changed = None
        if entry is not None:
            if entry.version == self._versions.get(JOURNAL):
                return  # nothing committed since (every commit rewrites the journal)
            journal = decode(entry.value, _Journal)
            changed = journal.after(self._journal.seq)
        if entry is None or changed is None:
            self._warm = False
            if full_read_allowed:
                self._full_read()
            return
        keys = sorted(changed)
        for key, found in zip(keys, self.store.get_many(keys), strict=True):
            self._cache(key, found)
        self._journal = journal
        self._versions[JOURNAL] = entry.version

    def _full_read(self) -> None:
        began = monotonic()
        # The journal first: what the keys hold then is at least as new as it says.
        entry = self.store.get(JOURNAL)
        self._values.clear()
        self._versions.clear()
        self._sizes.clear()
        for prefix in (ADMITTED, UNREACHABLE, GONE):
            self._read_all(prefix)
        for key, found in zip((WEIGHTS, QUOTAS), self.store.get_many([WEIGHTS, QUOTAS]), strict=True):
            self._cache(key, found)
        if entry is None:  # a registry no master with a journal has written yet
            self._journal = _Journal(seq=0, commits=[])
        else:
            self._journal = decode(entry.value, _Journal)
            self._versions[JOURNAL] = entry.version
        self._warm = entry is not None
        self._journal_missing = entry is None
        self._full_read_seconds = monotonic() - began
        self._last_full_read = monotonic()
        self.full_reads += 1

    def _cache(self, key: str, entry: Entry | None) -> None:
        if entry is None:
            self._values.pop(key, None)
            self._versions.pop(key, None)
            self._sizes.pop(key, None)
        else:
            self._values[key] = entry.value
            self._versions[key] = entry.version
            self._sizes[key] = len(entry.value)

    def _state(self) -> RegistryState:
        state = RegistryState()
        for key, value in self._values.items():
            if key.startswith(ADMITTED):
                state.admitted[key[len(ADMITTED) :]] = decode(value, AgentInfo)
            elif key.startswith(UNREACHABLE):
                u = decode(value, _Unreachable)
                state.unreachable[key[len(UNREACHABLE) :]] = (u.info, u.time)
            elif key.startswith(GONE):
                state.gone[key[len(GONE) :]] = decode(value, _Gone).time
            elif key == WEIGHTS:
                state.weights = decode(value, dict[str, float])
            elif key == QUOTAS:
                state.quotas = decode(value, dict[str, dict[str, dict[str, float]]])
        return state

    def _read_all(self, prefix: str) -> None:
        """Every value under `prefix`, into the copy. The reads are pipelined
        (`Store.get_many`): with ZooKeeper, all requests go out before the first answer is
        awaited (1,000 agents in bench/failover.py: ~1.3 s one by one, ~0.44 s on 16
        threads, 0.23-0.51 s pipelined while the CPUs are busy with the reconnecting agents)."""
        keys = self.store.list(prefix)
        for key, entry in zip(keys, self.store.get_many(keys), strict=True):
            if entry is not None:  # a key deleted between list and get is gone: skip it
                self._cache(key, entry)

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
        journal = self._journal.then(sorted({op.key for op in ops}))
        journal_put = Put(JOURNAL, encode(journal), self._versions.get(JOURNAL))
        started = perf_counter()
        self.queued_operations += operations
        try:
            versions = self.store.commit([*ops, journal_put])
        finally:
            self.queued_operations -= operations
        self.store_timer.observe(perf_counter() - started)
        for store_op, version in zip(ops, versions[:-1], strict=True):
            if version is None:
                self._cache(store_op.key, None)
            elif isinstance(store_op, Put):
                self._cache(store_op.key, Entry(store_op.value, version))
        journal_version = versions[-1]
        assert journal_version is not None
        self._journal = journal
        self._versions[JOURNAL] = journal_version

    def _put(self, ops: list[StoreOp], key: str, value: bytes) -> None:
        ops.append(Put(key, value, self._versions.get(key)))

    def _remove(self, ops: list[StoreOp], key: str) -> None:
        version = self._versions.get(key)
        if version is not None:  # a key we know to be absent needs no operation at all
            ops.append(Remove(key, version))

    def close(self) -> None:
        self.store.close()
