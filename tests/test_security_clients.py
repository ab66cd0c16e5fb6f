"""Clients of a secured cluster (issue 15): the `mezzo` CLI takes a principal and secret
(`mezzo --principal P --secret S`, `MEZZO_PRINCIPAL`/`MEZZO_SECRET`, Mesos's
`DEFAULT_PRINCIPAL`/`DEFAULT_SECRET`) and the scheduler SDK reads the same environment; without
them a secured master answers 401 and the CLI says how to give them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from mezzo.cli.http1 import auth_headers
from mezzo.security.authentication import basic_header
from mezzo.testing import processes
from tests.test_security_authentication import (
    AGENT,
    ALL_REALMS,
    CREDENTIALS,
    Secured,
    start_master,
)

ALICE = {"Authorization": basic_header("alice", "wonderland")}


def test_cli_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MEZZO_PRINCIPAL", "MEZZO_SECRET", "DEFAULT_PRINCIPAL", "DEFAULT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert auth_headers() == {}
    monkeypatch.setenv("DEFAULT_PRINCIPAL", "alice")
    monkeypatch.setenv("DEFAULT_SECRET", "wonderland")
    assert auth_headers() == ALICE
    monkeypatch.setenv("MEZZO_PRINCIPAL", "bob")
    monkeypatch.setenv("MEZZO_SECRET", "builder")
    assert auth_headers() == {"Authorization": basic_header("bob", "builder")}


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    process, runner, url = await start_master(tmp_path, ALL_REALMS)
    async with aiohttp.ClientSession() as session:
        yield Secured(process, url, session)
    await runner.cleanup()


async def test_sdk_takes_credentials_from_the_environment(
        secured: Secured, monkeypatch: pytest.MonkeyPatch) -> None:
    from mezzo.api.common import FrameworkInfo
    from mezzo.scheduler.client import SchedulerClient

    monkeypatch.setenv("MEZZO_PRINCIPAL", "alice")
    monkeypatch.setenv("MEZZO_SECRET", "wonderland")
    client = SchedulerClient(secured.url, FrameworkInfo(user="u", name="sdk-env"))
    await client.start()
    try:
        framework_id = await client.wait_subscribed(timeout=10)
        assert secured.master.frameworks[framework_id.value].info.principal == "alice"
    finally:
        await client.stop()


@pytest.fixture
def secured_cluster(tmp_path: Path) -> Iterator[str]:
    from mezzo.cli.local import _security_args
    from mezzo.testing.local_cluster import ClusterSpec, LocalCluster

    (tmp_path / "credentials").write_text(json.dumps(CREDENTIALS))
    (tmp_path / "agent").write_text("agent s3cret\n")
    master_args, agent_args, headers = _security_args(
        str(tmp_path / "credentials"), str(tmp_path / "agent"), None)
    assert headers == AGENT
    cluster = LocalCluster(ClusterSpec(agents=1, work_dir=str(tmp_path / "cluster"),
                                       master_args=master_args, agent_args=agent_args,
                                       master_headers=headers))
    try:
        cluster.start()
        yield cluster.master_address
    finally:
        cluster.stop()


def mezzo(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("MEZZO_PRINCIPAL", "MEZZO_SECRET", "DEFAULT_PRINCIPAL", "DEFAULT_SECRET")}
    return subprocess.run([processes.MEZZO, *argv], env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_cli_against_a_secured_cluster(secured_cluster: str) -> None:
    master = secured_cluster
    refused = mezzo("agents", "--master", master)
    assert refused.returncode != 0
    assert "HTTP 401" in refused.stderr and "--principal" in refused.stderr
    listed = mezzo("agents", "--master", master,
                   env={"MEZZO_PRINCIPAL": "alice", "MEZZO_SECRET": "wonderland"})
    assert listed.returncode == 0, listed.stderr
    ran = mezzo("--principal", "alice", "--secret", "wonderland", "run", "--master", master,
                "--", "echo", "hello-secured")
    assert ran.returncode == 0, ran.stderr
    assert "hello-secured" in ran.stdout
    fast = mezzo("run", "--master", master, "--", "true",
                 env={"MEZZO_PRINCIPAL": "bob", "MEZZO_SECRET": "builder"})
    assert fast.returncode == 0, fast.stderr
    wrong = mezzo("run", "--master", master, "--", "true",
                  env={"MEZZO_PRINCIPAL": "bob", "MEZZO_SECRET": "wrong"})
    assert wrong.returncode != 0


@pytest.mark.slow
def test_secured_mezzo_local_end_to_end(tmp_path: Path) -> None:
    """docs/security.md's `mezzo local --credentials --credential --acls`, with the files as the
    page shows them: a task runs (its
    executor authenticating with its token) and `mezzo run` prints its output (read from the
    agent, whose endpoints want credentials too); without credentials the CLI gets 401."""
    import signal
    import threading

    # The files exactly as docs/security.md shows them.
    doc = (Path(__file__).resolve().parent.parent / "docs" / "security.md").read_text()
    credentials = doc.split("cat > credentials <<'CREDS'\n", 1)[1].split("CREDS\n", 1)[0]
    (tmp_path / "credentials").write_text(credentials)
    (tmp_path / "agent-credential").write_text(
        doc.split("echo '", 1)[1].split("' > agent-credential", 1)[0] + "\n")
    acls = next(block.split("```", 1)[0] for block in doc.split("```json\n")[1:]
                if '"permissive": false' in block)
    json.loads(acls)
    (tmp_path / "acls.json").write_text(acls)
    local = subprocess.Popen(
        [processes.MEZZO, "local", "--agents", "1", "--port", "0", "--work_dir", str(tmp_path / "c"),
         "--credentials", str(tmp_path / "credentials"),
         "--credential", str(tmp_path / "agent-credential"), "--acls", str(tmp_path / "acls.json")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert local.stdout is not None
        for line in local.stdout:
            lines.append(line)
            if line.startswith("master "):
                found.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert found.wait(60), "".join(lines)
        master = next(ln for ln in lines if ln.startswith("master ")).split("--master ")[1].rstrip(")\n")
        refused = mezzo("run", "--master", master, "--", "true")
        assert refused.returncode != 0 and "401" in refused.stderr
        ran = mezzo("run", "--master", master, "--", "echo", "secured-output",
                    env={"MEZZO_PRINCIPAL": "ops", "MEZZO_SECRET": "0ps-s3cret"})
        assert ran.returncode == 0, ran.stderr + "".join(lines)
        assert "secured-output" in ran.stdout, ran.stderr
    finally:
        os.killpg(local.pid, signal.SIGTERM)
        local.wait(60)
