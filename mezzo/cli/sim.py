"""`mezzo sim`: the paper's experiments on the simulator (`mezzo.sim`).

    mezzo sim list
    mezzo sim run locality [--scale small|paper] [--seed N] [--out DIR] [--cost measured|fixed]
    mezzo sim run all --scale small

Each run writes DIR/NAME.json, DIR/NAME.md and DIR/NAME.png and prints the Markdown table.
The simulator, its experiments and matplotlib are imported only inside these commands, so
`mezzo --version` and the other sub-commands never load them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pathlib import Path


@click.group("sim")
def sim() -> None:
    """Reproduce the Mesos paper's evaluation on a simulated cluster (docs/evaluation.md)."""


@sim.command("list")
def list_experiments() -> None:
    """Name every experiment."""
    from mezzo.sim.experiments import EXPERIMENTS

    width = max(len(n) for n in EXPERIMENTS)
    for name, what in EXPERIMENTS.items():
        click.echo(f"{name:<{width}}  {what}")


class _Factor(click.ParamType):  # type: ignore[type-arg]
    """A multiplier between 0.01 and 100 (not NaN); with `measure=True` also the word `measure`."""

    name = "factor"

    def __init__(self, measure: bool = False) -> None:
        self.measure = measure

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float | str:
        if isinstance(value, float) or (self.measure and value == "measure"):
            return value  # type: ignore[no-any-return]
        try:
            factor = float(value)
        except ValueError:
            self.fail(f"'{value}' is neither a number nor 'measure'" if self.measure
                      else f"'{value}' is not a number", param, ctx)
        if not 0.01 <= factor <= 100:  # NaN fails every comparison
            self.fail(f"{factor} is not between 0.01 and 100", param, ctx)
        return factor


_SHELL_FACTOR = _Factor(measure=True)
_CORE_FACTOR = _Factor()

# The options `run` and `calibrate` share.
_shell_factor_option = click.option(
    "--shell-factor", type=_SHELL_FACTOR, default=None, metavar="F|measure",
    help="Charge the shell's measured constants and the message latency this factor: this "
         "machine's real shell cost over the reference machine's; `measure` measures it here "
         "first (about 40 s against a real master: mezzo.testing.shell_probe; "
         "docs/evaluation.md, \"On another machine\").")
_no_regimes_option = click.option(
    "--no-regimes", is_flag=True,
    help="Charge every core call as the simulator's process measures it, without the cold/warm "
         "regimes' factors (mezzo.sim.master_node.REGIMES; docs/evaluation.md).")


def _output_directory(out: str) -> Path:
    """`--out`, created now: a directory that cannot be made fails before any simulation."""
    from pathlib import Path  # here: `mezzo sim --help` need not import pathlib (and urllib)

    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot create the output directory {out}: {exc.strerror or exc}") from None
    return path


def _apply_shell_factor(shell_factor: float | str | None) -> None:
    """Set `SHELL_FACTOR` (measuring it first for `measure`) and say so."""
    from mezzo.sim import master_node

    if shell_factor is None:
        return
    if shell_factor == "measure":
        from mezzo.testing.shell_probe import (
            REFERENCE_PONG_US,
            REFERENCE_SCHEDULER_CALL_US,
            measure_shell_factor,
        )

        click.echo("measuring the shell on this machine (about 40 s; keep the machine otherwise idle)...")
        try:
            measured = measure_shell_factor()
        except (RuntimeError, OSError) as exc:
            raise click.ClickException(f"the shell probe failed: {exc}") from None
        click.echo(f"shell probe: {measured.pong_us:.1f} µs a PONG (reference {REFERENCE_PONG_US}: "
                   f"x{measured.pong_ratio:.2f}), {measured.scheduler_call_us:.1f} µs of shell a "
                   f"scheduler call (reference {REFERENCE_SCHEDULER_CALL_US:.0f}: "
                   f"x{measured.scheduler_call_ratio:.2f})")
        shell_factor = measured.factor
    master_node.SHELL_FACTOR = float(shell_factor)
    click.echo(f"the shell's constants and the latency charged x{shell_factor}")


