"""Agent recovery after a restart (Mesos docs/agent-recovery.md), run before registering.

1. Read the checkpoint of the latest agent id (`mezzo.agent.checkpoint.recover`). After a
   reboot of the host nothing is recovered (the executors are gone); the agent registers anew.
2. `--recover=reconnect`: rebuild frameworks, executors and tasks (task state = the latest
   checkpointed update; the status update streams are replayed from `task.updates`), re-attach
   to the live executor containers through `Containerizer.recover` (same pids), then wait up to
   `--executor_reregistration_timeout` for them to re-subscribe. Executors that did not are shut
   down and their tasks end TASK_LOST with REASON_EXECUTOR_REREGISTRATION_TIMEOUT.
   Executors whose process is already gone terminate at once (TASK_FAILED,
   REASON_EXECUTOR_TERMINATED) and the agent reports it.
3. `--recover=cleanup`: kill every checkpointed executor, forget the agent id and stop (as
   Mesos: "kill any old live executors and exit"); the next start registers a new agent.
4. Either way, containers that were not checkpointed (executors of frameworks without
   `checkpoint`) must not outlive the agent: they are found through the runtime pid files of
   `containers/` and killed.

While this runs, the executor API answers 503 except to SUBSCRIBE (`Agent.recovering`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from mezzo.agent import checkpoint
from mezzo.agent.agent import Agent
from mezzo.agent.containerizer import ContainerState
from mezzo.agent.containerizer import paths as layout
from mezzo.agent.containerizer.launcher import kill_session
from mezzo.agent.state import (
    Executor,
    ExecutorPhase,
    Framework,
    PendingTermination,
    new_task,
    record_status,
    resources_of,
)
from mezzo.api.common import Reason, TaskState, is_terminal

log = logging.getLogger(__name__)


class CleanupDone(Exception):
    """`--recover=cleanup` finished: the agent must exit."""


async def recover(agent: Agent) -> None:
    """Run recovery (see the module docstring); raises CleanupDone in cleanup mode."""
    flags = agent.flags
    work_dir = Path(flags.work_dir)
    state = checkpoint.recover(work_dir)
    recovered: list[Executor] = []
    cleanup = flags.recover == "cleanup"
    if state is not None and state.rebooted:
        log.info("host rebooted since the last checkpoint: registering as a new agent")
        with contextlib.suppress(OSError):
            layout.latest_agent_path(work_dir).unlink()
    elif state is not None:
        assert state.info.id is not None
        if not cleanup:
            agent.info.id = state.info.id
            agent.checkpointer.agent_id = state.info.id.value
        for fw_state in state.frameworks.values():
            for ex_state in fw_state.executors.values():
                run = ex_state.run
                if run is None or run.pid is None:
                    continue
                if cleanup:
                    _kill_root(run.pid)
                    continue
                recovered.append(_rebuild(agent, fw_state, ex_state, run))
        if cleanup:
            with contextlib.suppress(OSError):
                layout.latest_agent_path(work_dir).unlink()
    known = {ex.container_id for ex in recovered}
    for container_id, pid in checkpoint.container_pids(work_dir).items():
        if container_id in known:
            continue
        if _kill_root(pid):
            log.info("killed executor container %s (pid %d) left by the previous agent",
                     container_id, pid)
        agent.checkpointer.remove_container(container_id)
    if cleanup:
        agent.recovering = False
        raise CleanupDone("--recover=cleanup: old executors killed")
    if recovered:
        await agent.containerizer.recover(
            [ContainerState(ex.container_id, ex.pid) for ex in recovered if ex.pid is not None]
        )
        for ex in recovered:
            agent.spawn(agent.watch_container(ex))
            if ex.pid is not None:
                agent.checkpointer.container_pid(ex.container_id, ex.pid)
        await _wait_for_reregistration(agent, recovered)
    agent.recovering = False
    log.info("recovery done: %d executors recovered", len(recovered))


def _rebuild(
    agent: Agent,
    fw_state: checkpoint.FrameworkState,
    ex_state: checkpoint.ExecutorState,
    run: checkpoint.RunState,
) -> Executor:
    info = fw_state.info
    assert info.id is not None and agent.info.id is not None
    fw = agent.frameworks.get(info.id.value)
    if fw is None:
        fw = agent.frameworks[info.id.value] = Framework(info)
    ex_id = ex_state.info.executor_id.value
    ex = Executor(
        framework_id=info.id, info=ex_state.info, container_id=run.container_id,
        sandbox=layout.sandbox_dir(
            agent.flags.work_dir, agent.info.id.value, info.id.value, ex_id, run.container_id
        ),
        command=run.command, checkpoint=True, pid=run.pid, recovered=True,
    )
    ex.resources = resources_of([ex_state.info.resources])
    for task_cp in run.tasks.values():
        if task_cp.info is None:
            continue
        task = new_task(task_cp.info, info.id, ex)
        agent.updates.recover_stream(info.id, task_cp.updates)
        for kind, value in task_cp.updates:
            if kind == "update" and not isinstance(value, bytes):
                record_status(task, value)
        if not is_terminal(task.state):
            ex.launched[task.task_id] = task
            ex.resources = ex.resources + resources_of([task.resources])
        elif agent.updates.has_stream(task.task_id):
            ex.terminated[task.task_id] = task
        else:
            ex.completed.append(task)
    fw.executors[ex_id] = ex
    return ex


async def _wait_for_reregistration(agent: Agent, executors: list[Executor]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + agent.flags.executor_reregistration_timeout
    while loop.time() < deadline:
        if all(ex.phase != ExecutorPhase.REGISTERING for ex in executors):
            return
        await asyncio.sleep(0.05)
    for ex in executors:
        if ex.phase == ExecutorPhase.REGISTERING:
            log.warning("executor %s did not re-subscribe in time; shutting it down", ex.id)
            agent.shutdown_executor(
                ex,
                PendingTermination(
                    TaskState.TASK_LOST, Reason.REASON_EXECUTOR_REREGISTRATION_TIMEOUT,
                    "Executor did not re-register after the agent restarted",
                ),
            )


def _kill_root(pid: int) -> bool:
    """Kill a container root and its session if `pid` still leads its own session."""
    try:
        if os.getsid(pid) != pid:
            return False
    except ProcessLookupError:
        return False
    kill_session(pid, signal.SIGKILL)
    return True
