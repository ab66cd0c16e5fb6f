"""Operator decisions: the write calls of the v1 operator API (UPDATE_WEIGHTS, TEARDOWN,
MARK_AGENT_GONE) and the task query behind `/master/tasks`.

The HTTP shell decodes a call, calls one of these and encodes the answer; a refusal raises
`CallRefused(status, message)` before anything changes. Weights are core state and a registry
operation (`UpdateWeights`), so a newly elected leader recovers them, as in Mesos.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mezzo.api import operator as op
from mezzo.core.errors import CallRefused
from mezzo.master.base import MasterBase
from mezzo.master.records import FrameworkRecord, TaskRecord
from mezzo.master.registry import UpdateWeights
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
    ) -> list[TaskRecord]:
        """`/master/tasks`: live, unreachable and completed tasks of live and completed
        frameworks, one page of them. As Mesos (its TaskComparator): ordered by the time of
        their *first* status, tasks without a status first when ascending; a negative limit
        (Mesos's -1) means no limit."""
        if offset < 0:
            raise CallRefused(400, "'offset' must not be negative")
        found: list[TaskRecord] = []
        for framework in [*self.frameworks.values(), *self.completed_frameworks.values()]:
            if framework_id and framework.id != framework_id:
                continue
            tasks = [*framework.tasks.values(), *framework.unreachable_tasks.values(), *framework.completed_tasks]
            found.extend(t for t in tasks if not task_id or t.task_id == task_id)
        found.sort(key=lambda t: (1, t.statuses[0].timestamp or 0.0) if t.statuses else (0, 0.0),
                   reverse=newest_first)
        return found[offset:] if limit < 0 else found[offset : offset + limit]
