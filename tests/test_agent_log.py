"""The agent's own log, as Mesos's agent has it: `--logging_level` and `--log_dir`
(`MESOS_LOGGING_LEVEL`, `MESOS_LOG_DIR`), the log written to `<log_dir>/mezzo-agent.INFO` and
served at the virtual path `/slave/log` by `/files/*`, LIST_FILES and READ_FILE (404 without
`--log_dir`, `access_mesos_logs` with ACLs). Also the shared `mezzo.core.daemon_logging`."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mezzo.agent.flags import AgentFlags
from mezzo.agent.http import AGENT_LOG_FILE
from mezzo.agent.main import AgentRuntime, start_agent
from mezzo.core.daemon_logging import configure_logging
from mezzo.core.errors import ConfigError
from mezzo.testing import agent_harness
from mezzo.testing.processes import eventually, free_port

JSON = {"Accept": "application/json"}


async def get(url: str, endpoint: str, **params: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url + endpoint, params=params) as r:
        return r.status, await r.text()


async def operator(url: str, body: dict) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.post(url + "/api/v1", json=body, headers=JSON) as r:
        return r.status, await r.text()


async def test_an_agent_with_log_dir_writes_its_log_and_serves_it(tmp_path: Path, monkeypatch) -> None:
    log_dir = tmp_path / "logs" / "agent"  # created by the agent
    monkeypatch.setenv("MESOS_LOG_DIR", str(log_dir))  # as deployments set it
    nobody = f"127.0.0.1:{free_port()}"  # no master: the agent serves and keeps retrying
    agent = agent_harness.start_agent(tmp_path, nobody, "--logging_level", "info")
    try:
        log = log_dir / AGENT_LOG_FILE
        await eventually(lambda: log.exists() and b"\n" in log.read_bytes(), 20, "the agent's log")
        first_line = log.read_bytes().split(b"\n", 1)[0].decode()
        # The daemons' format, as on stderr.
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ mezzo\.\S+: ", first_line)

        status, text = await get(agent.url, "/files/read", path="/slave/log", offset="0")
        assert status == 200, text
        assert json.loads(text)["data"].startswith(first_line)
        status, text = await get(agent.url, "/files/read.json", path="/slave/log")
        assert status == 200 and json.loads(text)["offset"] >= len(first_line)
        status, text = await get(agent.url, "/files/browse", path="/slave/log")
        assert status == 200, text
        [entry] = json.loads(text)
        assert entry["path"] == "/slave/log" and entry["size"] >= len(first_line)
        async with aiohttp.ClientSession() as s, s.get(
            agent.url + "/files/download", params={"path": "/slave/log"}
        ) as r:
            assert r.status == 200 and (await r.read()).startswith(first_line.encode())
        status, text = await get(agent.url, "/files/debug")
        assert json.loads(text)["/slave/log"] == str(log)

        status, text = await operator(agent.url, {"type": "LIST_FILES",
                                                  "list_files": {"path": "/slave/log"}})
        assert status == 200, text
        [info] = json.loads(text)["list_files"]["file_infos"]
        assert info["path"] == "/slave/log" and info["size"] >= len(first_line)
        status, text = await operator(agent.url, {"type": "READ_FILE", "read_file": {
            "path": "/slave/log", "offset": 0, "length": len(first_line)}})
        assert status == 200, text
        assert base64.b64decode(json.loads(text)["read_file"]["data"]).decode() == first_line

        status, text = await get(agent.url, "/flags")
        flags = json.loads(text)["flags"]
        assert (flags["logging_level"], flags["log_dir"]) == ("INFO", str(log_dir))
    finally:
        agent.kill()


@pytest.fixture
async def runtime(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[AgentRuntime]:
    """An agent in this process (no master); `request.param`: extra AgentFlags fields, a
    `log_dir` of True meaning `<tmp_path>/logs`."""
    extra = dict(getattr(request, "param", {}))
    if extra.get("log_dir") is True:
        extra["log_dir"] = str(tmp_path / "logs")
    flags = AgentFlags(master=f"127.0.0.1:{free_port()}", work_dir=str(tmp_path / "work"),
                       ip="127.0.0.1", port=0, resources="cpus:1;mem:128;disk:10", **extra)
    rt = await start_agent(flags)
    try:
        yield rt
    finally:
        await rt.stop(kill_executors=True)


async def test_without_log_dir_slave_log_is_not_found(runtime: AgentRuntime) -> None:
    for endpoint in ("/files/read", "/files/browse", "/files/download"):
        status, text = await get(runtime.url, endpoint, path="/slave/log", offset="0")
        assert (status, text) == (404, "Path not found"), endpoint
    for body in ({"type": "LIST_FILES", "list_files": {"path": "/slave/log"}},
                 {"type": "READ_FILE", "read_file": {"path": "/slave/log", "offset": 0}}):
        assert await operator(runtime.url, body) == (404, "Path not found")
    assert "/slave/log" not in json.loads((await get(runtime.url, "/files/debug"))[1])
    # Any other path outside the sandboxes is still refused as before.
    assert (await get(runtime.url, "/files/read", path="/slave/other", offset="0"))[0] == 403


DENY_LOGS = {"access_mesos_logs": [{"principals": {"type": "ANY"}, "logs": {"type": "NONE"}}]}


@pytest.mark.parametrize("runtime", [{"acls": json.dumps(DENY_LOGS), "log_dir": True}],
                         indirect=True)
async def test_acls_denying_access_mesos_logs_forbid_the_log(
    runtime: AgentRuntime, tmp_path: Path
) -> None:
    # Written here: in-process, the agent leaves the process's logging alone.
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / AGENT_LOG_FILE).write_text("a line\n")
    for endpoint in ("/files/read", "/files/browse", "/files/download"):
        status, text = await get(runtime.url, endpoint, path="/slave/log", offset="0")
        assert status == 403 and "access the agent's log" in text and "\n" not in text
    for body in ({"type": "LIST_FILES", "list_files": {"path": "/slave/log"}},
                 {"type": "READ_FILE", "read_file": {"path": "/slave/log", "offset": 0}}):
        status, text = await operator(runtime.url, body)
        assert status == 403 and "access the agent's log" in text
    # The sandboxes follow access_sandboxes (permissive here), not access_mesos_logs.
    sandboxes = Path(runtime.agent.flags.work_dir) / "slaves"
    sandboxes.mkdir(parents=True, exist_ok=True)
    assert (await get(runtime.url, "/files/browse", path=str(sandboxes)))[0] == 200


# ------------------------------------------------------------------ mezzo.core.daemon_logging


def test_configure_logging_writes_the_level_and_above_to_the_file(tmp_path: Path) -> None:
    """In a fresh interpreter: logging is configured once per process."""
    script = (
        "import logging, sys\n"
        "from mezzo.core.daemon_logging import configure_logging\n"
        "print(configure_logging('warning', sys.argv[1], 'x.INFO'))\n"
        "logging.getLogger('mezzo.t').info('not-this')\n"
        "logging.getLogger('mezzo.t').warning('this one')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "new" / "dir")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "new" / "dir" / "x.INFO"
    assert proc.stdout.strip() == str(path)
    written = path.read_text()
    assert "WARNING mezzo.t: this one" in written and "not-this" not in written
    assert "WARNING mezzo.t: this one" in proc.stderr and "not-this" not in proc.stderr


def test_configure_logging_refuses_a_bad_level_and_an_unusable_log_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"expected one of INFO, WARNING, ERROR"):
        configure_logging("TRACE", None, "x.INFO")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as err:
        configure_logging("INFO", str(blocker / "sub"), "x.INFO")
    assert str(err.value).startswith("--log_dir: cannot write ") and "\n" not in str(err.value)


@pytest.mark.parametrize("daemon", ["master", "agent"])
def test_an_unusable_log_dir_is_a_one_line_start_up_error(daemon: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = [daemon, "--work_dir", str(tmp_path / "work"), "--log_dir", str(blocker / "logs")]
    argv += ["--master", "127.0.0.1:1"] if daemon == "agent" else ["--registry", "in_memory"]
    proc = subprocess.run(
        [sys.executable, "-c", "from mezzo.cli.main import main; main()", *argv],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert f"--log_dir: cannot write {blocker / 'logs'}" in proc.stderr
    assert "Traceback" not in proc.stderr
