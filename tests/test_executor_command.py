"""The built-in command executor as a real process against a fake agent on real HTTP.

Every test starts `python -S -E mezzo/executor/command.py` (exactly as the agent does) in its
own session, drives it through `mezzo.executor.testing.FakeAgent` on a loopback port, and kills
the session at the end. Timing figures are printed (run with `-s` to see them); they are not
asserted (performance lives in bench/).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import mezzo
from mezzo.api.recordio import encode_record
from mezzo.executor import command_executor as ce
from mezzo.executor.testing import FakeAgent, command_task, status_uuid

COMMAND_PY = Path(mezzo.__file__).parent / "executor" / "command.py"


class ExecutorProcess:
    def __init__(self, proc: asyncio.subprocess.Process, started: float, sandbox: Path) -> None:
        self.proc = proc
        self.started = started
        self.sandbox = sandbox

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def wait(self, timeout: float = 10.0) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def stderr(self) -> str:
        return (self.sandbox / "stderr").read_text(errors="replace")

    def kill(self) -> None:
        # The executor leads its own session; its task has its own group in that session.
        for pid in _session_members(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _session_members(sid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            found.append(int(entry))
    return found


@contextlib.asynccontextmanager
async def run_executor(
    agent: FakeAgent, sandbox: Path, **env: str
) -> AsyncIterator[ExecutorProcess]:
    sandbox.mkdir(parents=True, exist_ok=True)
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **agent.executor_env(**env)}
    full_env["MESOS_SANDBOX"] = str(sandbox)
    with open(sandbox / "stdout", "ab") as out, open(sandbox / "stderr", "ab") as err:
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-S",
            "-E",
            str(COMMAND_PY),
            env=full_env,
            cwd=sandbox,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    process = ExecutorProcess(proc, started, sandbox)
    try:
        yield process
    finally:
        process.kill()
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(proc.wait(), 5)


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# ----------------------------------------------------------------------------- basics


async def test_true_runs_to_finished_and_executor_exits(tmp_path: Path) -> None:
    agent = FakeAgent(launch_on_subscribe=[command_task("t1", "true")])
    async with agent, run_executor(agent, tmp_path) as ex:
        assert await ex.wait() == 0, ex.stderr()
    assert agent.states() == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    sub = agent.subscriptions[0].subscribe
    assert sub.get("unacknowledged_tasks", []) == []
    assert sub.get("unacknowledged_updates", []) == []
    for update in agent.updates:
        status = update.status
        assert status["source"] == "SOURCE_EXECUTOR"
        assert status["executor_id"] == {"value": agent.executor_id}
        assert status["agent_id"] == {"value": agent.agent_id}
        assert len(status_uuid(update)) == 16
        assert status_uuid(update)[6] >> 4 == 4  # a version-4 uuid
        assert abs(status["timestamp"] - time.time()) < 30
    assert agent.updates[-1].status["message"] == "Command exited with status 0"
    assert len({u.status["uuid"] for u in agent.updates}) == 3


async def test_exit_status_is_reported_as_failed(tmp_path: Path) -> None:
    agent = FakeAgent(launch_on_subscribe=[command_task("t1", "exit 3")])
    async with agent, run_executor(agent, tmp_path) as ex:
        assert await ex.wait() == 0
    assert agent.states() == ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"]
    assert agent.updates[-1].status["message"] == "Command exited with status 3"


async def test_signal_death_is_reported_with_the_signal_name(tmp_path: Path) -> None:
    task = command_task("t1", "kill -SEGV $$")
    agent = FakeAgent(launch_on_subscribe=[task])
    async with agent, run_executor(agent, tmp_path) as ex:
        assert await ex.wait() == 0
    assert agent.states()[-1] == "TASK_FAILED"
    assert agent.updates[-1].status["message"] == "Command terminated with signal SIGSEGV"


async def test_shell_false_execs_value_with_arguments(tmp_path: Path) -> None:
    # argv[0] comes from `arguments` (Mesos semantics); `printf` is found on the task's PATH.
    task = command_task("t1", "printf", shell=False, arguments=["printf", "%s|%s", "a b", "$HOME"])
    agent = FakeAgent(launch_on_subscribe=[task])
    async with agent, run_executor(agent, tmp_path) as ex:
        assert await ex.wait() == 0
    assert agent.states()[-1] == "TASK_FINISHED"
    assert (tmp_path / "stdout").read_text() == "a b|$HOME"  # no shell: nothing expanded


async def test_shell_false_missing_program_fails_the_task(tmp_path: Path) -> None:
    task = command_task("t1", "/nonexistent/program", shell=False)
    agent = FakeAgent(launch_on_subscribe=[task])
    async with agent, run_executor(agent, tmp_path) as ex:
        assert await ex.wait() == 0
    assert agent.states() == ["TASK_STARTING", "TASK_FAILED"]
    assert "Failed to launch command" in agent.updates[-1].status["message"]


async def test_environment_variables_and_sandbox_cwd(tmp_path: Path) -> None:
    task = command_task(
        "t1", 'echo "$GREETING/$MESOS_EXECUTOR_ID/$(pwd)"', env={"GREETING": "hello world"}
    )
    agent = FakeAgent(launch_on_subscribe=[task])
    async with agent, run_executor(agent, tmp_path) as ex:
        assert await ex.wait() == 0
    assert agent.states()[-1] == "TASK_FINISHED"
    out = (tmp_path / "stdout").read_text().strip()
    assert out == f"hello world/{agent.executor_id}/{tmp_path}"


async def test_task_runs_in_its_own_group_within_the_executor_session(tmp_path: Path) -> None:
    task = command_task("t1", "sleep 100")
    agent = FakeAgent(launch_on_subscribe=[task])
    async with agent, run_executor(agent, tmp_path) as ex:
        await agent.wait_for(lambda: "TASK_RUNNING" in agent.states(), what="RUNNING")
        members = [p for p in _session_members(ex.pid) if p != ex.pid]
        assert members, "the task should be in the executor's session"
        for pid in members:
            assert os.getpgid(pid) != ex.pid  # not the executor's group: kills stay scoped
        agent.kill("t1", grace_seconds=1)
        assert await ex.wait() == 0


# ----------------------------------------------------------------------------- kill


async def test_kill_sends_sigterm_and_reports_killed(tmp_path: Path) -> None:
    agent = FakeAgent(launch_on_subscribe=[command_task("t1", "sleep 100")])
    async with agent, run_executor(agent, tmp_path) as ex:
        await agent.wait_for(lambda: "TASK_RUNNING" in agent.states(), what="RUNNING")
        sent = time.monotonic()
        agent.kill("t1")
        await agent.wait_for(lambda: "TASK_KILLED" in agent.states(), what="KILLED")
        assert time.monotonic() - sent < 2.0  # SIGTERM suffices: well inside 3 s grace
        assert await ex.wait() == 0
    # No TASK_KILLING: the framework lacks TASK_KILLING_STATE.
    assert agent.states() == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"]


async def test_kill_with_killing_capability_sends_task_killing(tmp_path: Path) -> None:
    agent = FakeAgent(
        capabilities=["TASK_KILLING_STATE"], launch_on_subscribe=[command_task("t1", "sleep 100")]
    )
    async with agent, run_executor(agent, tmp_path) as ex:
        await agent.wait_for(lambda: "TASK_RUNNING" in agent.states(), what="RUNNING")
        agent.kill("t1")
        assert await ex.wait() == 0
    assert agent.states() == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"]


@pytest.mark.slow
async def test_kill_escalates_to_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    # The task ignores SIGTERM (and so does its `sleep`, which inherits the disposition).
    script = "trap '' TERM; echo ready; while true; do sleep 0.05; done"
    task = command_task("t1", script, grace_seconds=5.0)
    agent = FakeAgent(launch_on_subscribe=[task])
    async with agent, run_executor(agent, tmp_path) as ex:
        await agent.wait_for(lambda: "TASK_RUNNING" in agent.states(), what="RUNNING")
        await agent.wait_for(lambda: (tmp_path / "stdout").read_text(), what="trap set")
        sent = time.monotonic()
        agent.kill("t1", grace_seconds=1.0)  # the KILL's policy overrides the task's 5 s
        await agent.wait_for(lambda: "TASK_KILLED" in agent.states(), what="KILLED")
        elapsed = time.monotonic() - sent
        assert await ex.wait() == 0
    assert 0.9 <= elapsed < 3.0, elapsed
    assert agent.updates[-1].status["message"] == "Command terminated with signal SIGKILL"


async def test_max_completion_time_fails_the_task(tmp_path: Path) -> None:
    task = command_task("t1", "sleep 100", max_completion_seconds=0.3)
    agent = FakeAgent(launch_on_subscribe=[task])
    async with agent, run_executor(agent, tmp_path) as ex:
        assert await ex.wait() == 0
    assert agent.states() == ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"]
    assert agent.updates[-1].status["reason"] == "REASON_MAX_COMPLETION_TIME_REACHED"


async def test_shutdown_kills_the_task_and_exits(tmp_path: Path) -> None:
    agent = FakeAgent(launch_on_subscribe=[command_task("t1", "sleep 100")])
    async with agent, run_executor(agent, tmp_path) as ex:
        await agent.wait_for(lambda: "TASK_RUNNING" in agent.states(), what="RUNNING")
        task_pids = [p for p in _session_members(ex.pid) if p != ex.pid]
        agent.shutdown()
        assert await ex.wait() == 0
        assert not any(_pid_alive(p) for p in task_pids)
    assert agent.states()[-1] == "TASK_KILLED"


async def test_shutdown_before_any_task_exits_at_once(tmp_path: Path) -> None:
    async with FakeAgent() as agent, run_executor(agent, tmp_path) as ex:
        await agent.wait_for(lambda: agent.connected, what="subscription")
        agent.shutdown()
        assert await ex.wait(5) == 0
    assert agent.updates == []


# ----------------------------------------------------------------------------- reliability


async def test_unacknowledged_updates_are_listed_on_resubscribe(tmp_path: Path) -> None:
    agent = FakeAgent(
        checkpoint=True, auto_ack=False, launch_on_subscribe=[command_task("t1", "true")]
    )
    async with agent, run_executor(agent, tmp_path) as ex:
        await agent.wait_for(lambda: "TASK_FINISHED" in agent.states(), what="FINISHED")
        first = list(agent.updates)
        agent.drop_stream()
        await agent.wait_for(lambda: len(agent.subscriptions) == 2, what="re-subscribe")
        sub = agent.subscriptions[1].subscribe
        listed = [u["status"] for u in sub["unacknowledged_updates"]]
        assert [s["state"] for s in listed] == [
            "TASK_STARTING",
            "TASK_RUNNING",
            "TASK_FINISHED",
        ]
        assert [s["uuid"] for s in listed] == [u.status["uuid"] for u in first]
        # No update was acknowledged: the task itself is listed too.
        assert [t["task_id"]["value"] for t in sub["unacknowledged_tasks"]] == ["t1"]
        assert ex.proc.returncode is None  # still waiting for acknowledgements
        for update in first:
            agent.acknowledge(update)
        assert await ex.wait() == 0


async def test_agent_restart_with_checkpointing_keeps_the_task(tmp_path: Path) -> None:
    agent = FakeAgent(checkpoint=True, launch_on_subscribe=[command_task("t1", "sleep 100")])
    await agent.start()
    try:
        async with run_executor(agent, tmp_path) as ex:
            await agent.wait_for(lambda: "TASK_RUNNING" in agent.states(), what="RUNNING")
            task_pids = [p for p in _session_members(ex.pid) if p != ex.pid]
            port = agent.port
            await agent.stop()  # the agent "crashes"
            await asyncio.sleep(0.5)
            assert all(_pid_alive(p) for p in task_pids)
            await agent.start(port)  # and comes back on the same port
            await agent.wait_for(lambda: len(agent.subscriptions) == 2, what="re-subscribe")
            sub = agent.subscriptions[1].subscribe
            # STARTING/RUNNING were acknowledged before the crash: nothing pending.
            assert sub.get("unacknowledged_updates", []) == []
            assert sub.get("unacknowledged_tasks", []) == []
            agent.kill("t1")
            assert await ex.wait() == 0
            assert agent.states()[-1] == "TASK_KILLED"
    finally:
        await agent.stop()


async def test_stream_loss_without_checkpoint_kills_the_task_and_exits(tmp_path: Path) -> None:
    agent = FakeAgent(launch_on_subscribe=[command_task("t1", "sleep 100")])
    async with agent, run_executor(agent, tmp_path) as ex:
        await agent.wait_for(lambda: "TASK_RUNNING" in agent.states(), what="RUNNING")
        task_pids = [p for p in _session_members(ex.pid) if p != ex.pid]
        assert task_pids
        agent.drop_stream()
        assert await ex.wait(5) == 0
        assert not any(_pid_alive(p) for p in task_pids)
        assert len(agent.subscriptions) == 1  # it did not come back


async def test_rejected_update_is_retried_while_connected(tmp_path: Path) -> None:
    agent = FakeAgent(update_status_code=503, launch_on_subscribe=[command_task("t1", "true")])
    async with agent, run_executor(agent, tmp_path) as ex:
        await agent.wait_for(lambda: len(agent.calls) >= 3, what="refused updates")
        agent.update_status_code = 202
        assert await ex.wait() == 0
    assert agent.states() == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]


# ----------------------------------------------------------------------------- figures


@pytest.mark.slow
async def test_report_startup_and_launch_latency(tmp_path: Path) -> None:
    """Startup→SUBSCRIBE, LAUNCH→TASK_RUNNING and spawn→TASK_FINISHED of `true`, in ms."""
    subscribe_ms: list[float] = []
    running_ms: list[float] = []
    finished_ms: list[float] = []
    exited_ms: list[float] = []
    for i in range(20):
        async with FakeAgent() as agent, run_executor(agent, tmp_path / str(i)) as ex:
            await agent.wait_for(lambda: agent.connected, what="subscription")
            subscribe_ms.append((agent.subscriptions[0].at - ex.started) * 1000)
            launched = time.monotonic()
            agent.launch(command_task("t1", "true"))
            await agent.wait_for(lambda: "TASK_FINISHED" in agent.states(), what="FINISHED")
            running = next(u for u in agent.updates if u.state == "TASK_RUNNING")
            running_ms.append((running.at - launched) * 1000)
            finished_ms.append((agent.updates[-1].at - ex.started) * 1000)
            assert await ex.wait() == 0
            exited_ms.append((time.monotonic() - ex.started) * 1000)
    report = {
        "start->SUBSCRIBE": subscribe_ms,
        "LAUNCH->RUNNING": running_ms,
        "start->FINISHED": finished_ms,
        "start->exit": exited_ms,
    }
    for name, values in report.items():
        print(
            f"command executor {name}: p50 {statistics.median(values):.1f} ms, "
            f"min {min(values):.1f} ms, max {max(values):.1f} ms (n={len(values)})"
        )


# ----------------------------------------------------------------------------- lean start-up


@pytest.mark.parametrize("script, loop", [("command.py", "command_executor"),
                                          ("default.py", "default_executor")])
def test_start_up_imports_only_lean_builtin_modules(tmp_path: Path, script: str, loop: str) -> None:
    """Guards the start-up budget of both built-in executors (one shared loop shell): no
    json/socket/re/enum/subprocess, nothing from mezzo."""
    env = {
        "MESOS_AGENT_ENDPOINT": "127.0.0.1:1",  # nothing listens: it retries until killed
        "MESOS_FRAMEWORK_ID": "f",
        "MESOS_EXECUTOR_ID": "e",
    }
    proc = subprocess.Popen(
        [sys.executable, "-S", "-E", "-X", "importtime", str(COMMAND_PY.with_name(script))],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        time.sleep(0.5)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=5)
    imported = {
        line.split("|")[2].strip()
        for line in err.decode().splitlines()
        if line.startswith("import time:") and "imported package" not in line
    }
    assert {loop, "executor_loop"} <= imported
    heavy = {"json", "socket", "re", "enum", "subprocess", "encodings.idna", "threading"}
    assert not imported & heavy
    assert not any(name.startswith("mezzo") for name in imported)


def test_wire_helpers_match_the_stdlib() -> None:
    # Chunked + RecordIO framing split at every byte boundary decodes to the same events.
    events = [{"type": "HEARTBEAT"}, {"type": "KILL", "kill": {"task_id": {"value": "t ü"}}}]
    payload = b"".join(encode_record(json.dumps(e).encode()) for e in events)
    wire = (
        b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (payload[:7], payload[7:])) + b"0\r\n\r\n"
    )
    for cut in range(len(wire)):
        dechunker, records = ce.Dechunker(), ce.RecordReader()
        got = records.feed(dechunker.feed(wire[:cut])) + records.feed(dechunker.feed(wire[cut:]))
        assert [ce.loads(r) for r in got] == events
        assert dechunker.done
    value = {"a": [1, 2.5, True, False, None, 'x"\n\u00e9'], "b": {"c": -3}}
    assert json.loads(ce.dumps(value)) == value
    assert ce.loads(json.dumps(value).encode()) == value
    assert ce.parse_duration("500ms", 1.0) == 0.5
    assert ce.parse_duration("2mins", 1.0) == 120.0
    assert ce.parse_duration("bogus", 1.0) == 1.0
    assert ce.split_endpoint("[::1]:5051") == ("::1", 5051)
    assert ce.split_endpoint("10.0.0.1:5051") == ("10.0.0.1", 5051)
    uuid = ce.new_uuid()
    assert len(uuid) == 16 and ce.unb64(ce.b64(uuid)) == uuid
