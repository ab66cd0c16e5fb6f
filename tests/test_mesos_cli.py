"""Apache Mesos's own CLI (`mesos task exec`, `mesos task attach`, from Mesos's
src/python/cli_new) against a real mezzo master and agent.

The Mesos CLI is not part of mezzo and is not installed by `make install-test`: this test runs
only when `MESOS_CLI_NEW` names a Mesos source tree's `src/python/cli_new` directory and
`MESOS_CLI_PYTHON` an interpreter with its requirements (its pip-requirements.txt, with the
pins it has; Python 3.8: its pinned tenacity 4.12 does not import on Python 3.11). How it was
run for issue 16 is in docs/cli.md ("The Mesos CLI").
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mezzo.testing.agent_harness import (
    MiniScheduler,
    ProcessCluster,
    command_task,
    default_executor,
)

pytestmark = pytest.mark.slow

CLI_NEW = os.environ.get("MESOS_CLI_NEW", "")
PYTHON = os.environ.get("MESOS_CLI_PYTHON", "")
if not (CLI_NEW and PYTHON and Path(CLI_NEW, "bin", "main.py").exists()):
    pytest.skip("the Mesos CLI is not available (set MESOS_CLI_NEW and MESOS_CLI_PYTHON)",
                allow_module_level=True)

# The source tree's settings.py lists the plug-in directories of its PyInstaller build
# (lib/mesos/plugins/...), absent from the source: point them at lib/cli/plugins.
RUN = (
    "import os, runpy, sys\n"
    "d = sys.argv[1]\n"
    "sys.path[:0] = [os.path.join(d, 'bin'), os.path.join(d, 'lib')]\n"
    "import settings\n"
    "settings.PLUGINS = [os.path.join(d, 'lib', 'cli', 'plugins', p)"
    " for p in ('agent', 'config', 'task', 'framework')]\n"
    "sys.argv = [os.path.join(d, 'bin', 'main.py')] + sys.argv[2:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, "--resources", "cpus:4;mem:4096") as c:
        config = tmp_path / "mesos-cli.toml"
        config.write_text(f'[master]\n  address = "{c.master.address}"\n')
        monkeypatch.setenv("MESOS_CLI_CONFIG", str(config))
        yield c


def mesos(cluster: ProcessCluster, *args: str) -> list[str]:
    return [PYTHON, "-c", RUN, CLI_NEW, *args]


def on_a_terminal(argv: list[str], steps: list[tuple[bytes, bytes]]) -> tuple[bytes, int]:
    """Run argv on a pty; each time the output shows steps[i][0], type steps[i][1]."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    output, step, deadline = b"", 0, time.monotonic() + 60
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                break
            output += chunk
        if step < len(steps) and steps[step][0] in output:
            time.sleep(0.3)
            os.write(fd, steps[step][1])
            step += 1
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return output, os.waitstatus_to_exitcode(status)


async def test_mesos_task_exec_and_attach(cluster: ProcessCluster) -> None:
    cluster.agent()
    async with MiniScheduler(cluster.master.url) as s:
        await s.launch([
            command_task("svc", "echo hi > marker; sleep 300"),
            command_task("tty", "while read l; do echo echo:$l; done; exit 4",
                         container={"type": "MESOS", "tty_info": {}}),
        ])
        await s.wait_state("svc", "TASK_RUNNING")
        await s.wait_state("tty", "TASK_RUNNING")
        # Piped: stdin, stdout, stderr and the exit status.
        done = subprocess.run(
            mesos(cluster, "task", "exec", "-i", "svc", "sh", "-c",
                  "cat marker; tr a-z A-Z; echo err >&2; exit 6"),
            input=b"piped\n", capture_output=True, timeout=60, check=False)
        assert (done.returncode, done.stdout, done.stderr) == (6, b"hi\nPIPED\n", b"err\n")
        # Interactive, with a TTY.
        out, code = on_a_terminal(mesos(cluster, "task", "exec", "-t", "-i", "svc", "sh"),
                                  [(b"# " if os.geteuid() == 0 else b"$ ", b"echo $((6*7)); exit 3\r")])
        assert b"42" in out and code == 3, out
        # Attach: refused for a task without a TTY; to the TTY task, then ^D ends it.
        out, code = on_a_terminal(mesos(cluster, "task", "attach", "svc"), [])
        assert b"Unable to attach to a task launched without a TTY" in out and code == 1
        out, code = on_a_terminal(mesos(cluster, "task", "attach", "tty"),
                                  [(b"", b"hello\r"), (b"echo:hello", b"\x04")])
        assert b"echo:hello" in out and code == 0, out
        await s.wait_state("tty", "TASK_FAILED")
        # A task of a group (the default executor): its own container and sandbox.
        member = command_task("member", "echo mine > own; sleep 300")
        member["resources"].append({"name": "disk", "type": "SCALAR", "scalar": {"value": 10}})
        await s.launch_group([(default_executor("pod"), [member])])
        await s.wait_state("member", "TASK_RUNNING")
        done = subprocess.run(mesos(cluster, "task", "exec", "member", "sh", "-c", "pwd; cat own; exit 2"),
                              capture_output=True, timeout=60, check=False)
        assert done.returncode == 2, done.stderr
        assert done.stdout.decode().splitlines()[1:] == ["mine"]
