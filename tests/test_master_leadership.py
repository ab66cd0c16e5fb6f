"""Leadership has one owner (issue 10 item 6): the core's phase STANDBY -> RECOVERING ->
LEADING -> FENCED, what the shell does in each, and the socket bound before the master is
built."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from mezzo.master.flags import MasterFlags
from mezzo.master.leadership import Phase
from mezzo.master.main import build_master
from mezzo.master.registry import RegistryState
from mezzo.testing.master_cluster import MasterCluster
from tests.test_master_http import (
    JSON,
    SUBSCRIBE,
    open_subscription,
    read_records,
    serve_on_loopback,
)


def test_the_phases_in_order_and_fenced_is_final() -> None:
    c = MasterCluster()  # recovered at once, as a standalone master: STANDBY -> LEADING
    master = c.master
    assert master.phase is Phase.LEADING and master.recovered
    seen: list[Phase] = []
    master.on_phase = seen.append
    master.elected()  # already leading: nothing changes
    assert seen == []
    assert master.fence("lost the election") and master.phase is Phase.FENCED
    assert not master.fence("again") and master.fenced_reason == "lost the election"
    master.recover(RegistryState())  # a late recovery does not revive a fenced master
    master.elected()
    assert master.phase is Phase.FENCED and not master.recovered and seen == [Phase.FENCED]


def test_an_elected_master_recovers_then_leads() -> None:
    fresh = build_master(MasterFlags.parse({"registry": "in_memory", "port": "0"})).master
    assert fresh.phase is Phase.STANDBY and not fresh.recovered
    seen: list[Phase] = []
    fresh.on_phase = seen.append
    fresh.elected()
    assert fresh.phase is Phase.RECOVERING and not fresh.recovered and fresh.elected_time is not None
    fresh.recover(RegistryState())
    assert seen == [Phase.RECOVERING, Phase.LEADING] and fresh.recovered


async def test_a_fenced_master_closes_every_stream_and_serves_nothing() -> None:
    flags = MasterFlags.parse({"registry": "in_memory", "port": "0", "ip": "127.0.0.1"})
    process = build_master(flags)
    process.master.recover(process.registrar.recover())
    runner, url = await serve_on_loopback(process, flags)
    from tests.test_master_http import Running

    async with aiohttp.ClientSession() as session:
        r = Running(process, url, session)
        try:
            resp = await open_subscription(r)
            assert (await read_records(resp, 1))[0]["type"] == "SUBSCRIBED"
            process.master.fence("registry changed by another master")
            assert await resp.content.read() is not None and resp.content.at_eof()
            code, text, _ = await r.post("/api/v1/scheduler", SUBSCRIBE, {**JSON, "Accept": "application/json"})
            assert (code, text) == (503, "No leader elected")
            assert (await r.get_json("/metrics/snapshot"))["master/elected"] == 0.0
        finally:
            await runner.cleanup()


def test_a_port_in_use_is_one_readable_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(Path(sys.executable).parent / "mezzo"), "master", "--ip", "127.0.0.1", "--port", str(port),
             "--registry", "in_memory", "--work_dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], done.stderr


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read the backlog")
async def test_the_listening_socket_keeps_its_deep_accept_queue(tmp_path: Path) -> None:
    """After a failover thousands of agents connect at once: the accept queue is
    LISTEN_BACKLOG deep (capped by the kernel's somaxconn), not the 128 that aiohttp's site
    would set again when it starts serving."""
    import asyncio

    from mezzo.master.main import LISTEN_BACKLOG, serve

    port_file = tmp_path / "port"
    flags = MasterFlags.parse({"ip": "127.0.0.1", "port": "0", "registry": "in_memory",
                               "work_dir": str(tmp_path), "port_file": str(port_file),
                               "logging_level": "WARNING"})
    stop = asyncio.Event()
    master = asyncio.create_task(serve(flags, stop=stop))
    try:
        while not port_file.exists():
            assert not master.done(), master
            await asyncio.sleep(0.02)
        port = port_file.read_text().strip()
        listing = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                                 text=True, timeout=10, check=True).stdout.split()
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
        assert int(listing[2]) == min(LISTEN_BACKLOG, somaxconn), listing  # Send-Q: the backlog
    finally:
        stop.set()
        await asyncio.wait_for(master, 10)
