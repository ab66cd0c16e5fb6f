"""Operator decisions: the write calls of the v1 operator API (UPDATE_WEIGHTS, UPDATE_QUOTA,
SET_QUOTA, REMOVE_QUOTA, TEARDOWN, MARK_AGENT_GONE) and the task query behind `/master/tasks`.

The HTTP shell decodes a call, calls one of these and encodes the answer; a refusal raises
`CallRefused(status, message)` before anything changes. Weights are core state and a registry
operation (`UpdateWeights`), so a newly elected leader recovers them, as in Mesos; quotas
likewise (`UpdateQuota`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mezzo.api import operator as op
from mezzo.core.errors import CallRefused
from mezzo.master.base import MasterBase
from mezzo.master.completed import CompletedTask
from mezzo.master.quota import (
    QuotaError,
    StoredQuota,
    exceeds,
    format_quantities,
    from_quota_request,
    parse_config,
)
from mezzo.master.records import FrameworkRecord, TaskRecord
from mezzo.master.registry import UpdateQuota, UpdateWeights
from mezzo.resources import role_error


class OperatorCalls(MasterBase):
    if TYPE_CHECKING:
        # Decisions of sibling mixins that these calls reuse; `Master` composes them all.
        def remove_framework(self, framework: FrameworkRecord) -> None: ...  # FrameworkCalls
        def mark_gone(self, agent_id: str) -> bool: ...  # AgentCalls

    def update_weights(self, infos: Iterable[op.WeightInfo]) -> None:
        """UPDATE_WEIGHTS (Mesos's validation and messages): the new weights are stored, the
        allocator uses them, and if a changed role has frameworks every outstanding offer is
        rescinded so that they take effect at once."""
        updates: dict[str, float] = {}
        for info in infos:
            role = (info.role or "").strip()  # `role` is optional on the wire
            problem = role_error(role)
            if problem:
                raise CallRefused(
                    400, f"Failed to validate update weights request JSON: Invalid role '{role}': {problem}"
                )
            if self.options.roles is not None and role not in self.options.roles:
                raise CallRefused(400, f"Failed to validate update weights request JSON: Unknown role '{role}'")
            if not info.weight > 0 or math.isinf(info.weight):
                raise CallRefused(
                    400,
                    f"Failed to validate update weights request JSON for role '{role}': "
                    f"Invalid weight '{info.weight}': Weights must be positive",
                )
            updates[role] = info.weight
        if not updates:
            return
        weights = {**self.weights, **updates}
        self.outbox.registry(UpdateWeights(weights=weights))
        self.set_weights(weights)
        if any(role in framework.roles for framework in self.frameworks.values() for role in updates):
            self.rescind_offers(list(self.offers))
        self.request_allocation()

    # ------------------------------------------------------------------ quota

    def update_quota(self, raw: Mapping[str, Any] | None) -> None:
        """UPDATE_QUOTA: validate every config (Mesos's messages), refuse a limit below the
        role's consumption unless `force`, then store all of them in one registry operation;
        the allocator applies them from the next cycle and outstanding offers of the changed
        roles are rescinded (so that a lowered limit is not exceeded by them)."""
        raw = _payload(raw, "update_quota")
        force = bool(raw.get("force"))
        configs: dict[str, StoredQuota] = {}
        items = raw.get("quota_configs") or []
        if not isinstance(items, list):
            raise CallRefused(400, "Failed to validate master::Call: "
                                   "'update_quota.quota_configs' must be a list")
        try:
            for item in items:
                role, stored = parse_config(item, self.options.roles)
                configs[role] = stored
        except QuotaError as exc:
            raise CallRefused(400, str(exc)) from None
        self._apply_quotas(configs, force)

    def set_quota(self, raw: Mapping[str, Any] | None) -> None:
        """SET_QUOTA (pre-1.9): guarantees and limits both set to the requested guarantee;
        refused for a role that already has quota."""
        try:
            role, stored, force = from_quota_request(_payload(raw, "set_quota").get("quota_request"))
        except QuotaError as exc:
            raise CallRefused(400, str(exc)) from None
        if self.options.roles is not None and role not in self.options.roles:
            raise CallRefused(400, f"Failed to validate set quota request: Unknown role '{role}'")
        if role in self.quota_config:
            raise CallRefused(400, "Failed to validate set quota request: Cannot set quota"
                                   f" for role '{role}' which already has quota")
        if "/" in role:
            raise CallRefused(400, f"Setting quota on nested role '{role}' is not supported yet")
        self._apply_quotas({role: stored}, force)

    def remove_quota(self, role: str) -> None:
        if role not in self.quota_config:
            raise CallRefused(400, f"Failed to remove quota: Role '{role}' has no quota set")
        self._apply_quotas({role: {"guarantees": {}, "limits": {}}}, force=True)

    def _apply_quotas(self, configs: Mapping[str, StoredQuota], force: bool) -> None:
        if not configs:
            return
        if not force:
            consumed = self.allocator.consumption(list(configs))
            for role, stored in configs.items():
                used = {n: v for n, v in consumed.get(role, {}).items() if n in stored["limits"]}
                if exceeds(used, stored["limits"]):
                    raise CallRefused(
                        400,
                        f"Invalid QuotaConfig: Role '{role}' is already consuming"
                        f" '{format_quantities(used)}'; this is more than the requested limits"
                        f" '{format_quantities(stored['limits'])}'"
                        " (use 'force' flag to bypass this check)",
                    )
        quotas = {role: q for role, q in self.quota_config.items() if role not in configs}
        for role, stored in configs.items():
            if stored["guarantees"] or stored["limits"]:
                quotas[role] = stored
        self.outbox.registry(UpdateQuota(quotas=quotas))
        self.set_quotas(quotas)
        changed = [
            offer_id for offer_id, offer in self.offers.items()
            if any(offer.role == r or offer.role.startswith(r + "/") for r in configs)
        ]
        if changed:
            self.rescind_offers(changed)
        self.request_allocation()

    def teardown_framework(self, framework_id: str) -> None:
        """Operator TEARDOWN (and the legacy `/master/teardown`)."""
        framework = self.frameworks.get(framework_id)
        if framework is None:
            raise CallRefused(400, f"No framework found with specified ID '{framework_id}'")
        self.remove_framework(framework)

    def mark_agent_gone(self, agent_id: str) -> None:
        """Operator MARK_AGENT_GONE."""
        if not self.mark_gone(agent_id):
            raise CallRefused(404, f"Agent '{agent_id}' not found")

    def find_tasks(
        self,
        *,
        framework_id: str | None = None,
        task_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[TaskRecord | CompletedTask]:
        """`/master/tasks`: live, unreachable and completed tasks of live and completed
        frameworks, one page of them. As Mesos (its TaskComparator): ordered by the time of
        their *first* status, tasks without a status first when ascending; a negative limit
        (Mesos's -1) means no limit."""
        if offset < 0:
            raise CallRefused(400, "'offset' must not be negative")
        found: list[TaskRecord | CompletedTask] = []
        for framework in [*self.frameworks.values(), *self.completed_frameworks.values()]:
            if framework_id and framework.id != framework_id:
                continue
            tasks: list[TaskRecord | CompletedTask] = [*framework.tasks.values(), *framework.unreachable_tasks.values(), *framework.completed_tasks]
            found.extend(t for t in tasks if not task_id or t.task_id == task_id)
        def first_time(t: TaskRecord | CompletedTask) -> tuple[int, float]:
            first = t.first_status()
            return (0, 0.0) if first is None else (1, first.timestamp or 0.0)

        found.sort(key=first_time,
                   reverse=newest_first)
        return found[offset:] if limit < 0 else found[offset : offset + limit]


def _payload(raw: object, name: str) -> Mapping[str, Any]:
    """A call's payload as an object (a malformed one is refused with 400, never a 500)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise CallRefused(400, f"Failed to validate master::Call: '{name}' must be an object")
    return raw
