"""The registrar over every store (memory, sqlite, real ZooKeeper): operations, recovery, and
the compare-and-swap that stops a deposed master from overwriting its successor's registry."""

from __future__ import annotations

import pytest

from mezzo.api.common import AgentID, AgentInfo
from mezzo.master.registry import (
    ADMITTED,
    UNREACHABLE,
    AdmitAgent,
    MarkGone,
    MarkReachable,
    MarkUnreachable,
    Registrar,
    RemoveAgent,
)
from mezzo.store import MemoryStore
from tests.test_store import Opener, opener  # noqa: F401  (the store fixture, shared)


def agent(n: int) -> AgentInfo:
    return AgentInfo(hostname=f"h{n}", id=AgentID(value=f"a{n}"))


def test_operations_then_recovery(opener: tuple[str, Opener]) -> None:  # noqa: F811
    _, open_ = opener
    reg = Registrar(open_())
    reg.recover()
    for n in (1, 2, 3, 4):
        reg.apply(AdmitAgent(agent(n)))
    reg.apply(MarkUnreachable(agent(2), 100.0))
    reg.apply(MarkUnreachable(agent(3), 101.0))
    reg.apply(MarkReachable(agent(3)))  # back: admitted again, unreachable entry gone
    reg.apply(MarkGone("a4", 102.0))
    reg.apply(RemoveAgent("a1"))
    state = Registrar(open_()).recover()
    assert set(state.admitted) == {"a3"}
    assert {k: t for k, (_, t) in state.unreachable.items()} == {"a2": 100.0}
    assert state.gone == {"a4": 102.0}
    assert reg.fenced is None


def test_a_deposed_master_cannot_overwrite_its_successor(opener: tuple[str, Opener]) -> None:  # noqa: F811
    _, open_ = opener
    conflicts: list[str] = []
    old = Registrar(open_(), on_conflict=conflicts.append)
    old.recover()
    old.apply(AdmitAgent(agent(1)))
    # A new leader recovers and changes the registry...
    new = Registrar(open_())
    assert set(new.recover().admitted) == {"a1"}
    new.apply(MarkUnreachable(agent(1), 5.0))
    # ...then the old one, still believing it leads, tries to write: refused, once, loudly.
    old.apply(MarkUnreachable(agent(1), 9.0))
    assert len(conflicts) == 1 and "another master" in conflicts[0] and old.fenced
    old.apply(AdmitAgent(agent(2)))  # and it writes nothing more
    assert len(conflicts) == 1
    state = Registrar(open_()).recover()
    assert state.admitted == {} and state.unreachable["a1"][1] == 5.0


def test_a_key_the_registrar_knows_is_absent_costs_no_round_trip() -> None:
    calls: list[str] = []

    class Counting(MemoryStore):
        def delete(self, key: str, expected_version: int | None = None) -> bool:
            calls.append(key)
            return super().delete(key, expected_version)

    reg = Registrar(Counting())
    reg.recover()
    reg.apply(AdmitAgent(agent(1)))  # nothing unreachable to delete
    assert calls == []
    reg.apply(MarkUnreachable(agent(1), 1.0))
    assert calls == [ADMITTED + "a1"]
    reg.apply(MarkReachable(agent(1)))
    assert calls == [ADMITTED + "a1", UNREACHABLE + "a1"]


@pytest.mark.parametrize("op", [AdmitAgent(agent(7)), MarkGone("a7", 1.0)])
def test_writes_are_conditional_on_what_recovery_saw(op) -> None:
    store = MemoryStore()
    reg = Registrar(store, on_conflict=lambda reason: None)
    reg.recover()
    # Someone else creates the keys after our recovery.
    store.put(ADMITTED + "a7", b"{}")
    store.put("agents/gone/a7", b'{"time":0}')
    reg.apply(op)
    assert reg.fenced is not None
