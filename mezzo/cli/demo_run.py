"""What `mezzo demo` runs (`make run`): the paper's four workloads sharing a local cluster.

Brings up a master and 3 agents (`LocalCluster`), runs the four example frameworks at once in
this process (batch with delay scheduling, iterative in-memory, MPI-style gang, long-running
service with chaos kills), and shows live progress: each framework's dominant share of the
cluster (allocated = used + offered, from the master's `/master/state`, as the DRF allocator
sees it), its running/finished/failed tasks and what it is doing. It ends by itself when the
batch, iterative and gang frameworks are done (then the service is stopped), or at
`--time-limit`, prints what each achieved and stops everything it started. Ctrl-C or SIGTERM
stops everything at any time.

The click command is `mezzo.cli.demo`, which imports this module (rich, the frameworks, the
SDK) only when the demo runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import deque
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mezzo.frameworks.batch import BatchFramework
from mezzo.frameworks.common import CommonOptions, ExampleFramework, fetch_master_state
from mezzo.frameworks.gang import GangFramework
from mezzo.frameworks.iterative import IterativeFramework
from mezzo.frameworks.service import ServiceFramework
from mezzo.testing.local_cluster import ClusterError, ClusterSpec, LocalCluster

SHARE_RESOURCES = ("cpus", "mem")


DEMO_AGENT_RESOURCES = "cpus:2;mem:2048;disk:4096"


def build_frameworks(master: str, scale: float = 1.0) -> list[ExampleFramework]:
    """The four workloads, sized so that together they contend for a 3 x (2 cpus, 2 GB)
    cluster for about a minute (the gang needs 4 slots of 0.5 cpus at once, the batch jobs
    want all of them, the iterative job keeps 1.5 and the service 0.75)."""

    def opts(name: str, cpus: float, mem: float) -> CommonOptions:
        return CommonOptions(master=master, name=name, cpus=cpus, mem=mem, quiet=True)

    return [
        BatchFramework(
            opts("batch", 0.5, 128),
            jobs=4,
            maps=max(1, round(12 * scale)),
            map_seconds=2.0,
            locality_wait=3.0,
            submit_interval=8.0,
        ),
        IterativeFramework(
            opts("iterative", 0.5, 256),
            partitions=3,
            points=max(1000, round(30_000 * scale)),
            iterations=max(2, round(20 * scale)),
        ),
        GangFramework(
            opts("gang", 0.5, 256),
            size=4,
            runs=max(1, round(3 * scale)),
            rank_seconds=6.0,
            hold_timeout=10.0,
            retry_delay=3.0,
        ),
        ServiceFramework(
            opts("service", 0.25, 64),
            instances=3,
            duration=None,
            kill_every=12.0,
        ),
    ]


class ClusterView:
    """Dominant shares from the master's state, refreshed by `poll`."""

    def __init__(self, master_url: str) -> None:
        self.master_url = master_url
        self.totals: dict[str, float] = {}
        self.shares: dict[str, float] = {}  # framework id -> dominant share
        self.agents = 0
        self.error: str | None = None

    async def poll(self) -> None:
        try:
            state = await fetch_master_state(self.master_url, timeout=2.0)
        except Exception as exc:
            self.error = str(exc)
            return
        self.error = None
        totals: dict[str, float] = {}
        agents = [a for a in state.get("slaves", []) if a.get("active", True)]
        for agent in agents:
            for name in SHARE_RESOURCES:
                totals[name] = totals.get(name, 0.0) + float(agent["resources"].get(name, 0.0))
        self.totals, self.agents = totals, len(agents)
        shares: dict[str, float] = {}
        for fw in state.get("frameworks", []):
            share = 0.0
            for name in SHARE_RESOURCES:
                allocated = float(fw.get("used_resources", {}).get(name, 0.0)) + float(
                    fw.get("offered_resources", {}).get(name, 0.0)
                )
                if totals.get(name):
                    share = max(share, allocated / totals[name])
            shares[fw["id"]] = share
        self.shares = shares


