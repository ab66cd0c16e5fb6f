"""The verdict of a chaos run (`mezzo.testing.chaos`), computed from what was recorded: the
framework's ledger (`mezzo.testing.chaos_scheduler`), the tasks' start/end marker files, and
the harness's samples of the cluster. Pure: no processes, no clock.

What a run must show (issue 9):

- every launched task got a terminal update on the framework's stream. "Launched" means the
  cluster knew the task: it left a start marker (it ran), or the framework heard an update of
  it other than a reconciliation answer, or the master answered its ACCEPT with 202. A task
  whose only terminal word is the master's reconciliation answer is a violation, except one
  kind, counted apart: a task accepted by a leader that died before any agent got it, so that
  no master or agent ever knew it again (`lost_with_leader`: Mesos's soft-state window; the
  framework's reconciliation is the remedy there);
- no double launch: no task started twice, no work item finished by two attempts;
- no task process alive after its terminal update (the harness samples the processes, and
  records each one it finds with how long after the update it was still there);
- used (plus offered) <= total on every agent at every sample;
- a serving leader at the end, and the framework finished every item before the deadline.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mezzo.testing.chaos_scheduler import credited, ended

MARK = re.compile(r"^(?P<task>w\d+-\d+)\.(?P<pid>\d+)\.(?P<kind>start|end)$")


@dataclass
class Observations:
    """What the harness saw while the run went on."""

    # Samples of the leader's and the agents' accounting that broke used <= total.
    overcommits: list[str] = field(default_factory=list)
    # Task id -> the longest a process of it was seen alive after its terminal update (s).
    late_processes: dict[str, float] = field(default_factory=dict)
    # Task processes still alive once the framework had finished everything.
    leftovers: list[str] = field(default_factory=list)
    samples: int = 0
    leader_at_end: bool = False
    finished_in_time: bool = False
    unexpected_exits: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    violations: list[str]
    figures: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass
class _Task:
    item: int
    launch_master: str | None = None
    accepted: bool = False
    updates: list[dict[str, Any]] = field(default_factory=list)
    starts: int = 0
    ended_ok: bool = False  # an end marker: the shell ran to its end


def judge(records: list[dict[str, Any]], marks: list[str], seen: Observations,
          *, grace: float = 3.0) -> Verdict:
    tasks: dict[str, _Task] = {}
    for record in records:
        ev = record.get("ev")
        if ev == "launch":
            tasks[record["task"]] = _Task(record["item"], record.get("master"))
        elif ev == "accepted" and record["task"] in tasks:
            tasks[record["task"]].accepted = True
        elif ev == "update" and record["task"] in tasks:
            tasks[record["task"]].updates.append(record)
    for name in marks:
        match = MARK.match(name)
        if match is None or match["task"] not in tasks:
            continue
        if match["kind"] == "start":
            tasks[match["task"]].starts += 1
        else:
            tasks[match["task"]].ended_ok = True

    violations: list[str] = []
    states: Counter[str] = Counter()
    lost_with_leader: list[str] = []
    launched = 0
    finished_per_item: Counter[int] = Counter()
    for task_id, task in sorted(tasks.items()):
        heard = [u for u in task.updates if credited(u)]
        if not (task.starts or heard or task.accepted):
            continue  # the ACCEPT never reached a master: nobody could know this task
        launched += 1
        final = next((u for u in heard if ended(u["state"])), None)
        if final is not None:
            states[f"{final['state']}/{final.get('reason') or '-'}"] += 1
            if final["state"] == "TASK_FINISHED":
                finished_per_item[task.item] += 1
                if not task.ended_ok:
                    violations.append(f"{task_id}: TASK_FINISHED but its command never ran to its end")
        else:
            answer = next((u for u in task.updates if ended(u["state"])), None)
            if answer is None:
                violations.append(f"{task_id}: launched and never ended")
            elif not task.starts and not heard and answer.get("master") != task.launch_master:
                lost_with_leader.append(task_id)
            else:
                violations.append(
                    f"{task_id}: {answer['state']} learned only by reconciliation "
                    f"({answer.get('message')!r}; {'ran' if task.starts else 'never started'})")
        if task.starts > 1:
            violations.append(f"{task_id}: started {task.starts} times")
    for item, count in sorted(finished_per_item.items()):
        if count > 1:
            violations.append(f"item {item}: finished by {count} attempts (a double launch)")
    for task_id, late in sorted(seen.late_processes.items()):
        if late > grace:
            violations.append(f"{task_id}: its process was alive {late:.1f} s after its terminal update")
    violations += [f"{task_id}: process left running at the end" for task_id in seen.leftovers]
    violations += seen.overcommits
    violations += seen.unexpected_exits
    if not seen.leader_at_end:
        violations.append("no serving leader at the end")
    if not seen.finished_in_time:
        violations.append("the framework did not finish every item before the deadline")

    updates = [r for r in records if r.get("ev") == "update"]
    figures: dict[str, Any] = {
        "items": len({t.item for t in tasks.values()}),
        "tasks_launched": launched,
        "tasks_started": sum(1 for t in tasks.values() if t.starts),
        "terminal_updates": dict(sorted(states.items())),
        "unreachable_updates": sum(1 for u in updates if u["state"] == "TASK_UNREACHABLE"),
        "back_from_unreachable": sum(1 for u in updates if u.get("reason") == "REASON_AGENT_REREGISTERED"),
        "reconciliation_answers": sum(1 for u in updates if not credited(u)),
        "lost_with_leader": len(lost_with_leader),
        "scheduler_processes": len({r["pid"] for r in records if r.get("ev") == "start"}),
        "samples": seen.samples,
        "max_process_lag_s": round(max(seen.late_processes.values(), default=0.0), 2),
    }
    return Verdict(violations, figures)