class _RichProgress:
    """The experiments' `Progress` as a rich progress bar (virtual seconds simulated)."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress
        self._task: Any = None

    def start(self, label: str, total: float) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=self._progress.tasks[-1].total)
        self._task = self._progress.add_task(label, total=total)

    def update(self, completed: float) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=completed)


@sim.command("run")
@click.argument("name")
@click.option("--scale", type=click.Choice(["small", "paper"]), default="small", show_default=True,
              help="small: seconds, for tests; paper: the paper's sizes.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--out", "out", type=click.Path(file_okay=False), default="sim-results",
              show_default=True, help="Directory for NAME.json, NAME.md and NAME.png.")
@click.option("--cost", type=click.Choice(["measured", "fixed"]), default=None,
              help="Master service time: the CPU time its code took (measured) or a "
                   "calibrated table (fixed: same seed, same output). Default: per experiment.")
@click.option("--core-factor", type=_CORE_FACTOR, default=None,
              help="Charge the master core's CPU times this factor (default: "
                   "mezzo.sim.master_node.CORE_SLOWDOWN; docs/evaluation.md).")
@_no_regimes_option
@_shell_factor_option
@click.option("--no-plot", is_flag=True, help="Skip the PNG.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, no table.")
def run(name: str, scale: str, seed: int, out: str, cost: str | None, core_factor: float | None,
        no_regimes: bool, shell_factor: float | str | None, no_plot: bool, quiet: bool) -> None:
    """Run experiment NAME (or `all`): see `mezzo sim list`."""
    from mezzo.core.gc_tuning import tune_for_daemon
    from mezzo.sim import master_node
    from mezzo.sim.experiments import EXPERIMENTS, load
    from mezzo.sim.report import NoProgress, write

    if core_factor is not None:
        master_node.CORE_SLOWDOWN = core_factor
    if no_regimes:
        master_node.REGIMES = False

    names = list(EXPERIMENTS) if name == "all" else [name]
    for n in names:
        if n not in EXPERIMENTS:
            raise click.ClickException(
                f"unknown experiment '{n}' (known: {', '.join(EXPERIMENTS)}, all)")
    out_dir = _output_directory(out)
    _apply_shell_factor(shell_factor)
    # The simulated master runs with the daemons' garbage-collector settings, so that its
    # measured service times are those of a real master.
    tune_for_daemon()
    for n in names:
        module = load(n)
        options: dict[str, Any] = {}
        if cost is not None:
            options["cost"] = cost
        if quiet:
            result = module.run(scale, seed, NoProgress(), **options)
        else:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(TextColumn(f"{n} [progress.description]{{task.description}}"),
                          BarColumn(), TextColumn("{task.percentage:>3.0f}% of virtual time"),
                          TimeElapsedColumn(), transient=True) as bar:
                result = module.run(scale, seed, _RichProgress(bar), **options)
        try:
            paths = write(result, out_dir, None if no_plot else module.plot)
        except OSError as exc:
            raise click.ClickException(f"cannot write {n}'s results in {out}: {exc.strerror or exc}") from None
        if not quiet:
            click.echo(f"# {n} ({scale} scale, seed {seed})\n")
            click.echo(result.table)
            click.echo("wrote " + ", ".join(str(p) for p in paths))


@sim.command("calibrate")
@click.option("--core-factor", type=_CORE_FACTOR, default=None,
              help="Charge the master core's measured CPU times this factor (default: "
                   "mezzo.sim.master_node.CORE_SLOWDOWN; docs/evaluation.md, \"The core's CPU "
                   "in the real process\").")
@_no_regimes_option
@_shell_factor_option
def calibrate(core_factor: float | None, no_regimes: bool, shell_factor: float | str | None) -> None:
    """Print the simulator's figures for the shapes bench/launch.py measures, and the
    measured per-message master costs behind the fixed cost model."""
    from mezzo.core.gc_tuning import tune_for_daemon
    from mezzo.sim import calibration, master_node

    tune_for_daemon()
    if core_factor is not None:
        master_node.CORE_SLOWDOWN = core_factor
        click.echo(f"the core's measured CPU charged x{core_factor}")
    if no_regimes:
        master_node.REGIMES = False
        click.echo("without the cold/warm regimes")
    _apply_shell_factor(shell_factor)
    latency = calibration.launch_latency()
    click.echo(f"launch latency (bench/launch.py latency): p50 {latency['p50_ms']} ms, "
               f"p99 {latency['p99_ms']} ms over {latency['launches']} launches")
    for per_accept in (10, 1):
        rate = calibration.launch_rate(per_accept=per_accept)
        click.echo(f"launch rate (bench/launch.py rate, 100 agents, {per_accept} tasks per "
                   f"ACCEPT): {rate['tasks_per_s']:,.0f} tasks/s, master CPU "
                   f"{rate['master_cpu_ms_per_task']} ms per task")
    shape = calibration.scale_shape()
    click.echo(f"bench/scale.py shape, 1,000 agents x 8 cpus, 200 frameworks: SUBSCRIBE -> "
               f"TASK_RUNNING p50 {shape['launch_overhead_p50_s'] * 1000:.1f} ms "
               f"(max {shape['launch_overhead_p99_s'] * 1000:.1f} ms), master CPU "
               f"{shape['master_cpu_pct']}% at {shape['launches_per_s']} launches/s = "
               f"{shape['master_cpu_ms_per_launch']} ms per launch")
    failover = calibration.failover_shape()
    click.echo(f"bench/scale.py --failover shape, 1,000 agents, 2 s session (+{calibration.ELECTION_DELAY} s "
               f"election, {calibration.DETECT_DELAY} s detection): agents back "
               f"{failover['agents_back_s']} s, frameworks back {failover['frameworks_back_s']} s, "
               f"all back {failover['all_back_s']} s")
    click.echo("master core service time per job kind (median µs, samples):")
    for kind, (median, count) in calibration.fixed_costs().items():
        click.echo(f"  {kind:<24} {median:>8.1f}  {count:>7,}")
    costs = calibration.launch_costs()
    click.echo(f"master CPU per launch by job kind, scalability shape, {costs['agents']:,} agents "
               f"({costs['launches_per_s']} launches/s): jobs, core µs, shell µs, total µs")
    for kind, c in costs["kinds"].items():
        click.echo(f"  {kind:<24} {c['per_launch']:>6.2f} {c['core_us']:>8.1f} {c['shell_us']:>8.1f} "
                   f"{c['total_us']:>8.1f}")
    click.echo(f"  {'sum':<24} {'':>6} {sum(c['core_us'] for c in costs['kinds'].values()):>8.1f} "
               f"{sum(c['shell_us'] for c in costs['kinds'].values()):>8.1f} "
               f"{sum(c['total_us'] for c in costs['kinds'].values()):>8.1f}")
