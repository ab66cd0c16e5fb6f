"""mezzo's built-in command executor: runs one `CommandInfo` task for the agent (spec §6, §6.3).

How the agent launches it
-------------------------
argv (no arguments of its own)::

    [sys.executable, "-S", "-E", "<mezzo package dir>/executor/command.py"]

The agent must not import this module (the layer rule puts `mezzo.executor` above
`mezzo.agent`); it finds the file by path, e.g.
``os.path.join(os.path.dirname(mezzo.__file__), "executor", "command.py")``. ``-S -E`` skip
site-packages and PYTHON* variables: the implementation (`command_executor.py`, the loop, with
`executor_loop.py`, `command_core.py`, `link_core.py`, `command_events.py`, `command_wire.py`
and the checks' `checks_core.py` and `checks_probe.py`, imported from this directory so their
bytecode is cached) uses only built-in/extension modules (`_socket`, `_json`, `select`,
`binascii`, `_signal`, `posix`, `time`; not even `os`), so the interpreter starts in ~10 ms instead of
~25 ms with `socket`/`json`/`subprocess` (measured with ``-X importtime``).
Launch it like any executor (own session, cwd = sandbox, stdout/stderr = sandbox files).

Environment (spec §6.1):

========================================  ===============================================
``MESOS_AGENT_ENDPOINT`` (required)       ``host:port`` (or ``[v6]:port``) of the agent
``MESOS_FRAMEWORK_ID`` (required)         framework id
``MESOS_EXECUTOR_ID`` (required)          executor id (= the task id for command tasks)
``MESOS_CHECKPOINT``                      ``1``/``true`` = survive agent restarts; else off
``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD``  Mesos duration, default ``5secs``
``MESOS_SUBSCRIPTION_BACKOFF_MAX``        Mesos duration, default ``2secs`` (checkpoint)
``MESOS_RECOVERY_TIMEOUT``                Mesos duration, default ``15mins`` (checkpoint)
``MESOS_SANDBOX`` / ``MESOS_DIRECTORY``   optional: the executor ``chdir``s there
``MEZZO_EXECUTOR_VERBOSE``                optional: ``1`` logs every event to stderr
``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``   optional: sent as ``Authorization: Bearer``; not
                                          passed on to the task
========================================  ===============================================

The task inherits this environment with ``CommandInfo.environment`` (VALUE variables) on top.

What it does (SUBSCRIBE, STARTING/RUNNING/terminal updates, KILL with the KillPolicy grace
period, SHUTDOWN, recovery) is described in `command_core.py`.

Fork server
-----------
``[sys.executable, "-S", "-E", "<...>/executor/command.py", "--fork-server", FD]`` runs the
fork server instead (`command_forkserver.py`): the agent's launcher keeps one per agent and
asks it, over the socket FD, to fork each command executor from its warm interpreter. The
child is the same executor (same session/stdio/sandbox/user/environment contract as above);
only the interpreter start-up is saved.

Exit status: 0 normal (including after a kill or shutdown), 1 gave up (bad environment, or
no agent within the recovery timeout).
"""

import sys

if __name__ == "__main__":
    # Run as a script: sys.path[0] is this directory, so the implementation is imported as a
    # top-level module (cached bytecode) without importing the `mezzo` package.
    if sys.argv[1:2] == ["--fork-server"]:
        from command_forkserver import main as serve

        sys.exit(serve(sys.argv[2:]))
    from command_executor import main

    sys.exit(main())
