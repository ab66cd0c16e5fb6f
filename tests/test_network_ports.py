"""The `network/ports` isolator: a container listening on a port it was not allocated is found
from /proc (listening sockets of /proc/net/tcp{,6}, the sockets its processes hold) and, with
--enforce_container_ports, killed: TASK_FAILED, REASON_CONTAINER_LIMITATION, Mesos's message.
Real processes, real sockets, a real agent and master."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mezzo.agent.containerizer.isolators.network_ports import (
    NetworkPortsIsolator,
    collect_listeners,
    format_ranges,
    listening_ports,
    parse_ranges,
    to_ranges,
)
from mezzo.testing.agent_harness import MiniScheduler, ProcessCluster, command_task
from mezzo.testing.processes import free_ports, wait_until

LISTEN = "import socket,time; s=socket.socket(socket.{family}); s.bind(('{host}', {port})); s.listen(); time.sleep(300)"


def listener(port: int, family: str = "AF_INET", host: str = "127.0.0.1") -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", LISTEN.format(family=family, host=host, port=port)],
                            start_new_session=True)


def wait_listening(port: int) -> None:
    wait_until(lambda: port in listening_ports().values(), 10, f"a listener on {port}")


def test_ranges_text() -> None:
    assert to_ranges([31002, 31000, 31003, 31004]) == ((31000, 31000), (31002, 31004))
    assert format_ranges(((31000, 31000), (31002, 31004))) == "[31000-31000, 31002-31004]"
    assert parse_ranges("[0-1023, 8080-8080]") == ((0, 1023), (8080, 8080))
    with pytest.raises(ValueError):
        parse_ranges("0-1023")


def test_listeners_of_a_session_ipv4_and_ipv6() -> None:
    p4, p6 = free_ports(2)
    procs = [listener(p4), listener(p6, "AF_INET6", "::1")]
    try:
        for port in (p4, p6):
            wait_listening(port)
        found = collect_listeners({procs[0].pid: "a", procs[1].pid: "b"}, None)
        assert found == {"a": {p4}, "b": {p6}}
        # Only the isolated range is looked at.
        assert collect_listeners({procs[0].pid: "a"}, ((p4 + 1, 65535),)) == {}
    finally:
        for p in procs:
            p.kill()
            p.wait()


async def test_check_logs_or_limits() -> None:
    iso = NetworkPortsIsolator(watch_interval=3600, enforce=False)
    from mezzo.agent.containerizer.records import ContainerConfig
    iso.prepare("c", ContainerConfig(sandbox=Path("/tmp"), argv=["true"], ports=((31000, 31001),)))
    iso.prepare("c.n", ContainerConfig(sandbox=Path("/tmp"), argv=["true"], parent="c"))
    future = iso.watch("c")
    assert future is not None and iso.watch("c.n") is None
    iso.check({"c": {31000, 8080}})
    assert not future.done()  # not enforced: logged only
    iso.enforce = True
    iso.check({"c": {31000, 31001}})
    assert not future.done()
    iso.check({"c": {31000, 8080, 8081}})
    limitation = future.result()
    assert limitation.reason == "REASON_CONTAINER_LIMITATION"
    assert limitation.message == "Container c is listening on unallocated port(s): [8080-8081]"
    assert iso.limitation("c") == limitation
    iso.cleanup("c.n")
    iso.cleanup("c")


@pytest.fixture
def ports() -> tuple[int, int, int]:
    good, given, other = free_ports(3)
    return good, given, other


@pytest.fixture
def cluster(tmp_path: Path, ports: tuple[int, int, int]) -> Iterator[ProcessCluster]:
    good, given, _ = ports
    with ProcessCluster(tmp_path, "--resources", f"cpus:4;mem:4096;ports:[{good}-{good},{given}-{given}]",
                        "--isolation", "posix/cpu,posix/mem,network/ports",
                        "--enforce_container_ports=true", "--container_ports_watch_interval=200ms") as c:
        yield c


def with_port(task: dict, port: int) -> dict:
    task["resources"].append({"name": "ports", "type": "RANGES",
                              "ranges": {"range": [{"begin": port, "end": port}]}})
    return task


@pytest.mark.slow
async def test_a_task_listening_outside_its_ports_is_killed(
        cluster: ProcessCluster, ports: tuple[int, int, int]) -> None:
    good, given, other = ports
    cluster.agent()
    python = sys.executable
    async with MiniScheduler(cluster.master.url) as s:
        await s.launch([
            with_port(command_task("good", f"exec {python} -c \"{LISTEN.format(family='AF_INET', host='127.0.0.1', port=good)}\""), good),
            with_port(command_task("bad", f"exec {python} -c \"{LISTEN.format(family='AF_INET', host='127.0.0.1', port=other)}\""), given),
        ])
        await s.wait_state("good", "TASK_RUNNING")
        failed = await s.wait_state("bad", "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LIMITATION"
        assert failed["message"].endswith(f"is listening on unallocated port(s): [{other}-{other}]")
        assert failed["message"].startswith("Container ")
        # The good task goes on through further checks.
        await asyncio.sleep(1.0)
        assert s.states("good")[-1] == "TASK_RUNNING"
        with socket.create_connection(("127.0.0.1", good), timeout=5):
            pass
        await s.call({"type": "KILL", "kill": {"task_id": {"value": "good"}}})
        await s.wait_state("good", "TASK_KILLED")


async def test_a_recovered_container_is_checked_once_its_ports_are_known() -> None:
    from mezzo.agent.containerizer.records import ContainerState

    iso = NetworkPortsIsolator(watch_interval=3600, enforce=True)
    iso.recover([ContainerState("r", 12345)])  # after an agent restart: no config
    future = iso.watch("r")
    assert future is not None
    iso.check({"r": {31000}})
    assert not future.done()  # its allocation is not known yet
    iso.update_ports("r", ((31000, 31000),))
    iso.check({"r": {31000}})
    assert not future.done()
    iso.check({"r": {31000, 31001}})
    assert future.result().message.endswith("[31001-31001]")
    iso.cleanup("r")
