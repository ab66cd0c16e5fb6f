"""The master's composition root: flags -> store, registrar, allocator, core, HTTP server.

`build_master(flags)` wires the collaborators (the only place that picks implementations);
`serve(flags)` runs the server until SIGINT/SIGTERM. Leader election: without `--zk` a
standalone contender leads at once and the registry is recovered before the port opens; with
`--zk` the master binds first (standbys must answer 307/503), contends with its MasterInfo in
ZooKeeper, and only once elected recovers the registry (in ZooKeeper) and serves. Losing
leadership (session expired, node gone) closes every stream at once and ends the process
with status 1, as Mesos does (docs/ha.md). Once listening, the bound address is printed as the first stdout line
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
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mezzo import __version__
from mezzo.api.codec import to_builtins
from mezzo.api.common import Address, MasterCapability, MasterCapabilityType, MasterInfo
from mezzo.core.clock import Clock, RealClock
from mezzo.core.errors import ConfigError
from mezzo.core.gc_tuning import tune_for_daemon
from mezzo.core.ids import IdSource
from mezzo.core.zkurl import parse_zk_url
from mezzo.election.base import Contender
from mezzo.election.standalone import StandaloneContender
from mezzo.master.allocator import AllocatorOptions, create_allocator
from mezzo.master.core import Master
from mezzo.master.flags import MasterFlags
from mezzo.master.http import HttpOutbox, MasterServer
from mezzo.master.leadership import Leadership
from mezzo.master.operator_api import MASTER_LOG_FILE
from mezzo.master.registry import Registrar
from mezzo.store.base import Store
from mezzo.store.factory import open_store

if TYPE_CHECKING:
    from mezzo.election.zookeeper import ZooKeeperDetector

log = logging.getLogger("mezzo.master")
# MasterInfo.capabilities this master can honour (see build_master).
MASTER_CAPABILITIES: tuple[str, ...] = ()
# How long a master waits for its first ZooKeeper connection before giving up with an error.
ZK_CONNECT_TIMEOUT = 30.0


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
    flags: MasterFlags,
    *,
    clock: Clock | None = None,
    contender: Contender | None = None,
    zk_client: Any = None,
) -> MasterProcess:
    """Wire a master. With `zk_client` (HA) a ZooKeeper registry shares that session; the
    ZooKeeper contender is attached by `serve` once the port is bound."""
    clock = clock or RealClock()
    ids = IdSource()
    if flags.registry.startswith("zk://") and zk_client is not None:
        from mezzo.store.zookeeper import ZooKeeperStore

        store: Store = ZooKeeperStore(client=zk_client, root=parse_zk_url(flags.registry).path)
    elif flags.registry == "sqlite":
        work_dir = flags.work_dir_or_default()
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        store = open_store("sqlite", work_dir=work_dir)
    else:
        store = open_store(flags.registry, work_dir=flags.work_dir)
    if zk_client is not None and not flags.registry.startswith("zk://"):
        # Allowed (Mesos allows an in-memory registry for tests), but a failover then starts
        # from an empty or stale registry: say so where operators look.
        log.warning("--registry %s with --zk: this master's registry is its own, not shared "
                    "with the other masters; a new leader will not know the admitted agents",
                    flags.registry)
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
        # Advertised only once built: AGENT_UPDATE (agents changing their total resources),
        # AGENT_DRAINING and QUOTA_V2 are Mesos 1.11 features this master does not have yet.
        capabilities=[MasterCapability(type=MasterCapabilityType(c)) for c in MASTER_CAPABILITIES],
    )
    master = Master(
        clock=clock, ids=ids, allocator=allocator, outbox=HttpOutbox(registrar),
        master_info=info, options=flags.options,
    )
    server = MasterServer(master, flags=flags.as_strings())
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


def _zk_client(zk: str, session_timeout: float) -> Any:
    """The one ZooKeeper session of an HA master, shared by its contender, detector and registry
    store: when it expires, leadership and registry access end together."""
    from kazoo.client import KazooClient

    url = parse_zk_url(zk)
    auth = [("digest", f"{url.auth[0]}:{url.auth[1]}")] if url.auth else None
    return KazooClient(hosts=url.hosts, timeout=session_timeout, auth_data=auth)


async def _lead(process: MasterProcess) -> None:
    """Wait to be elected, then recover the registry and start serving as the leader."""
    term = await process.contender.elected()
    started = time.monotonic()
    # Off the loop: a ZooKeeper registry is one round trip per key.
    state = await asyncio.to_thread(process.registrar.recover)
    master = process.master
    master.elected_time = master.now()
    master.recover(state)
    process.server.mark_recovered()
    log.info(
        "elected leader (term %d); recovered the registry (%d admitted, %d unreachable, "
        "%d gone agents) in %.0f ms",
        term, len(state.admitted), len(state.unreachable), len(state.gone),
        (time.monotonic() - started) * 1000,
    )


async def serve(flags: MasterFlags, *, stop: asyncio.Event | None = None) -> int:
    """Run a master until `stop` is set or SIGINT/SIGTERM arrives (exit status 0), or until
    it loses leadership (exit status 1: like a Mesos master, it exits; see docs/ha.md)."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    lost: list[str] = []
    zk_client = None
    detector: ZooKeeperDetector | None = None
    if flags.zk:
        from mezzo.election.zookeeper import ZooKeeperContender, ZooKeeperDetector

        zk_client = _zk_client(flags.zk, flags.zk_session_timeout)
        try:
            await asyncio.to_thread(zk_client.start, ZK_CONNECT_TIMEOUT)
        except Exception as exc:  # kazoo's own timeout/connection errors
            zk_client.close()
            raise ConfigError(
                f"--zk: cannot reach ZooKeeper at {parse_zk_url(flags.zk).hosts} within "
                f"{ZK_CONNECT_TIMEOUT:.0f} secs ({type(exc).__name__})"
            ) from None
    process = build_master(flags, zk_client=zk_client)

    def give_up(reason: str) -> None:
        # Stop acting as leader at once: nothing more is served or sent from this state.
        log.error("%s; exiting", reason)
        lost.append(reason)
        process.server.drop_everything(f"master lost leadership: {reason}")
        stop.set()

    # Registry writes run on the outbox's worker thread: their verdicts come back to the loop.
    process.registrar.on_conflict = lambda reason: loop.call_soon_threadsafe(give_up, reason)
    outbox = process.server.outbox
    if outbox is not None:
        outbox.failed = give_up
    if zk_client is None:
        # Standalone: the only master leads at once; recover before serving anything.
        process.contender.contend()
        await _lead(process)
    runner = web.AppRunner(process.server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, flags.ip, flags.port, reuse_address=True)
    await site.start()
    sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
    port = sockets[0].getsockname()[1] if sockets else flags.port
    set_bound_port(process, port, flags)
    lead_task: asyncio.Task[None] | None = None
    forget_lost: Callable[[], None] = lambda: None  # noqa: E731
    if zk_client is not None:
        assert flags.zk is not None
        # Contend only now: the advertised MasterInfo must carry the bound port.
        payload = to_builtins(process.master.info)
        detector = ZooKeeperDetector(flags.zk, client=zk_client)
        contender = ZooKeeperContender(flags.zk, payload, client=zk_client,
                                       session_timeout=flags.zk_session_timeout)
        process.contender = contender
        process.server.leadership = Leadership(contender, detector, process.master.info.id)

        def on_lost(term: int, reason: str) -> None:
            give_up(f"lost leadership (term {term}): {reason}")

        forget_lost = contender.on_lost(on_lost, loop=loop)
        detector.start()
        contender.contend()
        lead_task = asyncio.create_task(_lead(process), name="lead")
    shown_ip = "127.0.0.1" if flags.ip in ("0.0.0.0", "") else flags.ip
    print(f"listening on http://{shown_ip}:{port}", flush=True)
    if flags.port_file:
        tmp = flags.port_file + ".tmp"
        Path(tmp).write_text(str(port))
        os.replace(tmp, flags.port_file)
    log.info("master %s listening on %s:%d%s", process.master.info.id, flags.ip, port,
             f" (contending in {flags.zk})" if flags.zk else "")
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("master shutting down")
        forget_lost()  # withdrawing below is a shutdown, not a lost election
        if lead_task is not None:
            lead_task.cancel()
        # Bounded: a master that lost its ZooKeeper session must not linger half-alive.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runner.cleanup(), 5.0)
        if zk_client is not None:
            if detector is not None:
                detector.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.to_thread(process.contender.withdraw), 5.0)
        if process.server.outbox is not None:
            process.server.outbox.close()
        process.registrar.close()
        if zk_client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.to_thread(zk_client.stop), 5.0)
            zk_client.close()
    return 1 if lost else 0


def run(flags: MasterFlags) -> None:
    logging.basicConfig(
        level=getattr(logging, flags.logging_level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kazoo").setLevel(max(logging.WARNING, logging.getLogger().level))
    if flags.log_dir:
        Path(flags.log_dir).mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(Path(flags.log_dir) / MASTER_LOG_FILE)
        handler.setFormatter(logging.getLogger().handlers[0].formatter)
        logging.getLogger().addHandler(handler)
    tune_for_daemon()
    try:
        status = asyncio.run(serve(flags))
    except ConfigError as exc:  # a start-up problem: one readable line, no traceback
        print(f"mezzo master: {exc}", file=sys.stderr)
        status = 1
    sys.exit(status)
