"""The master's legacy read endpoints in Mesos's shapes (src/master/readonly_handler.cpp):
`/master/state-summary`, `/master/roles`, `/master/weights`, and the `*_full` resource arrays
and `slave_id` / `framework_id` filters of `/master/slaves` and `/master/frameworks`.

Pure functions of the core's state (`*_json`) plus the aiohttp handlers that serve them with
`jsonp`; `/state`, `/frameworks`, `/slaves` themselves are in `mezzo.master.views`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from mezzo.api.codec import to_builtins
from mezzo.master import views
from mezzo.master.base import MasterBase
from mezzo.master.records import AgentRecord, FrameworkRecord
from mezzo.resources import Resources

DEFAULT_WEIGHT = 1.0
# The per-state counts of state-summary, as Mesos lists them.
SUMMARY_STATES = ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED",
                  "TASK_KILLED", "TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_UNREACHABLE")


def _tasks(fw: FrameworkRecord) -> list[Any]:
    return [*fw.tasks.values(), *fw.unreachable_tasks.values(), *fw.completed_tasks]


def state_summary_json(master: MasterBase) -> dict[str, Any]:
    """`/master/state-summary`: agents and frameworks with task counts per state and who
    runs on whom (from the registered frameworks' tasks, completed ones included)."""
    by_agent: dict[str, Counter[str]] = defaultdict(Counter)
    by_framework: dict[str, Counter[str]] = defaultdict(Counter)
    agents_of: dict[str, set[str]] = defaultdict(set)
    frameworks_of: dict[str, set[str]] = defaultdict(set)
    for fw in master.frameworks.values():
        for task in _tasks(fw):
            by_agent[task.agent_id][str(task.state)] += 1
            by_framework[fw.id][str(task.state)] += 1
            agents_of[fw.id].add(task.agent_id)
            frameworks_of[task.agent_id].add(fw.id)
    slaves = []
    executors = views.executor_resources(master)
    for agent in master.agents.values():
        entry = views.agent_json(master, agent, executors)
        entry.update({state: by_agent[agent.id][state] for state in SUMMARY_STATES})
        entry["framework_ids"] = sorted(frameworks_of[agent.id])
        slaves.append(entry)
    frameworks = []
    for fw in master.frameworks.values():
        full = views.framework_json(master, fw, with_tasks=False)
        entry = {key: full[key] for key in (
            "id", "name", "used_resources", "offered_resources", "capabilities", "hostname",
            "webui_url", "active", "connected", "recovered")}
        entry.update({state: by_framework[fw.id][state] for state in SUMMARY_STATES})
        entry["slave_ids"] = sorted(agents_of[fw.id])
        frameworks.append(entry)
    return {"hostname": master.info.hostname, "slaves": slaves, "frameworks": frameworks}


def _quantities(resources: Resources) -> dict[str, float]:
    return dict(sorted(resources.quantities().items()))


def roles_json(master: MasterBase, weights: dict[str, float]) -> dict[str, Any]:
    """`/master/roles`: every known role (of a framework, a weight or a reservation) with its
    weight, allocated, offered and reserved quantities, and its frameworks."""
    frameworks: dict[str, list[str]] = defaultdict(list)
    allocated: dict[str, Resources] = defaultdict(Resources)
    offered: dict[str, Resources] = defaultdict(Resources)
    reserved: dict[str, Resources] = defaultdict(Resources)
    for fw in master.frameworks.values():
        for role in fw.roles:
            frameworks[role].append(fw.id)
        for role, resources in fw.used_resources().allocations().items():
            allocated[role] = allocated[role] + resources
    for offer in master.offers.values():
        offered[offer.role] = offered[offer.role] + offer.resources
    for agent in master.agents.values():
        for item in agent.total:
            if item.reservations:
                reserved[item.role] = reserved[item.role] + Resources([item])
    names = sorted(set(frameworks) | set(weights) | set(reserved) | set(allocated))
    roles = []
    for name in names:
        used, offers = allocated[name], offered[name]
        roles.append({
            "name": name,
            "weight": weights.get(name, DEFAULT_WEIGHT),
            # No quota yet: what Mesos shows for a role without one.
            "quota": {"role": name, "guarantee": {}, "limit": {}, "consumed": {}},
            "resources": _quantities(used + offers),
            "allocated": _quantities(used),
            "offered": _quantities(offers),
            "reserved": _quantities(reserved[name]),
            "frameworks": sorted(frameworks[name]),
        })
    return {"roles": roles}


def weights_json(weights: dict[str, float]) -> list[dict[str, Any]]:
    """`/master/weights`: the repeated WeightInfo as a JSON array."""
    return [{"weight": weight, "role": role} for role, weight in sorted(weights.items())]


def slave_full_json(
    master: MasterBase, agent: AgentRecord, executors: dict[str, list[Resources]] | None = None
) -> dict[str, Any]:
    """`/master/slaves` entry: the state entry plus the `*_full` v0 Resource arrays
    (`executors`: `views.executor_resources(master)` when rendering many agents)."""
    entry = views.agent_json(master, agent, executors)
    used = Resources()
    for task in agent.tasks.values():
        if not task.recovered:
            used = used + task.resources
    offered = Resources()
    for offer_id in agent.offers:
        offer = master.offers.get(offer_id)
        if offer is not None:
            offered = offered + offer.resources
    reserved: dict[str, Resources] = defaultdict(Resources)
    for item in agent.total:
        if item.reservations:
            reserved[item.role] = reserved[item.role] + Resources([item])
    entry["resources_full"] = to_builtins(agent.total.to_wire())
    entry["used_resources_full"] = to_builtins(used.to_wire(with_allocation=True))
    entry["offered_resources_full"] = to_builtins(offered.to_wire(with_allocation=True))
    entry["reserved_resources_full"] = {r: to_builtins(v.to_wire()) for r, v in reserved.items()}
    entry["unreserved_resources_full"] = to_builtins(agent.total.unreserved().to_wire())
    return entry
