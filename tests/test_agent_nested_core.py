"""`ContainerTree`, the decisions about nested and standalone containers (pure: no processes)."""

from __future__ import annotations

import pytest

from mezzo.agent.nested import (
    NO_SWITCHBOARD,
    ContainerClass,
    ContainerTree,
    Root,
    WaitResult,
    container_name,
)
from mezzo.api.common import (
    CommandInfo,
    ContainerID,
    ContainerInfo,
    ContainerType,
    Resource,
    Scalar,
    ValueType,
)
from mezzo.core.errors import CallRefused

EXECUTOR = Root("exec-1", "/w/slaves/S/frameworks/F/executors/E/runs/exec-1", 4242)


def roots(name: str) -> Root | None:
    return EXECUTOR if name == EXECUTOR.name else None


def cid(value: str, parent: ContainerID | None = None) -> ContainerID:
    return ContainerID(value=value, parent=parent)


PARENT = cid("exec-1")
SHELL = CommandInfo(value="echo hi")


def launch(tree: ContainerTree, container_id: ContainerID, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("container_class", ContainerClass.DEFAULT)
    plan = tree.plan_launch(container_id, kw.pop("command", SHELL), kw.pop("container", None),  # type: ignore[arg-type]
                            roots=roots, **kw)  # type: ignore[arg-type]
    if plan is not None:
        tree.launching(container_id, plan)
        tree.launched(plan.name, 100)
    return plan


def test_names_and_ids() -> None:
    assert container_name(cid("c", cid("b", cid("a")))) == "a.b.c"
    tree = ContainerTree("/w")
    for bad, why in [("a.b", "invalid characters"), ("a b", "invalid characters"),
                     ("a/b", "invalid characters"), ("", "must not be empty"), ("x" * 243, "maximum")]:
        with pytest.raises(CallRefused, match=why) as e:
            tree.plan_launch(cid(bad, PARENT), SHELL, None, container_class=ContainerClass.DEFAULT,
                             roots=roots)
        assert e.value.status == 400


def test_nested_and_session_sandboxes() -> None:
    tree = ContainerTree("/w")
    plan = launch(tree, cid("n", PARENT))
    assert plan is not None
    assert plan.name == "exec-1.n" and plan.parent == "exec-1"
    assert plan.sandbox == plan.workdir == plan.mesos_sandbox == f"{EXECUTOR.sandbox}/containers/n"
    assert plan.shell == "echo hi" and plan.argv is None and not plan.switchboard
    session = launch(tree, cid("s", PARENT), container_class=ContainerClass.DEBUG,
                     command=CommandInfo(value="ls", arguments=["ls", "-l"], shell=False))
    assert session is not None and session.switchboard
    assert session.workdir == session.mesos_sandbox == EXECUTOR.sandbox
    assert session.sandbox == f"{EXECUTOR.sandbox}/containers/s"
    assert session.argv == ["ls", "-l"] and session.shell is None
    # A grandchild lives under its parent's sandbox.
    grandchild = launch(tree, cid("g", cid("n", PARENT)))
    assert grandchild is not None
    assert grandchild.sandbox == f"{EXECUTOR.sandbox}/containers/n/containers/g"
    assert tree.descendants("exec-1") == ["exec-1.n.g", "exec-1.n", "exec-1.s"]


def test_tty_and_container_type() -> None:
    tree = ContainerTree("/w")
    tty = ContainerInfo(type=ContainerType.MESOS, tty_info={"window_size": {"rows": 30, "columns": 100}})
    plan = launch(tree, cid("t", PARENT), container=tty)
    assert plan is not None and plan.tty and plan.window == (30, 100) and plan.switchboard
    with pytest.raises(CallRefused, match="not supported"):
        launch(tree, cid("d", PARENT), container=ContainerInfo(type=ContainerType.DOCKER))


def test_refusals_and_202() -> None:
    tree = ContainerTree("/w")
    with pytest.raises(CallRefused, match="Parent container nope does not exist"):
        launch(tree, cid("x", cid("nope")))
    starting = Root("exec-2", "/s", None)
    with pytest.raises(CallRefused, match="not running yet"):
        tree.plan_launch(cid("x", cid("exec-2")), SHELL, None, container_class=ContainerClass.DEFAULT,
                         roots=lambda n: starting if n == "exec-2" else None)
    with pytest.raises(CallRefused, match="parent' to be present"):
        launch(tree, cid("alone"), container_class=ContainerClass.DEBUG)
    assert launch(tree, cid("n", PARENT)) is not None
    assert launch(tree, cid("n", PARENT)) is None  # in use: 202
    assert launch(tree, PARENT) is None  # the executor's own container
    tree.terminated("exec-1.n", WaitResult(0))
    with pytest.raises(CallRefused, match="is in 'TERMINATED' state"):
        launch(tree, cid("child", cid("n", PARENT)))


def test_standalone() -> None:
    tree = ContainerTree("/w")
    resources = [Resource(name="cpus", type=ValueType.SCALAR, scalar=Scalar(value=0.5)),
                 Resource(name="mem", type=ValueType.SCALAR, scalar=Scalar(value=64))]
    plan = launch(tree, cid("solo"), resources=resources)
    assert plan is not None and plan.parent is None
    assert plan.sandbox == "/w/standalone/solo"
    assert (plan.cpus, plan.mem_mb) == (0.5, 64.0)


def test_wait_kill_remove_attach() -> None:
    tree = ContainerTree("/w")
    launch(tree, cid("n", PARENT))
    launch(tree, cid("s", PARENT), container_class=ContainerClass.DEBUG)
    assert tree.kill_target(cid("n", PARENT), "f").name == "exec-1.n"
    with pytest.raises(CallRefused) as e:
        tree.attach_target(cid("n", PARENT), "f", roots)
    assert (e.value.status, e.value.message) == (500, NO_SWITCHBOARD)
    assert tree.attach_target(cid("s", PARENT), "f", roots).name == "exec-1.s"
    with pytest.raises(CallRefused, match="has not terminated yet"):
        tree.remove(cid("n", PARENT), "f", roots)
    tree.terminated("exec-1.n", WaitResult(9, "Container terminated with signal SIGKILL"))
    assert tree.wait_target(cid("n", PARENT), "f").result == WaitResult(
        9, "Container terminated with signal SIGKILL")
    with pytest.raises(CallRefused) as e:
        tree.kill_target(cid("n", PARENT), "f")
    assert e.value.status == 404
    assert tree.remove(cid("n", PARENT), "f", roots) == f"{EXECUTOR.sandbox}/containers/n"
    with pytest.raises(CallRefused) as e:
        tree.wait_target(cid("n", PARENT), "f")
    assert e.value.status == 404
    # Under a root that is gone: nothing to remove, 200.
    assert tree.remove(cid("x", cid("gone")), "f", roots) is None
    with pytest.raises(CallRefused, match="Unknown container"):
        tree.remove(cid("never", PARENT), "f", roots)


def test_attach_to_a_container_never_run_is_404_and_to_an_ended_one_500() -> None:
    """Bad input (an id this agent never ran) is a 4xx; an ended container keeps Mesos's 500,
    which the Mesos CLI reads as "the command already ended" (found by the fuzz test)."""
    tree = ContainerTree("/w")
    with pytest.raises(CallRefused) as e:
        tree.attach_target(cid("never", PARENT), "f", roots)
    assert (e.value.status, e.value.message) == (404, "Container exec-1.never cannot be found")
    launch(tree, cid("s", PARENT), container_class=ContainerClass.DEBUG)
    tree.terminated("exec-1.s", WaitResult(0, None))
    with pytest.raises(CallRefused) as e:
        tree.attach_target(cid("s", PARENT), "f", roots)
    assert (e.value.status, e.value.message) == (500, "Unknown container exec-1.s")
