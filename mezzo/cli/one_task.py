"""`mezzo run -- CMD ARGS…`: run one command task on the cluster, like `mesos-execute`.

Subscribes a short-lived framework, launches the command on the first offer that fits
`--resources`, declines every other offer, streams the task's state changes to stderr, then
prints the task's stdout and stderr (read from its sandbox through the agent's files API), tears
the framework down and exits with the task's status: 0 for TASK_FINISHED, N for a TASK_FAILED
whose message says "Command exited with status N", 1 for anything else. Ctrl-C kills the task
and exits 130. If the subscription breaks (a master failover), it re-subscribes as the same
framework for up to its failover timeout.

The whole command is on the user's critical path, so this module is standard library only: it
runs on the blocking `mezzo.cli.session` (no asyncio, aiohttp or msgspec; see docs/cli.md for
the figures), `mezzo.cli.offer_fit` picks the task's resources from an offer, and not even click
is imported on the common path: `mezzo.cli.main` hands `mezzo run …` to `fast_main` when
`mezzo.cli.fast_args.parse_run` accepts the command line (the well-formed ones: options
`--name value` / `--name=value`, then the command) and leaves everything else (`--help`, a
typo, a missing command) to the click command `mezzo.cli.run.run`, so that help and usage
errors are click's, worded as for every command. `tests/test_cli_run_fast.py` checks that both
parse the same way.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import sys
import time

from mezzo.cli.common import (
    CliError,
    display,
    get_json,
    is_terminal,
    read_whole_file,
    reason,
    resolve_master,
    sandbox_directory,
)
from mezzo.cli.offer_fit import plain_scalars, take_from_offer
from mezzo.cli.options import error_message
from mezzo.cli.session import (
    CallFailed,
    NoEvent,
    SchedulerSession,
    SessionError,
    SubscribeRefused,
)

# Typing names for the checker only: importing `typing` costs `mezzo run` start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

EXIT_STATUS = re.compile(r"[Cc]ommand exited with status (\d+)")
DECLINE_SECONDS = 3600.0  # offers we will never use: keep them away from us
KILL_WAIT_SECONDS = 10.0
FAILOVER_TIMEOUT = 30.0  # the framework outlives a broken subscription this long
POLL_SECONDS = 0.1  # how often the wait for events looks at the Ctrl-C flag


def exit_code_of(status: dict[str, Any] | None) -> int:
    """0 for FINISHED; the command's code for "Command exited with status N"; else 1."""
    if status is None:
        return 1
    if status.get("state") == "TASK_FINISHED":
        return 0
    match = EXIT_STATUS.search(status.get("message") or "")
    if status.get("state") == "TASK_FAILED" and match:
        return int(match.group(1)) or 1
    return 1


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _user_name() -> str:
    """The user running the command, as `getpass.getuser()` finds it (whose module imports
    more than this needs)."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(name)
        if user:
            return user
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _uuid4() -> str:
    """A random (version 4) UUID string, as `str(uuid.uuid4())` (the `uuid` module's import
    costs more than the rest of this helper's callers)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _agent_url(offer: dict[str, Any]) -> str | None:
    url = offer.get("url") or {}
    address = url.get("address")
    if not address:
        return None
    host = address.get("ip") or address.get("hostname")
    return f"{url.get('scheme') or 'http'}://{host}:{address.get('port')}"


class OneTask:
    """Launch one task on the first fitting offer, follow it to a terminal state, print its
    output and tear the framework down (see the module docstring)."""

    def __init__(
        self, master: str, framework_info: dict[str, Any], resources: str, command: str, name: str
    ) -> None:
        self.master = master
        self.resources = resources
        self.command = command
        self.name = name
        self.session = SchedulerSession(resolve_master(master), framework_info)
        self.task: dict[str, Any] | None = None
        self.offer: dict[str, Any] | None = None
        self.final: dict[str, Any] | None = None
        self.framework_id: str | None = None
        self.interrupted = False

    # ------------------------------------------------------------------ driving

    def run(self) -> int:
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        subscribed = False
        try:
            self._subscribe()
            subscribed = True
            code = self._follow()
            if code is None:
                self._print_output()
                code = exit_code_of(self.final)
            return code
        finally:
            signal.signal(signal.SIGINT, previous)
            if subscribed:
                try:  # noqa: SIM105 (no contextlib import: start-up time)
                    self.session.call("TEARDOWN")  # nothing of ours stays behind
                except (SessionError, OSError):
                    pass
            self.session.close()

    def _on_sigint(self, signum: int, frame: Any) -> None:
        # Only a flag: the event wait polls it, and no socket operation is ever cut in half.
        self.interrupted = True

    def _subscribe(self) -> None:
        try:
            subscribed = self.session.subscribe()
        except SubscribeRefused as exc:
            raise CliError(f"the master refused the framework: {exc}") from None
        except (OSError, SessionError) as exc:
            raise CliError(f"cannot reach master at {self.session.display}: {reason(exc)}") from None
        framework_id = (subscribed.get("subscribed") or {}).get("framework_id") or {}
        self.framework_id = framework_id.get("value")
        _say(f"subscribed as framework {self.framework_id}; waiting for an offer")

    def _resubscribe(self) -> None:
        """The stream broke: find the (new) leader and re-attach as the same framework."""
        deadline = time.monotonic() + FAILOVER_TIMEOUT
        delay = 0.1
        while True:
            try:
                self.session.base = resolve_master(self.master)
                self.session.subscribe()
                return
            except SubscribeRefused as exc:
                raise CliError(f"the master refused the framework: {exc}") from None
            except (OSError, SessionError, CliError) as exc:
                if time.monotonic() + delay > deadline:
                    raise CliError(
                        f"lost the master and could not re-subscribe within "
                        f"{FAILOVER_TIMEOUT:.0f} s: {reason(exc)}"
                    ) from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _follow(self) -> int | None:
        """Handle events until the task is terminal (None) or Ctrl-C was handled (130)."""
        kill_deadline: float | None = None
        while self.final is None:
            if self.interrupted and kill_deadline is None:
                _say("interrupted")
                if self.task is None:
                    return 130
                kill = {"task_id": self.task["task_id"], "agent_id": self.task["agent_id"]}
                try:
                    self.session.call("KILL", kill=kill)
                except (SessionError, OSError):
                    return 130
                kill_deadline = time.monotonic() + KILL_WAIT_SECONDS
            if kill_deadline is not None and time.monotonic() >= kill_deadline:
                return 130
            try:
                event = self.session.next_event(POLL_SECONDS)
            except NoEvent:
                continue
            if event is None:
                self._resubscribe()
                continue
            self._handle(event)
        return 130 if kill_deadline is not None else None

    # ------------------------------------------------------------------ events

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "OFFERS":
            self._offers((event.get("offers") or {}).get("offers") or [])
        elif kind == "UPDATE":
            self._update((event.get("update") or {}).get("status") or {})
        elif kind == "ERROR":
            message = (event.get("error") or {}).get("message", "error")
            raise CliError(f"the master refused the framework: {message}")

    def _offers(self, offers: list[dict[str, Any]]) -> None:
        unused: list[dict[str, Any]] = []
        for offer in offers:
            taken = None if self.task is not None else take_from_offer(offer, self.resources)
            if taken is None:
                unused.append(offer)
                continue
            task_id = f"{self.name}-{_uuid4()}"
            self.task = {
                "name": self.name,
                "task_id": {"value": task_id},
                "agent_id": offer["agent_id"],
                "resources": taken,
                "command": {"shell": True, "value": self.command},
            }
            self.offer = offer
            launch = {"type": "LAUNCH", "launch": {"task_infos": [self.task]}}
            self._call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [launch]})
            _say(f"launched task {task_id} on agent {offer.get('hostname')}")
        if unused:
            decline = {
                "offer_ids": [o["id"] for o in unused],
                "filters": {"refuse_seconds": DECLINE_SECONDS},
            }
            self._call("DECLINE", decline=decline)
        if self.task is not None:
            try:  # noqa: SIM105 (no contextlib import: start-up time)
                self.session.call("SUPPRESS", suppress={})
            except (SessionError, OSError):
                pass

    def _update(self, status: dict[str, Any]) -> None:
        # Acknowledge first: the agent sends a task's next update only after this one's ack.
        if status.get("uuid") and status.get("agent_id"):
            ack = {"agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}
            try:  # noqa: SIM105 (no contextlib import: start-up time)
                self.session.call("ACKNOWLEDGE", acknowledge=ack)
            except (SessionError, OSError):
                pass  # the agent retries the update and we acknowledge it then
        if self.task is None or status.get("task_id") != self.task["task_id"]:
            return
        state = status.get("state", "")
        detail = f": {status['message']}" if status.get("message") else ""
        _say(f"task {self.task['task_id']['value']} is {state}{detail}")
        if is_terminal(state):
            self.final = status

    def _find_sandbox(self, agent: str) -> str | None:
        """The task's sandbox directory from its agent's `/state`; None (with a warning) when
        it cannot be found."""
        assert self.task is not None
        try:
            state = get_json(agent + "/state", f"agent at {display(agent)}")
            return sandbox_directory(state, self.task["task_id"]["value"])
        except CliError as exc:
            _say(f"warning: cannot fetch the task's output: {exc.format_message()}")
            return None

    def _call(self, call_type: str, **payload: Any) -> None:
        try:
            self.session.call(call_type, **payload)
        except CallFailed as exc:
            raise CliError(f"the master refused {exc}") from None
        except OSError as exc:
            raise CliError(f"cannot reach master at {self.session.display}: {reason(exc)}") from None

    # ------------------------------------------------------------------ output

    def _print_output(self) -> None:
        """Print the task's stdout to stdout and stderr to stderr; warn (not fail) if unreadable."""
        assert self.offer is not None and self.task is not None
        agent = _agent_url(self.offer)
        if agent is None:
            _say("warning: the offer carried no agent address; cannot fetch the task's output")
            return
        # The command executor's id is its task's (as Mesos's): the sandbox is at the
        # executor's virtual path, no `/state` (which grows with the agent's history) needed.
        # An agent without that path (404) is asked for the directory in its `/state`.
        try:
            out, err = _read_output(agent, f"/frameworks/{self.framework_id}/executors/"
                                           f"{self.task['task_id']['value']}/runs/latest")
        except CliError:
            directory = self._find_sandbox(agent)
            if directory is None:
                return
            try:
                out, err = _read_output(agent, directory)
            except CliError as exc:
                _say(f"warning: cannot fetch the task's output: {exc.format_message()}")
                return
        sys.stdout.buffer.write(out)
        sys.stdout.buffer.flush()
        sys.stderr.buffer.write(err)
        sys.stderr.buffer.flush()


def _read_output(agent: str, directory: str) -> tuple[bytes, bytes]:
    """The stdout and stderr of the sandbox `directory` on `agent` (CliError if unreadable)."""
    out, _ = read_whole_file(agent, f"{directory}/stdout")
    err, _ = read_whole_file(agent, f"{directory}/stderr")
    return out, err


def run_task(
    master: str,
    name: str | None,
    resources: str,
    framework_name: str,
    role: str | None,
    command: Sequence[str],
) -> int:
    """`mezzo run`: check the options, run the task, return the exit status (CliError)."""

    if plain_scalars(resources) is None:
        # Not the plain-scalar fast path: let the resources library judge the text.
        from mezzo.core.errors import MezzoError
        from mezzo.resources import Resources

        try:
            Resources.parse(resources)
        except MezzoError as exc:
            raise CliError(f"bad --resources {resources!r}: {exc}") from None
    line = command[0] if len(command) == 1 else shlex.join(command)
    info: dict[str, Any] = {
        "user": _user_name(),
        "name": framework_name,
        "failover_timeout": FAILOVER_TIMEOUT,
        "checkpoint": False,
    }
    if role is not None:
        info["role"] = role
    return OneTask(master, info, resources, line, name or "run").run()


def fast_main(args: dict[str, Any]) -> int:
    """Run `mezzo run` without click, with the arguments `mezzo.cli.fast_args.parse_run` read
    (see the module docstring); the exit status. Errors are one line on stderr, as the click
    commands print them."""
    try:
        return run_task(**args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        _say(f"error: {error_message(exc)}")
        return 1
