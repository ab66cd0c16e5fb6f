"""The registry: the master's only durable state (admitted, unreachable and gone agents).

Changes are named operations (`AdmitAgent`, `MarkUnreachable`, `MarkReachable`, `MarkGone`,
`RemoveAgent`), applied by the `Registrar` over a `mezzo.store.Store` (sqlite under
`--work_dir` by default, `in_memory` for tests, ZooKeeper later for HA). A restarted master
`recover()`s the registry before serving anything; agents it lists must re-register within
`--agent_reregister_timeout` or they are marked unreachable.

Layout in the store (one key per agent, so operations are single-key writes):

    agents/admitted/<agent id>     AgentInfo JSON
    agents/unreachable/<agent id>  {"info": AgentInfo, "time": <seconds>}
    agents/gone/<agent id>         {"time": <seconds>}
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import msgspec

from mezzo.api.codec import decode, encode
from mezzo.api.common import AgentInfo
from mezzo.store.base import Store

ADMITTED = "agents/admitted/"
RECOVERY_THREADS = 16
RECOVERY_PARALLEL_MIN = 64
UNREACHABLE = "agents/unreachable/"
GONE = "agents/gone/"


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


RegistryOperation = AdmitAgent | MarkUnreachable | MarkReachable | MarkGone | RemoveAgent


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


class Registrar:
    """Applies registry operations to a store and recovers the registry from it."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def recover(self) -> RegistryState:
        state = RegistryState()
        for key, value in self._read_all(ADMITTED):
            state.admitted[key[len(ADMITTED) :]] = decode(value, AgentInfo)
        for key, value in self._read_all(UNREACHABLE):
            u = decode(value, _Unreachable)
            state.unreachable[key[len(UNREACHABLE) :]] = (u.info, u.time)
        for key, value in self._read_all(GONE):
            state.gone[key[len(GONE) :]] = decode(value, _Gone).time
        return state

    def _read_all(self, prefix: str) -> list[tuple[str, bytes]]:
        """Every value under `prefix`. A ZooKeeper registry costs one round trip per key, so
        after a failover (when agents are waiting) the reads run on a few threads at once:
        the kazoo client pipelines them over its one connection (1,000 agents: ~1.3 s
        sequentially). Small registries and local stores are read in line."""
        keys = self.store.list(prefix)
        if len(keys) < RECOVERY_PARALLEL_MIN:
            entries = [self.store.get(key) for key in keys]
        else:
            with ThreadPoolExecutor(RECOVERY_THREADS, thread_name_prefix="registry") as pool:
                entries = list(pool.map(self.store.get, keys))
        # A key deleted between list and get is gone: skip it.
        return [(k, e.value) for k, e in zip(keys, entries, strict=True) if e is not None]

    def apply(self, op: RegistryOperation) -> None:
        store = self.store
        match op:
            case AdmitAgent(info=info) | MarkReachable(info=info):
                assert info.id is not None
                store.put(ADMITTED + info.id.value, encode(info))
                store.delete(UNREACHABLE + info.id.value)
            case MarkUnreachable(info=info, time=time):
                assert info.id is not None
                store.put(UNREACHABLE + info.id.value, encode(_Unreachable(info=info, time=time)))
                store.delete(ADMITTED + info.id.value)
            case MarkGone(agent_id=agent_id, time=time):
                store.put(GONE + agent_id, encode(_Gone(time=time)))
                store.delete(ADMITTED + agent_id)
                store.delete(UNREACHABLE + agent_id)
            case RemoveAgent(agent_id=agent_id):
                store.delete(ADMITTED + agent_id)
                store.delete(UNREACHABLE + agent_id)

    def close(self) -> None:
        self.store.close()
