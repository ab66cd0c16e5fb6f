"""`mezzo local`: a master and N agents on this machine until Ctrl-C / SIGTERM.

Embedded defaults (no ZooKeeper, a SQLite registry under the work_dir); every agent has its own
work_dir, port, `ports` range and `host:agent-N` attribute. Stopping kills every process the
cluster started (see `mezzo.testing.local_cluster`).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

# `mezzo.testing.local_cluster.DEFAULT_AGENT_RESOURCES` (tests/test_cli_startup.py keeps them
# equal): the cluster module (psutil, urllib.request) is imported only when the command runs.
DEFAULT_AGENT_RESOURCES = "cpus:4;mem:4096;disk:8192"


def _security_args(
    credentials: str | None, credential: str | None, acls: str | None,
    executor_key: str | None = None,
) -> tuple[list[str], list[str], dict[str, str]]:
    """The master's and agents' security flags, and the header `mezzo local` itself sends.
    Secured, the agents authenticate their own endpoints against the same credentials and,
    with `executor_key` (a key file), their executors with tokens."""
    from mezzo.core.errors import ConfigError
    from mezzo.security.authentication import basic_header
    from mezzo.security.credentials import load_credential

    master_args = ["--acls", acls] if acls else []
    agent_args = ["--acls", acls] if acls else []
    if credentials is None and credential is None:
        return master_args, agent_args, {}
    if credentials is None or credential is None:
        raise click.UsageError("--credentials and --credential go together")
    try:
        own = load_credential(credential)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    master_args += ["--credentials", credentials, "--authenticate_http_frameworks", "true",
                    "--authenticate_agents", "true", "--authenticate_http_readonly", "true",
                    "--authenticate_http_readwrite", "true"]
    agent_args += ["--credential", credential, "--http_credentials", credentials,
                   "--authenticate_http_readonly", "true", "--authenticate_http_readwrite", "true"]
    if executor_key is not None:
        agent_args += ["--jwt_secret_key", executor_key, "--authenticate_http_executors", "true"]
    return master_args, agent_args, {"Authorization": basic_header(own.principal, own.secret)}


def _new_executor_key() -> str:
    """A fresh executor token key in a private temporary file (removed by the caller)."""
    import os
    import secrets
    import tempfile

    fd, path = tempfile.mkstemp(prefix="mezzo-local-executor-key-")
    with os.fdopen(fd, "w") as f:  # mkstemp: mode 0600
        f.write(secrets.token_hex(32))
    return path


@click.command("local")
@click.option("--agents", default=3, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--work_dir",
    "--work-dir",
    "work_dir",
    default=None,
    help="Directory for the master's and agents' state (default: a temporary one, removed on exit).",
)
@click.option(
    "--port",
    default=5050,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="The master's port (0: any free port).",
)
@click.option("--ip", default="127.0.0.1", show_default=True)
@click.option(
    "--agent-resources",
    "--agent_resources",
    "agent_resources",
    default=DEFAULT_AGENT_RESOURCES,
    show_default=True,
    help="Each agent's --resources (a distinct ports range is added unless given).",
)
@click.option("--verbose", is_flag=True, help="Show the master's and agents' logs here.")
@click.option("--credentials", default=None,
              help="Secure the cluster: the master's --credentials file (and the agents' "
                   "--http_credentials), with every --authenticate_* flag on and executor "
                   "tokens (docs/security.md); needs --credential.")
@click.option("--credential", default=None,
              help="The agents' --credential file (one principal in --credentials).")
@click.option("--acls", default=None,
              help="The master's and agents' --acls (Mesos JSON ACLs, a file or inline).")
def local(
    agents: int, work_dir: str | None, port: int, ip: str, agent_resources: str, verbose: bool,
    credentials: str | None = None, credential: str | None = None, acls: str | None = None,
) -> None:
    """Run a master and N agents on this machine until Ctrl-C."""
    key = _new_executor_key() if credentials is not None and credential is not None else None
    try:
        master_args, agent_args, headers = _security_args(credentials, credential, acls, key)
        _run_local(master_args, agent_args, headers, agents, work_dir, port, ip, agent_resources,
                   verbose)
    finally:
        if key is not None:
            import os

            os.unlink(key)


def _run_local(master_args: list[str], agent_args: list[str], headers: dict[str, str],
               agents: int, work_dir: str | None, port: int, ip: str, agent_resources: str,
               verbose: bool) -> None:
    from mezzo.testing.local_cluster import ClusterError, ClusterSpec, LocalCluster

    spec = ClusterSpec(
        master_args=master_args,
        agent_args=agent_args,
        master_headers=headers,
        agents=agents,
        work_dir=work_dir,
        master_port=port,
        ip=ip,
        agent_resources=agent_resources,
        quiet=not verbose,
    )
    cluster = LocalCluster(spec)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            cluster.start()
        except ClusterError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"master  {cluster.master_url}   (--master {cluster.master_address})")
        click.echo(f"web UI  {cluster.master_url}/")
        for node in cluster.agents:
            click.echo(f"{node.name:<7} {node.url}")
        click.echo(f"work_dir {cluster.work_dir}")
        click.echo("Ctrl-C stops the cluster.", err=True)
        while not stop.is_set():
            for node in [cluster.master, *cluster.agents]:
                if node is not None and node.proc.poll() is not None:
                    click.echo(
                        f"{node.name} exited with {node.proc.returncode}; stopping", err=True
                    )
                    stop.set()
            stop.wait(1.0)
    finally:
        # Ignore further Ctrl-C while cleaning up: a half-done stop is how orphans are made.
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        cluster.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        click.echo("stopped", err=True)