def render(
    frameworks: list[ExampleFramework], view: ClusterView, lines: deque[str], started: float
) -> Group:
    table = Table(title=None, expand=True)
    table.add_column("framework")
    table.add_column("dominant share", justify="right")
    table.add_column("running", justify="right")
    table.add_column("finished", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("progress")
    for fw in frameworks:
        p = fw.progress()
        share = view.shares.get(p.framework_id or "", 0.0)
        bar = "█" * round(share * 20)
        table.add_row(
            ("✔ " if p.done else "") + p.name,
            f"{share:5.1%} {bar}",
            str(p.running),
            str(p.finished),
            str(p.failed),
            p.headline,
        )
    totals = ", ".join(f"{v:g} {k}" for k, v in view.totals.items())
    header = Text(
        f"master {view.master_url}  |  {view.agents} agents ({totals})  |  "
        f"{time.monotonic() - started:5.1f}s  |  Ctrl-C stops everything",
        style="bold",
    )
    log = Text("\n".join(lines), style="dim")
    return Group(header, table, Panel(log, title="events", height=12))


async def run_demo(
    cluster: LocalCluster,
    console: Console,
    time_limit: float,
    scale: float,
    frameworks: list[ExampleFramework],
) -> None:
    """Run the frameworks (appended to `frameworks`, so a caller interrupted half-way still
    has them for the summary) until they are done."""
    frameworks.extend(build_frameworks(cluster.master_address, scale))
    lines: deque[str] = deque(maxlen=10)
    for fw in frameworks:
        fw.on_log = lines.append
        fw.options.timeout = time_limit
    view = ClusterView(cluster.master_url)
    started = time.monotonic()
    service = next(f for f in frameworks if isinstance(f, ServiceFramework))
    runs = [asyncio.create_task(fw.run(), name=f"demo-{fw.options.name}") for fw in frameworks]
    try:
        with Live(
            render(frameworks, view, lines, started),
            console=console,
            refresh_per_second=4,
            transient=False,
        ) as live:
            while not all(r.done() for r in runs):
                await view.poll()
                live.update(render(frameworks, view, lines, started))
                if all(
                    f.finished.is_set() or r.done()
                    for f, r in zip(frameworks, runs, strict=True)
                    if f is not service
                ):
                    service.finished.set()  # the others are done: so is the demo
                await asyncio.sleep(0.5)
            live.update(render(frameworks, view, lines, started))
    finally:
        for r in runs:
            r.cancel()
        for r in runs:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await r


def summary(frameworks: list[ExampleFramework], console: Console, elapsed: float) -> None:
    console.rule(f"summary after {elapsed:.0f}s")
    for fw in frameworks:
        mark = "✔" if fw.finished.is_set() and not fw.aborted else "✘"
        console.print(f"[bold]{mark} {fw.options.name}[/bold]")
        for line in fw.report():
            console.print(f"    {line}")


def run(agents: int, time_limit: float, scale: float, work_dir: str | None) -> None:
    """`mezzo demo`: bring the cluster up, run the demo, print the summary, stop everything."""
    console = Console()
    cluster = LocalCluster(
        ClusterSpec(agents=agents, work_dir=work_dir, agent_resources=DEMO_AGENT_RESOURCES)
    )
    console.print(f"starting a master and {agents} agents ...")
    started = time.monotonic()
    frameworks: list[ExampleFramework] = []
    try:
        try:
            cluster.start()
        except ClusterError as e:
            raise click.ClickException(str(e)) from None
        console.print(
            f"master at [bold]{cluster.master_url}[/bold] "
            f"(agents: {', '.join(a.url for a in cluster.agents)})"
        )

        async def main() -> None:
            task = asyncio.current_task()
            assert task is not None
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
            await run_demo(cluster, console, time_limit, scale, frameworks)

        try:
            asyncio.run(main())
        except (KeyboardInterrupt, asyncio.CancelledError):
            console.print("interrupted: stopping everything")
    finally:
        console.print("stopping the cluster ...")
        with _ignoring_signals():
            cluster.stop()
    if frameworks:
        summary(frameworks, console, time.monotonic() - started)
    console.print("everything stopped.")


@contextlib.contextmanager
def _ignoring_signals() -> Any:
    """A second Ctrl-C during the stop would leave processes behind: finish the stop first."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
