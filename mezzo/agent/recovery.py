"""Agent recovery after a restart (Mesos docs/agent-recovery.md): the shell's part, run before
registering.

1. Read the checkpoint tree of the latest agent id (`mezzo.agent.checkpoint.recover`). After a
   reboot of the host nothing is recovered (the executors are gone); the agent registers anew.
2. `--recover=reconnect`: the core rebuilds frameworks, executors, tasks and update streams from
   that tree (`RecoverCheckpoint`, pure: `AgentCore.recover`) and asks the shell to re-adopt the
   live executor containers (`adopt_containers`: same pids). It then waits up to
   `--executor_reregistration_timeout` for them to re-subscribe: those that did not are shut
   down and their tasks end TASK_LOST with REASON_EXECUTOR_REREGISTRATION_TIMEOUT; executors
   whose process is already gone terminate at once (TASK_FAILED, REASON_EXECUTOR_TERMINATED).
   `recover` returns when the core says recovery is complete.
3. `--recover=cleanup`: kill every checkpointed executor, forget the agent id and stop (as
   Mesos: "kill any old live executors and exit"); the next start registers a new agent.
4. Either way, containers that were not checkpointed (executors of frameworks without
   `checkpoint`) must not outlive the agent: they are found through the runtime pid files of
   `containers/` and killed.

While this runs, the executor API answers 503 except to SUBSCRIBE (`AgentCore.recovering`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

from mezzo.agent import checkpoint
from mezzo.agent.agent import Agent
from mezzo.agent.containerizer import paths as layout
from mezzo.agent.containerizer.launcher import kill_session
from mezzo.agent.events import RecoverCheckpoint
from mezzo.core.errors import ConfigError
from mezzo.resources.conversions import ConversionError

log = logging.getLogger(__name__)


class CleanupDone(Exception):
    """`--recover=cleanup` finished: the agent must exit."""


async def recover(agent: Agent) -> None:
    """Run recovery (see the module docstring); raises CleanupDone in cleanup mode."""
    work_dir = Path(agent.flags.work_dir)
    cleanup = agent.flags.recover == "cleanup"
    state = checkpoint.recover(work_dir)
    if state is not None and state.rebooted:
        log.info("host rebooted since the last checkpoint: registering as a new agent")
        with contextlib.suppress(OSError):
            layout.latest_agent_path(work_dir).unlink()
        state = None
    live = _live_runs(state)
    if cleanup:
        for pid in live.values():
            _kill_root(pid)
        if state is not None:
            with contextlib.suppress(OSError):
                layout.latest_agent_path(work_dir).unlink()
        live, state = {}, None
    for container_id, pid in checkpoint.container_pids(work_dir).items():
        if container_id in live:
            continue
        if _kill_root(pid):
            log.info("killed executor container %s (pid %d) left by the previous agent",
                     container_id, pid)
        agent.containerizer.cleanup_orphan(container_id)  # e.g. its volumes' mounts
        agent.checkpointer.remove_container(container_id)
    if cleanup:
        raise CleanupDone("--recover=cleanup: old executors killed")
    if state is not None:
        assert state.info.id is not None
        agent.checkpointer.agent_id = state.info.id.value
    try:
        agent.handle(RecoverCheckpoint(state))
    except ConversionError as exc:
        # `--resources` no longer hold the checkpointed reservations or volumes: as Mesos,
        # refuse to start rather than lose them (the operator unreserves, or fixes the flag).
        raise ConfigError(f"Failed to perform recovery: {exc}") from None
    await agent.recovered.wait()
    log.info("recovery done: %d executors recovered", len(live))


def _live_runs(state: checkpoint.AgentState | None) -> dict[str, int]:
    """container id -> pid of every checkpointed executor run with a pid."""
    out: dict[str, int] = {}
    if state is None:
        return out
    for fw_state in state.frameworks.values():
        for ex_state in fw_state.executors.values():
            run = ex_state.run
            if run is not None and run.pid is not None:
                out[run.container_id] = run.pid
    return out


def _kill_root(pid: int) -> bool:
    """Kill a container root and its session if `pid` still leads its own session."""
    try:
        if os.getsid(pid) != pid:
            return False
    except ProcessLookupError:
        return False
    kill_session(pid, signal.SIGKILL)
    return True
