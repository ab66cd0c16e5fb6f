"""The executor SDK (asyncio client and thread driver) against the fake agent on real HTTP."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from mezzo.api.common import (
    AgentInfo,
    ExecutorInfo,
    FrameworkInfo,
    KillPolicy,
    TaskID,
    TaskInfo,
    TaskState,
)
from mezzo.core.errors import ConfigError
from mezzo.executor import Executor, ExecutorClient, ExecutorDriver, ExecutorSettings
from mezzo.executor.testing import FakeAgent, command_task


class Recorder(Executor):
    """Records callbacks; runs launched tasks to completion at once (async callbacks)."""

    def __init__(self, finish: bool = True) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.finish = finish

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    async def registered(
        self,
        driver: Any,
        executor_info: ExecutorInfo,
        framework_info: FrameworkInfo,
        agent_info: AgentInfo,
    ) -> None:
        self.calls.append(("registered", (executor_info, framework_info, agent_info)))

    def reregistered(self, driver: Any, agent_info: AgentInfo) -> None:
        self.calls.append(("reregistered", agent_info))

    def disconnected(self, driver: Any) -> None:
        self.calls.append(("disconnected", None))

    async def launch_task(self, driver: ExecutorClient, task: TaskInfo) -> None:
        self.calls.append(("launch_task", task))
        await driver.send_status(task.task_id, TaskState.TASK_RUNNING)
        if self.finish:
            await driver.send_status(task.task_id.value, "TASK_FINISHED", message="done")

    async def kill_task(
        self, driver: ExecutorClient, task_id: TaskID, kill_policy: KillPolicy | None
    ) -> None:
        self.calls.append(("kill_task", (task_id, kill_policy)))
        await driver.send_status(task_id, TaskState.TASK_KILLED)

    def acknowledged(self, driver: Any, task_id: TaskID, uuid: bytes) -> None:
        self.calls.append(("acknowledged", (task_id, uuid)))

    async def framework_message(self, driver: ExecutorClient, data: bytes) -> None:
        self.calls.append(("framework_message", data))
        await driver.send_framework_message(b"echo:" + data)

    def shutdown(self, driver: Any) -> None:
        self.calls.append(("shutdown", None))

    def error(self, driver: Any, message: str) -> None:
        self.calls.append(("error", message))


def settings_for(agent: FakeAgent, **extra: str) -> ExecutorSettings:
    return ExecutorSettings.from_env(agent.executor_env(**extra))


def test_settings_from_env() -> None:
    s = ExecutorSettings.from_env(
        {
            "MESOS_AGENT_ENDPOINT": "10.0.0.1:5051",
            "MESOS_FRAMEWORK_ID": "f",
            "MESOS_EXECUTOR_ID": "e",
            "MESOS_CHECKPOINT": "0",
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "3secs",
            "MESOS_SUBSCRIPTION_BACKOFF_MAX": "500ms",
            "MESOS_RECOVERY_TIMEOUT": "1mins",
        }
    )
    assert s.url == "http://10.0.0.1:5051/api/v1/executor"
    assert (s.checkpoint, s.shutdown_grace_period) == (False, 3.0)
    assert (s.subscription_backoff_max, s.recovery_timeout) == (0.5, 60.0)
    with pytest.raises(ConfigError, match="MESOS_EXECUTOR_ID"):
        ExecutorSettings.from_env({"MESOS_AGENT_ENDPOINT": "h:1", "MESOS_FRAMEWORK_ID": "f"})


async def test_client_lifecycle_launch_kill_message_shutdown() -> None:
    recorder = Recorder()
    async with FakeAgent(launch_on_subscribe=[command_task("t1", "x")]) as agent:
        client = ExecutorClient(recorder, settings_for(agent))
        await client.start()
        try:
            await agent.wait_for(lambda: "TASK_FINISHED" in agent.states(), what="FINISHED")
            assert agent.states() == ["TASK_RUNNING", "TASK_FINISHED"]
            for update in agent.updates:
                assert update.status["source"] == "SOURCE_EXECUTOR"
                assert update.status["agent_id"] == {"value": agent.agent_id}
                assert update.status["executor_id"] == {"value": agent.executor_id}
                assert len(base64.b64decode(update.status["uuid"])) == 16
            assert agent.updates[1].status["message"] == "done"
            # Acknowledged: nothing left to list on a re-subscription.
            await agent.wait_for(lambda: recorder.names().count("acknowledged") == 2)
            assert client.unacknowledged_updates == {}
            assert client.unacknowledged_tasks == {}
            executor_info, framework_info, agent_info = recorder.calls[0][1]
            assert recorder.calls[0][0] == "registered"
            assert executor_info.executor_id.value == agent.executor_id
            assert framework_info.id is not None and framework_info.id.value == agent.framework_id
            assert agent_info.id is not None and agent_info.id.value == agent.agent_id

            agent.kill("t1", grace_seconds=2)
            await agent.wait_for(lambda: "TASK_KILLED" in agent.states(), what="KILLED")
            _, (task_id, policy) = next(c for c in recorder.calls if c[0] == "kill_task")
            assert task_id.value == "t1"
            assert policy.grace_period.nanoseconds == 2_000_000_000

            agent.send({"type": "MESSAGE", "message": {"data": base64.b64encode(b"hi").decode()}})
            await agent.wait_for(lambda: agent.messages, what="MESSAGE call")
            assert agent.messages == [b"echo:hi"]
            agent.send({"type": "ERROR", "error": {"message": "boom"}})
            agent.send({"type": "HEARTBEAT"})
            agent.shutdown()
            await asyncio.wait_for(client.join(), 5)
            assert recorder.names()[-2:] == ["error", "shutdown"]
            assert recorder.names().count("shutdown") == 1
        finally:
            await client.stop()


async def test_resubscribes_with_unacknowledged_updates_and_tasks_when_checkpointing() -> None:
    recorder = Recorder(finish=False)
    agent = FakeAgent(
        checkpoint=True, auto_ack=False, launch_on_subscribe=[command_task("t1", "x")]
    )
    async with agent:
        client = ExecutorClient(recorder, settings_for(agent))
        await client.start()
        try:
            await agent.wait_for(lambda: agent.states() == ["TASK_RUNNING"], what="RUNNING")
            agent.drop_stream()
            await agent.wait_for(lambda: len(agent.subscriptions) == 2, what="re-subscribe")
            sub = agent.subscriptions[1].subscribe
            assert [u["status"]["state"] for u in sub["unacknowledged_updates"]] == ["TASK_RUNNING"]
            assert (
                sub["unacknowledged_updates"][0]["status"]["uuid"]
                == agent.updates[0].status["uuid"]
            )
            assert [t["task_id"]["value"] for t in sub["unacknowledged_tasks"]] == ["t1"]
            await agent.wait_for(lambda: "reregistered" in recorder.names(), what="reregistered")
            assert recorder.names()[:3] == ["registered", "launch_task", "disconnected"]
            agent.acknowledge(agent.updates[0])
            await agent.wait_for(lambda: not client.unacknowledged_updates, what="ack")
            assert client.unacknowledged_tasks == {}
            assert not client.stopped
        finally:
            await client.stop()


async def test_survives_an_agent_restart_when_checkpointing() -> None:
    recorder = Recorder(finish=False)
    agent = FakeAgent(checkpoint=True, launch_on_subscribe=[command_task("t1", "x")])
    await agent.start()
    client = ExecutorClient(recorder, settings_for(agent))
    try:
        await client.start()
        await agent.wait_for(lambda: agent.states() == ["TASK_RUNNING"], what="RUNNING")
        port = agent.port
        await agent.stop()
        await agent.wait_for(lambda: not client.connected, what="disconnect")
        # Sent while the agent is down: kept, and listed on the next SUBSCRIBE.
        await client.send_status("t1", "TASK_FINISHED")
        await agent.start(port)
        await agent.wait_for(lambda: len(agent.subscriptions) == 2, what="re-subscribe")
        listed = agent.subscriptions[1].subscribe["unacknowledged_updates"]
        assert [u["status"]["state"] for u in listed] == ["TASK_FINISHED"]
    finally:
        await client.stop()
        await agent.stop()


async def test_stream_loss_without_checkpoint_shuts_down() -> None:
    recorder = Recorder(finish=False)
    async with FakeAgent(launch_on_subscribe=[command_task("t1", "x")]) as agent:
        client = ExecutorClient(recorder, settings_for(agent))
        await client.start()
        try:
            await agent.wait_for(lambda: agent.states() == ["TASK_RUNNING"], what="RUNNING")
            agent.drop_stream()
            await asyncio.wait_for(client.join(), 5)
            assert recorder.names()[-2:] == ["disconnected", "shutdown"]
            assert len(agent.subscriptions) == 1
        finally:
            await client.stop()


class PlainExecutor(Executor):
    """Plain (thread) callbacks that call the blocking driver methods."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def registered(self, driver: Any, *_: Any) -> None:
        self.events.append("registered")

    def launch_task(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        self.events.append("launch_task")
        driver.send_status(task.task_id, TaskState.TASK_RUNNING)
        driver.send_status(task.task_id, TaskState.TASK_FINISHED)
        driver.send_framework_message(b"finished " + task.task_id.value.encode())

    def shutdown(self, driver: Any) -> None:
        self.events.append("shutdown")


async def test_thread_driver() -> None:
    executor = PlainExecutor()
    async with FakeAgent(launch_on_subscribe=[command_task("t1", "x")]) as agent:
        driver = ExecutorDriver(executor, settings_for(agent))
        await asyncio.to_thread(driver.start)
        try:
            await agent.wait_for(lambda: agent.messages, what="message")
            assert agent.states() == ["TASK_RUNNING", "TASK_FINISHED"]
            assert agent.messages == [b"finished t1"]
            agent.shutdown()
            assert await asyncio.to_thread(driver.join, 5)
            assert executor.events == ["registered", "launch_task", "shutdown"]
        finally:
            driver.stop()
            await asyncio.to_thread(driver.join, 5)
