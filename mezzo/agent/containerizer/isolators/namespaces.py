"""The ``namespaces/pid`` isolator: each container gets its own pid namespace.

The container's command is wrapped in util-linux ``unshare --pid --fork --kill-child
--mount-proc``: unshare(1) forks the command as pid 1 of a new pid namespace (with a private
mount namespace and its own /proc, so ``ps`` inside shows only the container), waits for it,
exits with its status (re-raising its signal), and SIGKILLs it if unshare itself dies. When
pid 1 of a namespace dies the kernel kills every process in it, so destroying the container's
process group or cgroup tears the whole namespace down.

Why a wrapper binary instead of unshare(2) in the child: CPython 3.11 has no ``os.unshare``,
and running Python code between fork and exec (``preexec_fn``) is unsafe in a threaded process
and disables the vfork fast path. The wrapper costs one extra fork+exec of a small C program.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from mezzo.agent.containerizer.isolator import Isolator
from mezzo.agent.containerizer.records import ContainerConfig, LaunchInfo


class NamespacesUnavailable(Exception):
    """The pid namespace cannot be created here; ``str()`` is the one-line reason."""


def _probe(unshare: str) -> None:
    """Create a throwaway pid namespace once, so an unusable setup fails at agent start."""
    try:
        out = subprocess.run(
            [
                unshare,
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "/bin/sh",
                "-c",
                "echo $$",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NamespacesUnavailable(f"cannot run {unshare}: {e}") from e
    if out.returncode != 0 or out.stdout.strip() != "1":
        reason = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "no pid 1"
        raise NamespacesUnavailable(f"cannot create a pid namespace: {reason}")


class PidNamespaceIsolator(Isolator):
    name = "namespaces/pid"

    def __init__(self) -> None:
        unshare = shutil.which("unshare")
        if unshare is None:
            raise NamespacesUnavailable("util-linux 'unshare' is not installed")
        if os.geteuid() != 0:
            raise NamespacesUnavailable("creating pid namespaces needs root")
        _probe(unshare)
        self.wrapper = [unshare, "--pid", "--fork", "--kill-child", "--mount-proc", "--"]

    def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        if config.parent is not None:
            # A nested container does not get a pid namespace of its own (nor does it enter
            # its parent's: it sees the host's pids).
            return None
        return LaunchInfo(wrapper=list(self.wrapper))
