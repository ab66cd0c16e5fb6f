"""TLS (issue 15 §3) with a test CA made in a fixture (`cryptography`): Mesos's
`LIBPROCESS_SSL_*` variables and the daemons' `--ssl_*` flags; a real `mezzo master` and
`mezzo agent` serving HTTPS, the agent registering over HTTPS, a command task whose executor
speaks HTTPS to its agent, the CLI and the scheduler SDK speaking HTTPS to the master, client
certificates required when asked, and the scheme advertised for ZooKeeper clients."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from mezzo.core.errors import ConfigError
from mezzo.election.base import LeaderInfo
from mezzo.election.standalone import leader_from_address
from mezzo.net.address import base_from_location, parse_master_address
from mezzo.security.tls import TlsConfig
from mezzo.testing import processes
from mezzo.testing.agent_harness import ProcessCluster, kill_leftovers, start
from tests.tls_ca import CertAuthority, make_test_ca

SSL_ENV = ("LIBPROCESS_SSL_ENABLED", "LIBPROCESS_SSL_CERT_FILE", "LIBPROCESS_SSL_KEY_FILE",
           "LIBPROCESS_SSL_CA_FILE", "LIBPROCESS_SSL_CA_DIR", "LIBPROCESS_SSL_VERIFY_CERT",
           "LIBPROCESS_SSL_REQUIRE_CERT")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    return make_test_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(autouse=True)
def no_inherited_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SSL_ENV:
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- configuration


def test_config_from_environment_and_flags(ca: CertAuthority) -> None:
    config = TlsConfig.load(environ=ca.env(LIBPROCESS_SSL_REQUIRE_CERT="1"), server=True)
    assert config.enabled and config.require_cert and config.scheme == "https"
    assert config.server_context().verify_mode == ssl.CERT_REQUIRED
    # A flag wins over the environment.
    config = TlsConfig.load({"ssl_require_cert": "false", "ssl_verify_cert": "true"},
                            environ=ca.env(LIBPROCESS_SSL_REQUIRE_CERT="1"), server=True)
    assert not config.require_cert and config.server_context().verify_mode == ssl.CERT_OPTIONAL
    assert TlsConfig.load(environ={}).scheme == "http"
    assert config.child_environment()["LIBPROCESS_SSL_CA_FILE"] == ca.ca_file


@pytest.mark.parametrize(("env", "message"), [
    ({"LIBPROCESS_SSL_ENABLED": "true"}, "LIBPROCESS_SSL_CERT_FILE"),
    ({"LIBPROCESS_SSL_ENABLED": "maybe"}, "expected true or false"),
    ({"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CERT_FILE": "/nonexistent",
      "LIBPROCESS_SSL_KEY_FILE": "/nonexistent"}, "cannot read /nonexistent"),
])
def test_bad_configuration_is_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TlsConfig.load(environ=env, server=True)


def test_a_key_that_does_not_match_is_refused(ca: CertAuthority) -> None:
    with pytest.raises(ConfigError, match="cannot load"):
        TlsConfig.load(environ=ca.env(LIBPROCESS_SSL_KEY_FILE=ca.client_key_file), server=True)


def test_clients_find_the_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    info = {"address": {"ip": "10.0.0.1", "port": 5050}, "hostname": "m", "port": 5050}
    assert LeaderInfo("n", 1, info, b"").url == "http://10.0.0.1:5050"
    assert LeaderInfo("n", 1, {**info, "scheme": "https"}, b"").url == "https://10.0.0.1:5050"
    assert leader_from_address("https://m1:5050").url == "https://m1:5050"
    assert leader_from_address("m1:5050").scheme == "http"
    assert parse_master_address("m1") == "http://m1:5050"
    assert base_from_location("//m2:5050/master/api", "https://m1:5050") == "https://m2:5050"
    monkeypatch.setenv("LIBPROCESS_SSL_ENABLED", "true")
    assert parse_master_address("m1") == "https://m1:5050"


# ---------------------------------------------------------------- a TLS cluster


@pytest.fixture
def tls_cluster(tmp_path: Path, ca: CertAuthority) -> Iterator[ProcessCluster]:
    cluster = ProcessCluster.__new__(ProcessCluster)
    cluster.tmp, cluster.cgroups_root = tmp_path, None
    # The agent's hostname is what offers (and so clients) name it by: the certificate's.
    cluster.agent_args = ["--resources", "cpus:2;mem:2048", "--hostname", "localhost", *ca.flags()]
    cluster.master = start(
        ["master", "--ip", "127.0.0.1", "--port", "0", "--registry", "in_memory",
         "--work_dir", str(tmp_path / "master"), "--allocation_interval", "100ms", *ca.flags()],
        tmp_path / "master.log")
    cluster.agents = []
    try:
        yield cluster
    finally:
        for agent in cluster.agents:
            agent.kill()
        kill_leftovers(tmp_path / "agent")
        cluster.master.kill()


def mezzo(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SSL_ENV}
    return subprocess.run([processes.MEZZO, *argv], env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
async def test_cluster_over_tls_end_to_end(tls_cluster: ProcessCluster, ca: CertAuthority) -> None:
    master = tls_cluster.master
    assert master.url.startswith("https://127.0.0.1:")
    agent = tls_cluster.agent()
    assert agent.url.startswith("https://")
    trusted = ssl.create_default_context(cafile=ca.ca_file)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusted)) as http:
        # Plain HTTP is not spoken any more.
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(aiohttp.ClientError):
                async with plain.get(master.url.replace("https://", "http://") + "/health") as r:
                    await r.read()
            # A client that does not trust the CA refuses the server.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with plain.get(master.url + "/health") as r:
                    await r.read()
        # The agent registered over HTTPS.
        for _ in range(300):
            async with http.get(master.url + "/master/state") as r:
                state = await r.json()
            if state["slaves"]:
                break
            await asyncio.sleep(0.1)
        assert len(state["slaves"]) == 1
        async with http.get(agent.url + "/state") as r:
            assert r.status == 200
    # The CLI (and through it a scheduler, and the command executor talking to its agent).
    ran = mezzo("run", "--master", master.address, "--", "echo", "over-tls",
                env={"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CA_FILE": ca.ca_file})
    assert ran.returncode == 0, ran.stderr + agent.log()[-3000:]
    assert "over-tls" in ran.stdout
    # The same with an explicit https:// master and only the CA.
    listed = mezzo("agents", "--master", master.url, env={"LIBPROCESS_SSL_CA_FILE": ca.ca_file})
    assert listed.returncode == 0, listed.stderr
    # Without the CA the CLI refuses the master's certificate, in one line.
    refused = mezzo("agents", "--master", master.url, env={})
    assert refused.returncode != 0 and "certificate" in refused.stderr.lower(), refused.stderr


@pytest.mark.slow
async def test_scheduler_sdk_over_tls(tls_cluster: ProcessCluster, ca: CertAuthority,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from mezzo.api.common import FrameworkInfo
    from mezzo.scheduler.client import SchedulerClient

    monkeypatch.setenv("LIBPROCESS_SSL_ENABLED", "true")
    monkeypatch.setenv("LIBPROCESS_SSL_CA_FILE", ca.ca_file)
    client = SchedulerClient(tls_cluster.master.address, FrameworkInfo(user="u", name="tls-sdk"))
    await client.start()
    try:
        framework_id = await client.wait_subscribed(timeout=30)
        assert framework_id.value
    finally:
        await client.stop()


@pytest.mark.slow
async def test_required_client_certificates(tmp_path: Path, ca: CertAuthority) -> None:
    master = start(
        ["master", "--ip", "127.0.0.1", "--port", "0", "--registry", "in_memory",
         "--work_dir", str(tmp_path / "master"), *ca.flags("--ssl_require_cert", "true")],
        tmp_path / "master.log")
    try:
        without = ssl.create_default_context(cafile=ca.ca_file)
        with_cert = ssl.create_default_context(cafile=ca.ca_file)
        with_cert.load_cert_chain(ca.client_cert_file, ca.client_key_file)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=without)) as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.get(master.url + "/health") as r:
                    await r.read()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=with_cert)) as http, \
                http.get(master.url + "/health") as r:
            assert r.status == 200
        # The CLI shows its certificate when it has one.
        listed = mezzo("agents", "--master", master.url, env={
            "LIBPROCESS_SSL_CA_FILE": ca.ca_file, "LIBPROCESS_SSL_CERT_FILE": ca.client_cert_file,
            "LIBPROCESS_SSL_KEY_FILE": ca.client_key_file})
        assert listed.returncode == 0, listed.stderr
    finally:
        master.kill()


@pytest.mark.slow
@pytest.mark.zookeeper
def test_zookeeper_advertises_the_scheme(zk_chroot, tmp_path: Path, ca: CertAuthority) -> None:  # type: ignore[no-untyped-def]
    """A TLS master says so beside its MasterInfo in ZooKeeper; a client given only the zk://
    URL (and the CA) reaches it over HTTPS."""
    master = start(
        ["master", "--ip", "127.0.0.1", "--port", "0", "--registry", "in_memory",
         "--work_dir", str(tmp_path / "master"), "--zk", zk_chroot.url, "--quorum", "1",
         *ca.flags()], tmp_path / "master.log")
    try:
        client = zk_chroot.client()
        try:
            def nodes() -> list[str]:
                if not client.exists(zk_chroot.path):
                    return []
                return sorted(c for c in client.get_children(zk_chroot.path) if c.startswith("json.info_"))

            for _ in range(300):
                if nodes():
                    break
                time.sleep(0.1)
            advertised = json.loads(client.get(f"{zk_chroot.path}/{nodes()[0]}")[0])
        finally:
            client.stop()
            client.close()
        assert advertised["scheme"] == "https" and advertised["address"]["port"]
        listed = mezzo("agents", "--master", zk_chroot.url, env={"LIBPROCESS_SSL_CA_FILE": ca.ca_file})
        assert listed.returncode == 0, listed.stderr
    finally:
        master.kill()


@pytest.mark.slow
def test_mezzo_local_with_tls(tmp_path: Path, ca: CertAuthority, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/security.md's TLS set-up: `mezzo local`'s master and agents inherit
    LIBPROCESS_SSL_*, serve HTTPS and register over it."""
    from mezzo.testing.local_cluster import ClusterSpec, LocalCluster

    for name, value in ca.env().items():
        monkeypatch.setenv(name, value)
    cluster = LocalCluster(ClusterSpec(agents=1, work_dir=str(tmp_path / "cluster")))
    try:
        cluster.start()
        assert cluster.master_url.startswith("https://")
        assert len(cluster.wait_for_agents(1, 30)["slaves"]) == 1
    finally:
        cluster.stop()
