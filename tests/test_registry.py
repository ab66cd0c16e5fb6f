"""The registrar over every store (memory, sqlite, real ZooKeeper): operations, recovery, and
the compare-and-swap that stops a deposed master from overwriting its successor's registry."""

from __future__ import annotations

import pytest

from mezzo.api.common import AgentID, AgentInfo
from mezzo.master.registry import (
    ADMITTED,
    JOURNAL,
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


def test_each_operation_is_one_commit_without_needless_deletes() -> None:
    commits: list[list[tuple[str, str]]] = []

    class Recording(MemoryStore):
        def commit(self, ops):  # type: ignore[no-untyped-def]
            commits.append([(type(op).__name__, op.key) for op in ops])
            return super().commit(ops)

    reg = Registrar(Recording())
    reg.recover()
    reg.apply(AdmitAgent(agent(1)))  # nothing unreachable to delete: no Remove sent
    reg.apply(MarkUnreachable(agent(1), 1.0))
    reg.apply(MarkReachable(agent(1)))
    # Each commit also rewrites the journal (the keys it changed), in the same commit.
    assert commits == [
        [("Put", ADMITTED + "a1"), ("Put", JOURNAL)],
        [("Put", UNREACHABLE + "a1"), ("Remove", ADMITTED + "a1"), ("Put", JOURNAL)],
        [("Put", ADMITTED + "a1"), ("Remove", UNREACHABLE + "a1"), ("Put", JOURNAL)],
    ]


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


async def test_a_master_whose_registry_another_master_changed_exits_1(tmp_path) -> None:
    import asyncio
    import json

    import aiohttp

    from mezzo.master.flags import MasterFlags
    from mezzo.master.main import serve
    from mezzo.store.sqlite import SqliteStore
    from mezzo.testing.emulated_agent import EmulatedAgent

    db = tmp_path / "registry.sqlite"
    port_file = tmp_path / "port"
    flags = MasterFlags.parse({"ip": "127.0.0.1", "port": "0", "registry": f"sqlite:{db}",
                               "port_file": str(port_file), "logging_level": "WARNING"})
    master = asyncio.create_task(serve(flags, stop=asyncio.Event()))
    agent: EmulatedAgent | None = None
    try:
        while not port_file.exists():
            assert not master.done(), master
            await asyncio.sleep(0.02)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        agent = EmulatedAgent(url, hostname="a")
        await agent.start()  # admitted: written to the registry
        # Another master (same registry) takes over and marks the agent unreachable...
        other = Registrar(SqliteStore(db))
        info = other.recover().admitted[agent.agent_id]  # type: ignore[index]
        other.apply(MarkUnreachable(info, 1.0))
        other.close()
        # ...so this master's next write about that agent must not go through.
        body = {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": agent.agent_id}}}
        async with aiohttp.ClientSession() as session:
            await session.post(url + "/api/v1", data=json.dumps(body),
                               headers={"Content-Type": "application/json", "Accept": "application/json"})
        assert await asyncio.wait_for(master, 10) == 1
        state = Registrar(SqliteStore(db)).recover()
        # Nothing of the refused operation was written (it is one atomic commit).
        assert agent.agent_id in state.unreachable and state.gone == {} and state.admitted == {}
    finally:
        if agent is not None:
            await agent.stop()
        if not master.done():
            master.cancel()


def test_a_batch_is_the_same_operations_in_fewer_commits(opener: tuple[str, Opener]) -> None:  # noqa: F811
    """`apply_batch`: the same end state as applying one by one, operations on a key already
    in the commit starting the next commit (their versions follow), at most MAX_BATCH each."""
    from mezzo.master import registry

    _, open_ = opener
    store = open_()
    commits: list[int] = []
    commit = store.commit

    def counting(ops: list) -> list:  # type: ignore[type-arg]
        commits.append(len(ops))
        return commit(ops)

    store.commit = counting  # type: ignore[method-assign]
    reg = Registrar(store)
    reg.recover()
    operations = [AdmitAgent(agent(n)) for n in range(registry.MAX_BATCH + 10)]
    operations += [MarkUnreachable(agent(2), 100.0), MarkReachable(agent(2)), MarkGone("a3", 101.0)]
    reg.apply_batch(operations)
    # 266 admissions: 256 in one commit, 10 more with the first MarkUnreachable of a2... then a
    # commit per operation on a key already in the current one.
    assert len(commits) <= 5 and sum(1 for c in commits if c > 1) >= 2
    state = Registrar(open_()).recover()
    assert len(state.admitted) == registry.MAX_BATCH + 10 - 1 and "a3" not in state.admitted
    assert "a2" in state.admitted and state.unreachable == {} and state.gone == {"a3": 101.0}
    assert reg.fenced is None


def test_a_standby_copy_follows_the_leader_a_read_or_two_at_a_time(opener: tuple[str, Opener]) -> None:  # noqa: F811
    """A warm standby: one whole read, then `refresh()` re-reads only what the commits since
    changed (admissions, removals, weights); once elected its `recover()` is exactly what a
    whole read would give, without one, and its writes carry the right versions."""
    from mezzo.master.registry import UpdateWeights

    _, open_ = opener
    leader = Registrar(open_())
    leader.recover()
    leader.apply_batch([AdmitAgent(agent(n)) for n in range(20)])
    standby_store = open_()
    reads: list[str] = []
    get_many = standby_store.get_many

    def counting(keys: list[str]) -> list:  # type: ignore[type-arg]
        reads.extend(keys)
        return get_many(keys)

    standby_store.get_many = counting  # type: ignore[method-assign]
    standby = Registrar(standby_store)
    standby.refresh()
    assert standby.full_reads == 1 and standby.warm
    standby.refresh()  # nothing committed since: no key read
    reads.clear()
    standby.refresh()
    assert reads == []
    leader.apply(MarkUnreachable(agent(3), 7.0))
    leader.apply(RemoveAgent("a4"))
    leader.apply(UpdateWeights({"web": 2.0}))
    standby.refresh()
    assert sorted(reads) == sorted([ADMITTED + "a3", UNREACHABLE + "a3", ADMITTED + "a4", "weights"])
    leader.apply(MarkGone("a5", 9.0))  # the leader's last write before it dies
    reads.clear()
    state = standby.recover()
    assert standby.full_reads == 1 and len(reads) == 2  # a5's keys only (gone, admitted)
    assert state == Registrar(open_()).recover()
    assert set(state.admitted) == {f"a{n}" for n in range(20)} - {"a3", "a4", "a5"}
    assert state.unreachable["a3"][1] == 7.0 and state.gone == {"a5": 9.0}
    assert state.weights == {"web": 2.0}
    # The new leader's writes are conditional on the versions its copy holds: no conflict.
    standby.apply(MarkReachable(agent(3)))
    standby.apply(AdmitAgent(agent(30)))
    assert standby.fenced is None
    assert set(Registrar(open_()).recover().admitted) == set(state.admitted) | {"a3", "a30"}
    # And the old leader, back from the dead, is refused at once (the journal's version).
    conflicts: list[str] = []
    leader.on_conflict = conflicts.append
    leader.apply(AdmitAgent(agent(99)))
    assert leader.fenced and len(conflicts) == 1


def test_a_standby_too_far_behind_reads_the_registry_whole(
    opener: tuple[str, Opener], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """Past what the journal remembers (JOURNAL_MAX_KEYS), or on a registry without a
    journal (written by an older master), the copy is not trusted: a whole read instead,
    which a standby makes only so often (FULL_READ_MIN_SECONDS, here longer than the test)."""
    from mezzo.master import registry

    monkeypatch.setattr(registry, "FULL_READ_MIN_SECONDS", 3600.0)
    _, open_ = opener
    store = open_()
    store.put(ADMITTED + "old", b'{"hostname": "old", "id": {"value": "old"}}')  # no journal
    standby = Registrar(open_())
    standby.refresh()
    assert standby.full_reads == 1 and not standby.warm
    leader = Registrar(open_())
    assert set(leader.recover().admitted) == {"old"}
    standby.refresh()  # still no journal: the copy stays untrusted, no whole read yet
    assert standby.full_reads == 1 and not standby.warm
    leader.apply(AdmitAgent(agent(1)))  # the first commit with a journal
    standby.refresh()  # the journal began: one whole read now, trusted from then on
    assert standby.full_reads == 2 and standby.warm
    for n in range(registry.JOURNAL_MAX_KEYS + 5):  # one key each: more than it remembers
        leader.apply(AdmitAgent(agent(100 + n)))
    standby.refresh()  # too far behind, and a whole read was just made: not now
    assert standby.full_reads == 2 and not standby.warm
    state = standby.recover()
    assert standby.full_reads == 3 and state == Registrar(open_()).recover()
    assert len(state.admitted) == registry.JOURNAL_MAX_KEYS + 7
