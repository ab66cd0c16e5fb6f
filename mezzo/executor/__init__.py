"""Executor SDK and the built-in command executor.

- `ExecutorClient` (asyncio) and `ExecutorDriver` (threads) subscribe to the agent's v1 executor
  API and deliver its events to an `Executor` subclass; see docs/sdk-executor.md.
- `command.py` (+ `command_core.py`, `link_core.py`, `command_events.py`, `command_wire.py`,
  `executor_loop.py`, `command_executor.py`, `command_forkserver.py`): the built-in command
  executor, a stdlib-only script the agent runs for tasks with `command` (its docstring is the
  launch contract); `default.py` (+ `default_core.py`, `default_events.py`,
  `default_executor.py`, on the same link, loop shell and wire): the default executor of task
  groups. Run as
  a script, this directory is `sys.path[0]`: no module here may shadow a stdlib name.
- `testing.FakeAgent`: an in-process fake agent for executor tests.
"""

from mezzo.executor.client import ExecutorClient, ExecutorError, ExecutorSettings
from mezzo.executor.driver import ExecutorDriver
from mezzo.executor.executor import Executor

__all__ = ["Executor", "ExecutorClient", "ExecutorDriver", "ExecutorError", "ExecutorSettings"]
