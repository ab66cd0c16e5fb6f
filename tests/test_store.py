"""The Store contract, run against every implementation (memory, sqlite, real ZooKeeper)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mezzo.core.errors import ConfigError, ValidationError
from mezzo.store import (
    Entry,
    MemoryStore,
    Put,
    Remove,
    Store,
    StoreError,
    VersionConflict,
    open_store,
)
from mezzo.store.sqlite import SqliteStore

# A factory opens (or re-opens) the same underlying store: "durable" stores keep data across it.
Opener = Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite", pytest.param("zookeeper", marks=pytest.mark.zookeeper)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Opener]]:
    opened: list[Store] = []
    kind: str = request.param
    if kind == "memory":
        shared = MemoryStore()

        def open_() -> Store:
            return shared

    elif kind == "sqlite":

        def open_() -> Store:
            store = SqliteStore(tmp_path / "reg" / "registry.sqlite")
            opened.append(store)
            return store

    else:
        chroot = request.getfixturevalue("zk_chroot")

        def open_() -> Store:
            store = open_store(chroot.url + "/registry")
            opened.append(store)
            return store

    yield kind, open_
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: tuple[str, Opener]) -> Store:
    return opener[1]()


def test_create_if_absent_then_conflict(store: Store) -> None:
    assert store.get("a") is None
    assert store.set("a", b"one", None) == 0
    entry = store.get("a")
    assert entry is not None and entry.value == b"one" and entry.version == 0
    with pytest.raises(VersionConflict) as info:
        store.set("a", b"two", None)
    assert info.value.expected is None and info.value.actual == 0
    assert store.get("a").value == b"one"  # type: ignore[union-attr]


def test_compare_and_swap(store: Store) -> None:
    v0 = store.set("k", b"x", None)
    v1 = store.set("k", b"y", v0)
    assert v1 == v0 + 1
    with pytest.raises(VersionConflict) as info:
        store.set("k", b"stale", v0)
    assert info.value.actual == v1
    assert store.get("k") == type(store.get("k"))(b"y", v1)  # type: ignore[misc]
    with pytest.raises(VersionConflict) as missing:
        store.set("absent", b"z", 3)
    assert missing.value.actual is None


def test_delete(store: Store) -> None:
    v = store.set("d", b"1", None)
    with pytest.raises(VersionConflict):
        store.delete("d", v + 5)
    assert store.delete("d", v) is True
    assert store.get("d") is None
    assert store.delete("d") is False
    with pytest.raises(VersionConflict):
        store.delete("d", 0)
    store.set("d", b"again", None)
    assert store.delete("d") is True


def test_list_by_prefix_and_odd_keys(store: Store) -> None:
    keys = [
        "agents/S1",
        "agents/S2",
        "agents%weird",
        "agentsX",
        "frameworks/F1",
        ".",
        "..",
        "a b/ü",
    ]
    for i, key in enumerate(keys):
        store.set(key, str(i).encode(), None)
    assert store.list("agents/") == ["agents/S1", "agents/S2"]
    assert store.list("agents") == ["agents%weird", "agents/S1", "agents/S2", "agentsX"]
    assert store.list() == sorted(keys)
    assert store.list("nothing") == []
    assert store.get("..").value == b"6"  # type: ignore[union-attr]
    assert store.items("frameworks/")["frameworks/F1"].value == b"4"


def test_binary_and_empty_values(store: Store) -> None:
    blob = bytes(range(256)) * 64
    store.set("blob", blob, None)
    store.set("empty", b"", None)
    assert store.get("blob").value == blob  # type: ignore[union-attr]
    assert store.get("empty").value == b""  # type: ignore[union-attr]


def test_put_overwrites(store: Store) -> None:
    assert store.put("p", b"1") == 0
    assert store.put("p", b"2") == 1
    assert store.get("p").value == b"2"  # type: ignore[union-attr]


def test_invalid_keys_and_values(store: Store) -> None:
    with pytest.raises(ValidationError):
        store.get("")
    with pytest.raises(ValidationError):
        store.set("nul\x00", b"", None)
    with pytest.raises(ValidationError):
        store.set("text", "not bytes", None)  # type: ignore[arg-type]


def test_concurrent_cas_has_one_winner(store: Store) -> None:
    """Threads racing a CAS on the same version: exactly one wins, the rest see a conflict."""
    v = store.set("race", b"0", None)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def contend(i: int) -> None:
        barrier.wait()
        try:
            store.set("race", str(i).encode(), v)
            results.append("won")
        except VersionConflict:
            results.append("lost")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["lost"] * 7 + ["won"]
    assert store.get("race").version == v + 1  # type: ignore[union-attr]


def test_persistence_across_reopen(opener: tuple[str, Opener]) -> None:
    kind, open_ = opener
    first = open_()
    v = first.set("agents/S1", b"info", None)
    first.set("agents/S1", b"info2", v)
    if kind != "memory":
        first.close()
        with pytest.raises(StoreError):
            first.get("agents/S1")
    second = open_()
    entry = second.get("agents/S1")
    assert entry is not None and entry.value == b"info2" and entry.version == v + 1
    assert second.list("agents/") == ["agents/S1"]


async def test_async_wrappers(store: Store) -> None:
    assert await store.aset("x", b"1", None) == 0
    assert (await store.aget("x")).value == b"1"  # type: ignore[union-attr]
    assert await store.alist("") == ["x"]
    assert await store.adelete("x", 0) is True
    assert await store.aput("y", b"2") == 0
    assert (await store.aitems())["y"].version == 0


def test_open_store_specs(tmp_path: Path) -> None:
    assert isinstance(open_store("in_memory"), MemoryStore)
    with open_store("sqlite", work_dir=tmp_path) as s:
        assert isinstance(s, SqliteStore) and s.path == tmp_path / "registry.sqlite"
    with open_store(f"sqlite:{tmp_path / 'x' / 'r.db'}") as s:
        s.set("k", b"v", None)
    assert (tmp_path / "x" / "r.db").exists()
    for bad in [
        "sqlite",
        "mysql://x",
        "zk://",
        "zk:///path",
        "zk://h:2181",
        "zk://h:2181/",
        "zk://u@h/p",
    ]:
        with pytest.raises(ConfigError):
            open_store(bad)


def test_sqlite_two_handles_share_cas(tmp_path: Path) -> None:
    """Two connections on one file (e.g. two processes): CAS still has one winner."""
    a = SqliteStore(tmp_path / "r.db")
    b = SqliteStore(tmp_path / "r.db")
    try:
        v = a.set("k", b"a", None)
        assert b.set("k", b"b", v) == v + 1
        with pytest.raises(VersionConflict):
            a.set("k", b"a2", v)
        assert a.get("k").value == b"b"  # type: ignore[union-attr]
    finally:
        a.close()
        b.close()


def test_get_many_keeps_order_and_reports_missing_keys(store: Store) -> None:
    for i in range(70):
        store.set(f"k/{i:02d}", b"v%d" % i, None)
    store.set("k/05", b"changed", 0)
    keys = ["k/05", "nope", *(f"k/{i:02d}" for i in range(70) if i != 5)]
    entries = store.get_many(keys)
    assert entries[0] is not None and (entries[0].value, entries[0].version) == (b"changed", 1)
    assert entries[1] is None
    assert [e.value for e in entries[2:] if e is not None] == [b"v%d" % i for i in range(70) if i != 5]
    assert store.get_many([]) == []


def test_commit_is_all_or_nothing(store: Store) -> None:
    store.set("a", b"1", None)
    store.set("b", b"1", None)
    assert store.commit([Put("a", b"2", 0), Put("c", b"new", None), Remove("b", 0)]) == [1, 0, None]
    assert store.get("a") == Entry(b"2", 1) and store.get("c") == Entry(b"new", 0)
    assert store.get("b") is None
    # The last check fails: nothing of the batch is applied, and the conflict names the key.
    with pytest.raises(VersionConflict) as err:
        store.commit([Put("a", b"3", 1), Remove("c", 0), Put("d", b"x", None), Put("c", b"y", 5)])
    assert err.value.key == "c"
    assert store.get("a") == Entry(b"2", 1) and store.get("c") == Entry(b"new", 0)
    assert store.get("d") is None
    # Creating an existing key, or removing a missing one, is a conflict too.
    with pytest.raises(VersionConflict):
        store.commit([Put("a", b"x", None)])
    with pytest.raises(VersionConflict):
        store.commit([Remove("zz", 0)])
    assert store.list() == ["a", "c"]
