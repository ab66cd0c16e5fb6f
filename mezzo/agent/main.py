"""The agent's composition root: flags -> containerizer -> Agent -> HTTP server -> recovery ->
master link. `run_agent` is what `mezzo agent` runs; `start_agent` returns a running
`AgentRuntime` (used by tests that want an agent inside their own event loop).

Start-up order matters: the HTTP server is bound first (recovered executors re-subscribe to it
and the bound port goes into AgentInfo), then recovery runs, and only then does the agent
subscribe to the master, so re-registration reports what recovery found.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from mezzo.agent.agent import Agent
from mezzo.agent.containerizer import Containerizer, IsolationOptions
from mezzo.agent.containerizer.isolators.network_ports import parse_ranges
from mezzo.agent.executor_api import ExecutorAPI
from mezzo.agent.flags import AgentFlags, discover_resources, parse_attributes
from mezzo.agent.http import AGENT_LOG_FILE, ReadEndpoints
from mezzo.agent.master_link import MasterLink
from mezzo.agent.recovery import CleanupDone, recover
from mezzo.api.common import AgentInfo
from mezzo.core.daemon_logging import configure_logging
from mezzo.core.errors import ConfigError
from mezzo.core.gc_tuning import tune_for_daemon, watch_pauses
from mezzo.election import create_detector
from mezzo.net.http import MAX_BODY_BYTES
from mezzo.net.http_metrics import http_metrics_middleware
from mezzo.net.request import new_app
from mezzo.resources import Resources

log = logging.getLogger(__name__)


def advertised_ip(flags: AgentFlags) -> str:
    """An address executors and the master can reach: never 0.0.0.0."""
    if flags.advertise_ip:
        return flags.advertise_ip
    if flags.ip and flags.ip not in ("0.0.0.0", "::"):
        return flags.ip
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))  # no packet is sent; picks the outbound interface
        return str(s.getsockname()[0])
    return "127.0.0.1"


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (`port` 0: any free port), address reusable."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def isolation_options(flags: AgentFlags, resources: Resources) -> IsolationOptions:
    """The isolators' settings from the flags (and, for network/ports with
    --check_agent_port_range_only, the agent's own `ports`)."""
    isolated = None
    if flags.container_ports_isolated_range:
        try:
            isolated = parse_ranges(flags.container_ports_isolated_range)
        except ValueError as e:
            raise ConfigError(f"--container_ports_isolated_range: {e}") from None
    elif flags.check_agent_port_range_only:
        isolated = tuple(resources.ranges("ports"))
    return IsolationOptions(
        isolation=flags.isolation, cgroups_root=flags.cgroups_root,
        container_ports_watch_interval=flags.container_ports_watch_interval,
        container_ports_isolated=isolated,
        enforce_container_ports=flags.enforce_container_ports,
    )


@dataclass
class AgentRuntime:
    agent: Agent
    runner: web.AppRunner
    link: MasterLink | None
    ip: str
    port: int

    @property
    def url(self) -> str:
        return f"{self.agent.security.tls.scheme}://{self.ip}:{self.port}"

    async def stop(self, kill_executors: bool = False) -> None:
        """Stop serving. Executors of non-checkpointing frameworks are killed (they must not
        outlive the agent); others keep running unless `kill_executors`."""
        if self.link is not None:
            await self.link.stop()
        agent = self.agent
        for container_id, _grace, checkpointing in agent.core.live_executor_containers():
            if kill_executors or not checkpointing:
                with contextlib.suppress(Exception):
                    await agent.containerizer.destroy(container_id)
        await self.runner.cleanup()
        await agent.gc.stop()


async def start_agent(
    flags: AgentFlags, on_listening: Callable[[str], None] | None = None
) -> AgentRuntime:
    """Bind, recover, subscribe; `on_listening(url)` is called as soon as the port is bound."""
    flags.validate()
    if not flags.master:
        raise ConfigError("--master is required")
    resources = discover_resources(flags)
    containerizer = Containerizer.create(
        isolation_options(flags, resources), flags.container_logger_instance(),
    )
    ip = advertised_ip(flags)
    # Bound first, so the agent is built knowing its port (nothing is patched in afterwards).
    listener = bind_listener(flags.ip or "0.0.0.0", flags.port)
    port = int(listener.getsockname()[1])
    info = AgentInfo(
        hostname=flags.hostname or socket.gethostname(),
        port=port,
        resources=resources.to_wire(),
        attributes=parse_attributes(flags.attributes),
    )
    agent = Agent(flags, containerizer, info, endpoint=(ip, port))
    reads = ReadEndpoints(agent)
    agent.security.log_posture()
    app = new_app(client_max_size=MAX_BODY_BYTES, middlewares=[
        http_metrics_middleware(reads.http_metrics), *agent.security.middlewares()])
    ExecutorAPI(agent).add_routes(app)
    reads.add_routes(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        tls = agent.security.tls
        await web.SockSite(runner, listener,
                           ssl_context=tls.server_context() if tls.enabled else None).start()
    except BaseException:
        listener.close()
        await runner.cleanup()
        raise
    runtime = AgentRuntime(agent, runner, None, ip, port)
    if on_listening is not None:
        on_listening(runtime.url)
    try:
        await recover(agent)
    except BaseException:
        await runner.cleanup()
        raise
    link = MasterLink(
        create_detector(flags.master),
        subscribe_body=agent.subscribe_body,
        on_event=agent.on_master_event,
        on_disconnected=agent.on_master_disconnected,
        backoff_factor=flags.registration_backoff_factor,
        headers=flags.master_auth_headers(),
        tls=agent.security.tls,
    )
    agent.send_call = link.send
    runtime.link = link
    link.start()
    return runtime


async def _serve(flags: AgentFlags) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        runtime = await start_agent(flags, lambda url: print(f"listening on {url}", flush=True))
    except CleanupDone as e:
        print(f"recovery cleanup done: {e}", flush=True)
        return 0
    waiter = asyncio.ensure_future(runtime.agent.stopped.wait())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    stopper.cancel()
    await runtime.stop()
    return 0


def run_agent(flags: AgentFlags) -> int:
    """`mezzo agent`: log as the flags say, then serve until SIGTERM/SIGINT (ConfigError: a
    start-up problem, one line)."""
    configure_logging(flags.logging_level, flags.log_dir, AGENT_LOG_FILE)
    tune_for_daemon()
    watch_pauses()
    return asyncio.run(_serve(flags))
