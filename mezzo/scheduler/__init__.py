"""Framework SDK: an asyncio client of the v1 scheduler API, a callback Scheduler, a thread driver.

Public API (see docs/sdk-scheduler.md):

- `Scheduler` — subclass it; callbacks `registered`, `reregistered`, `disconnected`,
  `resource_offers`, `offer_rescinded`, `status_update`, `framework_message`, `agent_lost`,
  `executor_lost`, `error`, `heartbeat` (and inverse-offer / operation-status ones).
- `SchedulerClient` — asyncio: subscribe, typed calls, heartbeat watchdog, reconnect with
  backoff, leader following (307, 503, `zk://`), implicit acknowledgements.
- `SchedulerDriver` — the same for plain scripts, on a background thread.
- `SchedulerOptions`; errors `SchedulerError`, `NotSubscribedError`, `CallRejectedError`.
- Offer helpers: `take`, `fits`, `split`, `pick_ports`, `ports_of`, `shell_task`,
  `default_executor` (for `launch_group`), `new_task_id`, `as_resources`.
- Task checks: `health_check` and `check` (for `TaskInfo.health_check` / `.check`).

Imports nothing from `mezzo.master` or `mezzo.agent`.
"""

from mezzo.scheduler.calls import (
    create_operation,
    destroy_operation,
    reserve_operation,
    unreserve_operation,
    volume,
)
from mezzo.scheduler.checks import check, health_check
from mezzo.scheduler.client import (
    CallRejectedError,
    NotSubscribedError,
    SchedulerClient,
    SchedulerError,
    SchedulerOptions,
)
from mezzo.scheduler.driver import SchedulerDriver
from mezzo.scheduler.leader import MasterLocator, parse_master_address
from mezzo.scheduler.offers import (
    as_resources,
    default_executor,
    fits,
    new_task_id,
    pick_ports,
    ports_of,
    shell_task,
    split,
    take,
)
from mezzo.scheduler.scheduler import Scheduler

__all__ = [
    "CallRejectedError",
    "MasterLocator",
    "NotSubscribedError",
    "Scheduler",
    "SchedulerClient",
    "SchedulerDriver",
    "SchedulerError",
    "SchedulerOptions",
    "as_resources",
    "check",
    "create_operation",
    "default_executor",
    "destroy_operation",
    "fits",
    "health_check",
    "new_task_id",
    "parse_master_address",
    "pick_ports",
    "ports_of",
    "reserve_operation",
    "shell_task",
    "split",
    "take",
    "unreserve_operation",
    "volume",
]
