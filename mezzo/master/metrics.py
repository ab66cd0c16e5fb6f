"""The master's metrics, as `/metrics/snapshot` (and GET_METRICS) and `/metrics` serve them.

`snapshot()` joins every source into Mesos's flat key set:
- the core's gauges and counters (`mezzo.master.views.metrics`: `master/*`, `allocator/*`
  including per-role dominant shares and offer filters);
- per framework, `master/frameworks/<url-encoded name>/<id>/...` as Mesos's FrameworkMetrics:
  `subscribed`, `calls`, `calls/<type>`, `events`, `events/<type>`, `offers/sent|accepted|
  declined|rescinded`, `roles/<role>/suppressed`, `tasks/active/<state>`,
  `tasks/terminal/<state>`;
- the timers: `allocator/mesos/allocation_run_ms`, `master/offer_accept_latency_ms`,
  `master/status_update_round_trip_ms` (mezzo's own), `registrar/state_fetch_ms`,
  `registrar/state_store_ms`, each with `/count`, `/min`, `/max` and percentiles;
- `registrar/queued_operations`, `registrar/registry_size_bytes`;
- the shell's event queue: `master/event_queue_http_requests` (HTTP requests being handled),
  `master/event_queue_messages` (asyncio tasks alive in the master's loop: streams and
  handlers), `master/event_queue_dispatches` (callbacks ready to run in the loop);
- `system/*` (cpus, load, memory).

`/metrics` is the same in Prometheus's text format plus the histograms (allocation run time,
offer -> accept latency, status update round trip, registrar times, HTTP request latency per
endpoint), via `mezzo.core.metrics.prometheus_text`.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from mezzo.api.common import TaskState, is_terminal
from mezzo.core.metrics import DaemonMetrics, prometheus_text, system_metrics
from mezzo.master import views
from mezzo.master.base import MasterBase
from mezzo.master.gauges import task_counts

ACTIVE_STATES = [s for s in TaskState if not is_terminal(s) and s != TaskState.TASK_UNKNOWN]


def framework_prefix(name: str, framework_id: str) -> str:
    return f"master/frameworks/{quote(name, safe='')}/{framework_id}/"


def framework_metrics(master: MasterBase) -> dict[str, float]:
    out: dict[str, float] = {}
    for fw in master.frameworks.values():
        prefix = framework_prefix(fw.info.name, fw.id)
        out[prefix + "subscribed"] = 1.0 if fw.connected else 0.0
        for key in ("calls", "events", "offers/sent", "offers/accepted", "offers/declined",
                    "offers/rescinded"):
            out[prefix + key] = float(fw.counters.get(key, 0))
        for key, value in fw.counters.items():
            out[prefix + key] = float(value)
        for role in fw.roles:
            out[f"{prefix}roles/{role}/suppressed"] = 1.0 if role in fw.suppressed_roles else 0.0
        states, _ = task_counts(fw.tasks)
        for state in ACTIVE_STATES:
            out[f"{prefix}tasks/active/{state.lower()}"] = float(states.get(state, 0))
    return out


def snapshot(master: MasterBase, outbox: Any, http: DaemonMetrics, *, leading: bool) -> dict[str, float]:
    """`outbox` is the shell's HttpOutbox (its registrar, and the operations queued for it),
    or None where the core runs on a test's outbox."""
    values: dict[str, float] = dict(views.metrics(master, master.now()))
    values["master/elected"] = 1.0 if leading else 0.0
    values.update(master.metrics.timer_snapshot())
    if outbox is not None:
        values.update(outbox.registrar.statistics())
        # Operations wait for the registry's worker thread (`HttpOutbox`): that is the queue.
        values["registrar/queued_operations"] = float(outbox.queued)
    values.update(framework_metrics(master))
    loop = asyncio.get_running_loop()
    values["master/event_queue_http_requests"] = float(http.http_in_flight)
    values["master/event_queue_messages"] = float(len(asyncio.all_tasks(loop)))
    values["master/event_queue_dispatches"] = float(len(getattr(loop, "_ready", ())))
    values.update(system_metrics())
    return values


def prometheus(master: MasterBase, outbox: Any, http: DaemonMetrics, *, leading: bool) -> bytes:
    registries = [master.metrics, http] + ([outbox.registrar.metrics] if outbox is not None else [])
    return prometheus_text(snapshot(master, outbox, http, leading=leading), registries)
