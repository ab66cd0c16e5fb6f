"""The master's composition root: flags -> store, registrar, allocator, core, HTTP server.

`build_master(flags)` wires the collaborators (the only place that picks implementations);
`serve(flags)` runs the server until SIGINT/SIGTERM. Leader election is a seam: a contender is
injected (standalone now, so this master leads as soon as it contends); a ZooKeeper contender
plugs in here later. Once listening, the bound address is printed as the first stdout line
(`listening on http://IP:PORT`) and written to `--port_file` if given, so that `--port 0`
works for tests and scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from mezzo import __version__
from mezzo.api.common import Address, MasterCapability, MasterCapabilityType, MasterInfo
from mezzo.core.clock import Clock, RealClock
from mezzo.core.ids import IdSource
from mezzo.election.base import Contender
from mezzo.election.standalone import StandaloneContender
from mezzo.master.allocator import AllocatorOptions, create_allocator
from mezzo.master.core import Master
from mezzo.master.flags import MasterFlags
from mezzo.master.http import HttpOutbox, MasterServer
from mezzo.master.registry import Registrar
from mezzo.store.factory import open_store

log = logging.getLogger("mezzo.master")


@dataclass
class MasterProcess:
    master: Master
    server: MasterServer
    registrar: Registrar
    contender: Contender


def _advertised_ip(flags: MasterFlags) -> str:
    if flags.advertise_ip:
        return flags.advertise_ip
    if flags.ip not in ("0.0.0.0", ""):
        return flags.ip
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def _packed_ip(ip: str) -> int | None:
    try:
        return struct.unpack("<I", socket.inet_aton(ip))[0]
    except OSError:
        return None


def build_master(
    flags: MasterFlags, *, clock: Clock | None = None, contender: Contender | None = None
) -> MasterProcess:
    clock = clock or RealClock()
    ids = IdSource()
    if flags.registry == "sqlite":
        work_dir = flags.work_dir_or_default()
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        store = open_store("sqlite", work_dir=work_dir)
    else:
        store = open_store(flags.registry, work_dir=flags.work_dir)
    registrar = Registrar(store)
    allocator = create_allocator(
        flags.allocator,
        AllocatorOptions.from_flags(
            weights=flags.weights,
            fair_sharing_excluded_resource_names=flags.fair_sharing_excluded_resource_names,
            min_allocatable_resources=flags.min_allocatable_resources,
        ),
    )
    ip = _advertised_ip(flags)
    hostname = flags.hostname or ip
    port = flags.advertise_port or flags.port
    info = MasterInfo(
        id=ids.master_id,
        ip=_packed_ip(ip),
        port=port,
        pid=f"master@{ip}:{port}",
        hostname=hostname,
        version=__version__,
        address=Address(hostname=hostname, ip=ip, port=port),
        capabilities=[MasterCapability(type=MasterCapabilityType(c))
                      for c in ("AGENT_UPDATE", "AGENT_DRAINING", "QUOTA_V2")],
    )
    master = Master(
        clock=clock, ids=ids, allocator=allocator, outbox=HttpOutbox(registrar),
        master_info=info, options=flags.options,
    )
    server = MasterServer(master, flags=flags.as_strings(), weights=flags.weights)
    return MasterProcess(master, server, registrar, contender or StandaloneContender())


def set_bound_port(process: MasterProcess, port: int, flags: MasterFlags) -> None:
    """After binding `--port 0`: advertise the real port."""
    if flags.advertise_port:
        return
    info = process.master.info
    info.port = port
    ip = info.address.ip if info.address else "127.0.0.1"
    info.pid = f"master@{ip}:{port}"
    if info.address is not None:
        info.address.port = port


async def serve(flags: MasterFlags, *, stop: asyncio.Event | None = None) -> None:
    """Run a master until `stop` is set or SIGINT/SIGTERM arrives."""
    process = build_master(flags)
    # Recover the registry before serving anything else (HTTP answers 503 until then).
    process.master.recover(process.registrar.recover())
    process.contender.contend()
    runner = web.AppRunner(process.server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, flags.ip, flags.port, reuse_address=True)
    await site.start()
    sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
    port = sockets[0].getsockname()[1] if sockets else flags.port
    set_bound_port(process, port, flags)
    shown_ip = "127.0.0.1" if flags.ip in ("0.0.0.0", "") else flags.ip
    print(f"listening on http://{shown_ip}:{port}", flush=True)
    if flags.port_file:
        tmp = flags.port_file + ".tmp"
        Path(tmp).write_text(str(port))
        os.replace(tmp, flags.port_file)
    log.info("master %s listening on %s:%d", process.master.info.id, flags.ip, port)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("master shutting down")
        await runner.cleanup()
        process.registrar.close()


def run(flags: MasterFlags) -> None:
    logging.basicConfig(
        level=getattr(logging, flags.logging_level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(flags))
