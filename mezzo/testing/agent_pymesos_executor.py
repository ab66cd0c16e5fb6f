"""A custom executor built on the *unmodified* pymesos executor driver, for agent tests.

Run as a script by the agent (`python agent_pymesos_executor.py`). On LAUNCH it sends
TASK_RUNNING; framework messages drive it: `ping` -> replies `pong:<n>` where n is the number of
tasks pymesos still holds as unacknowledged (0 proves the agent's ACKNOWLEDGED arrived with a
valid 16-byte uuid), `finish` -> TASK_FINISHED. KILL -> TASK_KILLED.
"""

from __future__ import annotations

import base64
from typing import Any

from pymesos import Executor, MesosExecutorDriver, encode_data


class EchoExecutor(Executor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.task_id: Any = None

    def launchTask(self, driver: Any, task: Any) -> None:
        self.task_id = task["task_id"]
        driver.sendStatusUpdate({"task_id": task["task_id"], "state": "TASK_RUNNING"})

    def frameworkMessage(self, driver: Any, message: Any) -> None:
        text = base64.b64decode(message).decode()
        if text == "ping":
            reply = f"pong:{len(driver.tasks)}".encode()
            driver.sendFrameworkMessage(encode_data(reply))
        elif text == "finish":
            driver.sendStatusUpdate({"task_id": self.task_id, "state": "TASK_FINISHED"})

    def killTask(self, driver: Any, task_id: Any) -> None:
        driver.sendStatusUpdate({"task_id": task_id, "state": "TASK_KILLED"})


def main() -> None:
    MesosExecutorDriver(EchoExecutor(), use_addict=False).run()


if __name__ == "__main__":
    main()
