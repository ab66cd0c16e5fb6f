"""Registry writes off the event loop (issue 10 item 5): an agent whose SUBSCRIBE needs a
registry write waits in the core's `registering` collection and hears SUBSCRIBED only once the
write is applied; on loopback, a slow registry write does not hold up anything else."""

from __future__ import annotations

import asyncio
import threading

import aiohttp

from mezzo.master.flags import MasterFlags
from mezzo.master.main import build_master
from mezzo.master.registry import MarkReachable
from mezzo.store.memory import MemoryStore
from mezzo.testing.emulated_agent import EmulatedAgent
from mezzo.testing.master_cluster import MasterCluster
from tests.test_master_http import serve_on_loopback


def test_a_new_agent_is_registered_once_its_admission_is_applied() -> None:
    c = MasterCluster()
    s = c.add_scheduler()
    c.outbox.hold_registry = True
    agent = c.add_agent()
    assert agent.agent_id in c.master.registering and agent.agent_id not in c.master.agents
    assert agent.stream.events == [] and c.store.list("agents/admitted/") == []
    c.allocate()
    assert not s.all_of("OFFERS")
    c.outbox.release_registry()
    assert c.store.list("agents/admitted/") == [f"agents/admitted/{agent.agent_id}"]
    assert agent.agent_id in c.master.agents and not c.master.registering
    assert agent.next_event("SUBSCRIBED").subscribed.agent_id.value == agent.agent_id
    c.allocate()
    assert len(s.all_of("OFFERS")) == 1


def test_an_agent_that_leaves_while_registering_is_not_registered() -> None:
    c = MasterCluster()
    c.outbox.hold_registry = True
    agent = c.add_agent()
    agent.disconnect()
    assert not c.master.registering
    c.outbox.release_registry()
    assert agent.agent_id not in c.master.agents and agent.stream.events == []
    # Admitted all the same: it may re-register with its id later.
    assert c.store.list("agents/admitted/") == [f"agents/admitted/{agent.agent_id}"]


def test_a_returning_unreachable_agent_waits_for_its_readmission() -> None:
    store = MemoryStore()
    first = MasterCluster(store=store)
    agent = first.add_agent()
    first.master.mark_unreachable(first.master.agents[agent.agent_id])
    second = MasterCluster(store=store)  # a new leader knows it as unreachable
    agent.cluster = second
    second.outbox.hold_registry = True
    agent.subscribe()
    assert isinstance(second.outbox.held[0], MarkReachable)
    assert agent.stream.events == [] and agent.agent_id in second.master.registering
    second.outbox.release_registry()
    assert agent.next_event("SUBSCRIBED") and agent.agent_id in second.master.agents


def test_a_re_subscription_while_registering_replaces_the_stream() -> None:
    store = MemoryStore()
    first = MasterCluster(store=store)
    agent = first.add_agent()
    first.master.mark_unreachable(first.master.agents[agent.agent_id])
    second = MasterCluster(store=store)
    agent.cluster = second
    second.outbox.hold_registry = True
    agent.subscribe()
    old = agent.stream
    agent.subscribe()
    assert old.closed and len(second.outbox.held) == 1
    second.outbox.release_registry()
    assert agent.next_event("SUBSCRIBED") and second.master.agents[agent.agent_id].stream is agent.stream


class SlowStore(MemoryStore):
    """A registry whose writes wait until the test lets them through."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def commit(self, ops):  # type: ignore[no-untyped-def]
        assert self.gate.wait(30)
        return super().commit(ops)


async def test_a_slow_registry_write_does_not_block_the_master() -> None:
    flags = MasterFlags.parse({"registry": "in_memory", "port": "0", "ip": "127.0.0.1"})
    process = build_master(flags)
    store = SlowStore()
    process.registrar.store = store
    process.master.recover(process.registrar.recover())
    runner, url = await serve_on_loopback(process, flags)
    agent = EmulatedAgent(url, hostname="slow")
    try:
        registering = asyncio.create_task(agent.start())
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                if process.master.registering:
                    break
                await asyncio.sleep(0.01)
            assert process.master.registering and not agent.subscribed.is_set()
            # The write is stuck; the master answers anything else meanwhile.
            async with session.get(url + "/master/state") as resp:
                assert resp.status == 200 and (await resp.json())["slaves"] == []
            store.gate.set()
            await asyncio.wait_for(registering, 10)
        assert agent.agent_id in process.master.agents
        assert store.list("agents/admitted/") == [f"agents/admitted/{agent.agent_id}"]
    finally:
        store.gate.set()
        await agent.stop()
        await runner.cleanup()
        process.server.outbox.close()
