"""The master's composition root: flags -> store, registrar, allocator, core, HTTP server.

`build_master(flags)` wires the collaborators (the only place that picks implementations);
`serve(flags)` runs the server until SIGINT/SIGTERM. It binds the listening socket first, so
the master is built knowing its real port (nothing is swapped in afterwards). Leader election
(the phases are the core's, `mezzo.master.leadership`): without `--zk` a standalone contender
leads at once and the registry is recovered before the port accepts anything; with `--zk` the
master contends with its MasterInfo in ZooKeeper while serving as a standby (307/503), and
only once elected recovers the registry (in ZooKeeper) and leads. Losing leadership (session
expired, node gone, registry written by another master or a failed registry write) fences the
core: every stream closes at once and the process ends with status 1, as Mesos does
(docs/ha.md). Once listening, the bound address is printed as the first stdout line
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
from typing import Any

from aiohttp import web

from mezzo import __version__
from mezzo.api.codec import to_builtins
from mezzo.api.common import Address, MasterCapability, MasterCapabilityType, MasterInfo
from mezzo.core.clock import Clock, RealClock
from mezzo.core.daemon_logging import configure_logging
from mezzo.core.errors import ConfigError
from mezzo.core.gc_tuning import tune_for_daemon, watch_pauses
from mezzo.core.ids import IdSource
from mezzo.core.zkurl import parse_zk_url
from mezzo.election.base import Contender, Detector
from mezzo.election.standalone import StandaloneContender
from mezzo.master.allocator import AllocatorOptions, create_allocator
from mezzo.master.core import Master
from mezzo.master.flags import MasterFlags
from mezzo.master.http import HttpOutbox, MasterServer
from mezzo.master.leadership import Leadership, Phase
from mezzo.master.operator_api import MASTER_LOG_FILE
from mezzo.master.registry import Registrar
from mezzo.net.fastpath import FastPathRunner
from mezzo.store.base import Store
from mezzo.store.factory import open_store

# A deep accept queue: after a failover thousands of agents and frameworks connect within a
# moment; a short queue overflows and the kernel drops SYNs (clients retry after 1, 3, 7 s).
# The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096
# How often a standby brings its copy of the registry up to date (one read when nothing
# changed): the older the copy, the more a newly elected leader must read.
REGISTRY_REFRESH_SECONDS = 1.0
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
    detector: Detector | None = None


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
    port: int | None = None,
    clock: Clock | None = None,
    contender: Contender | None = None,
    zk_client: Any = None,
) -> MasterProcess:
    """Wire a master listening on `port` (default `--port`). With `zk_client` (HA): a
    ZooKeeper registry, contender and detector, all on that one session."""
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
            filter_gpu_resources=flags.filter_gpu_resources,
        ),
    )
    ip = _advertised_ip(flags)
    hostname = flags.hostname or ip
    port = flags.advertise_port or (flags.port if port is None else port)
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
    detector: Detector | None = None
    if zk_client is not None and flags.zk is not None:
        from mezzo.election.zookeeper import ZooKeeperContender, ZooKeeperDetector

        detector = ZooKeeperDetector(flags.zk, client=zk_client)
        advertised = to_builtins(info)
        if flags.security.tls.enabled:
            # mezzo's addition to the MasterInfo it advertises: how to reach it (clients that
            # do not know the key, e.g. pymesos, ignore it).
            advertised["scheme"] = "https"
        contender = ZooKeeperContender(flags.zk, advertised, client=zk_client,
                                       session_timeout=flags.zk_session_timeout)
    leadership = Leadership(detector, info.id) if detector is not None else None
    server = MasterServer(master, flags=flags.as_strings(), leadership=leadership, security=flags.security)
    return MasterProcess(master, server, registrar, contender or StandaloneContender(), detector)


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
    """Wait to be elected, then recover the registry and lead (STANDBY -> RECOVERING ->
    LEADING)."""
    warm = asyncio.create_task(_keep_registry_warm(process)) if process.detector is not None else None
    try:
        term = await process.contender.elected()
    finally:
        if warm is not None:
            warm.cancel()
    master = process.master
    master.elected()
    started = time.monotonic()
    full_reads = process.registrar.full_reads
    # Off the loop: reading a ZooKeeper registry whole is one round trip per key (a warm
    # standby's copy usually needs one read: mezzo.master.registry, "A warm standby").
    state = await asyncio.to_thread(process.registrar.recover)
    master.recover(state)
    log.info(
        "elected leader (term %d); recovered the registry (%d admitted, %d unreachable, "
        "%d gone agents) in %.0f ms, %s",
        term, len(state.admitted), len(state.unreachable), len(state.gone),
        (time.monotonic() - started) * 1000,
        "read whole" if process.registrar.full_reads > full_reads else "from this standby's copy",
    )


async def _keep_registry_warm(process: MasterProcess) -> None:
    """While a standby: keep a copy of the registry up to date (`Registrar.refresh`), so
    that once elected it recovers in a read or two instead of one per agent."""
    while True:
        try:
            await asyncio.to_thread(process.registrar.refresh)
        except Exception as exc:  # ZooKeeper away, say: the next round retries
            log.debug("registry refresh failed: %r", exc)
        await asyncio.sleep(REGISTRY_REFRESH_SECONDS)


def _listen(flags: MasterFlags) -> socket.socket:
    """The listening socket, bound before anything else is built (`--port 0` picks one)."""
    family = socket.AF_INET6 if ":" in flags.ip else socket.AF_INET
    try:
        return socket.create_server((flags.ip, flags.port), family=family, backlog=LISTEN_BACKLOG)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {flags.ip}:{flags.port}: {exc.strerror or exc}") from None


async def serve(flags: MasterFlags, *, stop: asyncio.Event | None = None) -> int:
    """Run a master until `stop` is set or SIGINT/SIGTERM arrives (exit status 0), or until
    it is fenced (exit status 1: like a Mesos master, it exits; see docs/ha.md)."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    zk_client = None
    if flags.zk:
        zk_client = _zk_client(flags.zk, flags.zk_session_timeout)
        try:
            await asyncio.to_thread(zk_client.start, ZK_CONNECT_TIMEOUT)
        except Exception as exc:  # kazoo's own timeout/connection errors
            zk_client.close()
            raise ConfigError(
                f"--zk: cannot reach ZooKeeper at {parse_zk_url(flags.zk).hosts} within "
                f"{ZK_CONNECT_TIMEOUT:.0f} secs ({type(exc).__name__})"
            ) from None
    try:
        sock = _listen(flags)
    except ConfigError:
        if zk_client is not None:
            zk_client.close()
        raise
    port = sock.getsockname()[1]
    process = build_master(flags, port=port, zk_client=zk_client)
    flags.security.log_posture()
    master = process.master

    def give_up(reason: str) -> None:
        # Fenced: the core closes every stream (through the shell) and nothing more is sent.
        if master.fence(reason):
            log.error("%s; exiting", reason)
            stop.set()

    # Registry writes run on the outbox's worker thread: their verdicts come back to the loop.
    process.registrar.on_conflict = lambda reason: loop.call_soon_threadsafe(give_up, reason)
    if process.server.outbox is not None:
        process.server.outbox.failed = give_up
    if zk_client is None:
        # Standalone: the only master leads at once; recover before serving anything.
        process.contender.contend()
        await _lead(process)
    runner = FastPathRunner(process.server.app, access_log=None)
    await runner.setup()
    tls = flags.security.tls
    # The backlog again: asyncio's server calls listen() on the socket once more with the
    # site's backlog (aiohttp's default, 128), which would undo the socket's.
    site = web.SockSite(runner, sock, backlog=LISTEN_BACKLOG,
                        ssl_context=tls.server_context() if tls.enabled else None)
    await site.start()
    lead_task: asyncio.Task[None] | None = None
    forget_lost: Callable[[], None] = lambda: None  # noqa: E731
    if process.detector is not None:

        def on_lost(term: int, reason: str) -> None:
            give_up(f"lost leadership (term {term}): {reason}")

        forget_lost = process.contender.on_lost(on_lost, loop=loop)
        process.detector.start()
        process.contender.contend()
        lead_task = asyncio.create_task(_lead(process), name="lead")
    shown_ip = "127.0.0.1" if flags.ip in ("0.0.0.0", "") else flags.ip
    print(f"listening on {tls.scheme}://{shown_ip}:{port}", flush=True)
    if flags.port_file:
        tmp = flags.port_file + ".tmp"
        Path(tmp).write_text(str(port))
        os.replace(tmp, flags.port_file)
    log.info("master %s listening on %s:%d%s", master.info.id, flags.ip, port,
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
            if process.detector is not None:
                process.detector.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.to_thread(process.contender.withdraw), 5.0)
        if process.server.outbox is not None:
            process.server.outbox.close()
        process.registrar.close()
        if zk_client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.to_thread(zk_client.stop), 5.0)
            zk_client.close()
    return 1 if master.phase is Phase.FENCED else 0


def run(flags: MasterFlags) -> None:
    try:
        configure_logging(flags.logging_level, flags.log_dir, MASTER_LOG_FILE)
        logging.getLogger("kazoo").setLevel(max(logging.WARNING, logging.getLogger().level))
        tune_for_daemon()
        watch_pauses()
        status = asyncio.run(serve(flags))
    except ConfigError as exc:  # a start-up problem: one readable line, no traceback
        print(f"mezzo master: {exc}", file=sys.stderr)
        status = 1
    sys.exit(status)
