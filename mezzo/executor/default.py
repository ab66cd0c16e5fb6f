"""mezzo's built-in default executor: runs task groups (LAUNCH_GROUP) for the agent, each task
as a nested container sharing the executor's container (Mesos's `mesos-default-executor`).

How the agent launches it
-------------------------
For an ExecutorInfo of ``type: DEFAULT`` (which has no ``command``: Mesos's rule), with argv::

    [sys.executable, "-S", "-E", "<mezzo package dir>/executor/default.py"]

exactly as the command executor (`command.py`, whose docstring gives the contract: own session,
cwd = the sandbox, stdout/stderr = sandbox files, the environment of spec §6.1, stdlib only so
that ``-S -E`` starts it in ~10 ms), forked from its own fork server when the launcher can
(``default.py --fork-server FD``, the protocol of `command_forkserver.py`). Its container is
sized for the executor's resources plus every task's; the tasks share it.

What it does (LAUNCH_GROUP all or none, a failed task takes its group down, KILL with the
KillPolicy grace, SHUTDOWN, the end with its last task) is described in `default_core.py`; the
loop is `default_executor.py`. Each task runs in ``<sandbox>/tasks/<task_id>`` (its
MESOS_SANDBOX, with its stdout and stderr) and inherits the executor's environment with
MESOS_SANDBOX, MESOS_CONTAINER_IP, MESOS_ALLOCATION_ROLE and its CommandInfo.environment on top.

Exit status: 0 normal (including after kills or a shutdown), 1 gave up (bad environment, or no
agent within the recovery timeout).
"""

import sys

if __name__ == "__main__":
    # Run as a script: sys.path[0] is this directory (see command.py).
    if sys.argv[1:2] == ["--fork-server"]:
        import command_forkserver
        from default_executor import main as run_default

        sys.exit(command_forkserver.main(sys.argv[2:], run=run_default))
    from default_executor import main

    sys.exit(main())
