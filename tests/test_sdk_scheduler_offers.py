"""Offer helpers of the scheduler SDK: take / fits / split / ports / shell_task (pure)."""

from __future__ import annotations

import pytest

from mezzo.api.codec import decode, encode
from mezzo.api.common import (
    AgentID,
    ExecutorID,
    ExecutorType,
    FrameworkID,
    Offer,
    OfferID,
    TaskInfo,
)
from mezzo.resources import Resources
from mezzo.scheduler import (
    default_executor,
    fits,
    pick_ports,
    ports_of,
    shell_task,
    split,
    take,
)


def offer(text: str, *, refinement: bool = False) -> Offer:
    return Offer(
        id=OfferID(value="O1"),
        framework_id=FrameworkID(value="F1"),
        agent_id=AgentID(value="S1"),
        hostname="h1",
        resources=Resources.parse(text).to_wire(refinement=refinement),
    )


def test_fits_and_take_quantities() -> None:
    o = offer("cpus:2;mem:1024;ports:[31000-31009]")
    assert fits(o, "cpus:0.5;mem:64")
    assert not fits(o, "cpus:3")
    assert not fits(o, "gpus:1")
    got = take(o, "cpus:0.5;mem:64", ports=2)
    assert got is not None
    assert got.cpus() == 0.5 and got.mem() == 64
    assert ports_of(got) == [31000, 31001]
    assert Resources.from_wire(o.resources).contains(got)


def test_take_prefers_reserved_and_spans_identities() -> None:
    o = offer("cpus(eng):1;cpus:2;mem:100")
    got = take(o, "cpus:2")
    assert got is not None
    assert got.reserved("eng").cpus() == 1  # the role's own resources go first
    assert got.unreserved().cpus() == 1
    assert Resources.from_wire(o.resources).contains(got)


def test_explicit_ranges_and_sets() -> None:
    o = offer("ports:[8000-8010];zones:{a,b}")
    assert fits(o, "ports:[8005-8006]")
    assert not fits(o, "ports:[9000-9000]")
    assert fits(o, "zones:{a}")
    assert not fits(o, "zones:{c}")


def test_split_into_disjoint_pieces() -> None:
    o = offer("cpus:4;mem:1000;ports:[1-5]")
    pieces = split(o, "cpus:1;mem:300", ports=1)
    assert len(pieces) == 3  # memory runs out first
    used = [p for piece in pieces for p in ports_of(piece)]
    assert used == [1, 2, 3]
    assert len(split(o, "cpus:1", limit=2)) == 2
    with pytest.raises(ValueError):
        split(o, Resources())


def test_pick_ports() -> None:
    o = offer("ports:[10-11,20-22]")
    assert pick_ports(o, 4) == [10, 11, 20, 21]
    with pytest.raises(ValueError):
        pick_ports(o, 6)


def test_shell_task_from_offer_round_trips() -> None:
    o = offer("cpus:1;mem:128")
    task = shell_task(o, "cpus:0.5;mem:64", "echo hi", name="hello")
    assert task.agent_id == AgentID(value="S1")
    assert task.command is not None and task.command.shell and task.command.value == "echo hi"
    assert task.task_id.value.startswith("hello-")
    assert Resources.from_wire(task.resources) == Resources.parse("cpus:0.5;mem:64")
    assert all(r.role == "*" for r in task.resources)  # pre-refinement format by default
    again = decode(encode(task), TaskInfo)
    assert again == task


def test_shell_task_argv_and_env() -> None:
    task = shell_task("S9", "cpus:0.1", ["/bin/echo", "a b"], task_id="t1", environment={"X": "1"})
    assert task.task_id.value == "t1" and task.name == "t1"
    assert task.command is not None and task.command.shell is False
    assert task.command.value == "/bin/echo" and task.command.arguments == ["/bin/echo", "a b"]
    assert task.command.environment is not None
    assert task.command.environment.variables[0].name == "X"
    with pytest.raises(ValueError):
        shell_task(offer("cpus:0.1"), "cpus:1", "true")


def test_default_executor_for_a_task_group() -> None:
    e = default_executor("pod")
    assert e.type == ExecutorType.DEFAULT and e.executor_id == ExecutorID(value="pod")
    assert e.command is None
    assert Resources.from_wire(e.resources) == Resources.parse("cpus:0.1;mem:32;disk:10")
    o = offer("cpus(eng):0.05;cpus:2;mem:1024;disk:100")
    taken = default_executor("pod", "cpus:0.1;mem:32;disk:10", offer=o)
    assert Resources.from_wire(o.resources).contains(Resources.from_wire(taken.resources))
    with pytest.raises(ValueError, match="does not fit"):
        default_executor("pod", "cpus:8;mem:32;disk:10", offer=o)
