"""Checks and health checks of the built-in executors (issue 16 §2).

Three layers: the pure schedule and interpretation (`checks_core.TaskChecks`) on explicit
times; the command executor's core fed probe results on a FakeClock (exact updates, the kill);
the probes themselves (`checks_probe.ProbeRunner`) against a real HTTP server, a closed port
and real commands on loopback.
"""

from __future__ import annotations

import http.server
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mezzo.executor import checks_core as checks
from mezzo.executor.checks_probe import ProbeRunner
from mezzo.executor.command_events import (
    Connected,
    Disconnected,
    Launch,
    PostUpdate,
    ProcessExited,
    Signal,
    Spawned,
    Subscribe,
    Subscribed,
    Tick,
    UpdateAccepted,
)
from mezzo.executor.default_events import TaskExited
from mezzo.executor.testing import command_task
from tests.test_executor_command_core import PID, Harness, exited
from tests.test_executor_default_core import KILLING, grace
from tests.test_executor_default_core import Harness as GroupHarness
from tests.tls_ca import make_test_ca

# ----------------------------------------------------------------------------- definitions


def health(kind: str = "HTTP", **fields: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"type": kind}
    if kind == "HTTP":
        info["http"] = {"port": 8080, "path": "/health"}
    elif kind == "TCP":
        info["tcp"] = {"port": 8080}
    else:
        info["command"] = {"value": "test -f ready", "shell": True}
    info.update(fields)
    return info


def check(kind: str = "COMMAND", **fields: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"type": kind}
    if kind == "HTTP":
        info["http"] = {"port": 8080}
    elif kind == "TCP":
        info["tcp"] = {"port": 8080}
    else:
        info["command"] = {"command": {"value": "cat state", "shell": True}}
    info.update(fields)
    return info


def task_with(**fields: Any) -> dict[str, Any]:
    task = command_task("web", "sleep 60")
    task.update(fields)
    return task


def run_probe(c: checks.TaskChecks, now: float) -> checks.RunProbe:
    actions, reports = c.tick(now)
    assert reports == []
    [run] = actions
    assert isinstance(run, checks.RunProbe)
    return run


# ----------------------------------------------------------------------------- the pure core


def test_defaults_are_mesos_s() -> None:
    c = checks.TaskChecks(task_with(health_check={"type": "TCP", "tcp": {"port": 1}}), 100.0)
    assert c.deadlines() == [115.0]  # delay_seconds 15
    assert c.grace == 10.0 and c.consecutive_limit == 3
    run = run_probe(c, 115.0)
    assert run.spec == checks.ProbeSpec("TCP", "", [], {}, None, "", "127.0.0.1", 1, "")
    assert c.deadlines() == [135.0]  # timeout_seconds 20
    assert c.probe_done(run.probe_id, True, None, 116.0) == [checks.HealthReport(True, 0, False, "")]
    assert c.deadlines() == [126.0]  # interval_seconds 10 after the result


def test_health_check_first_success_then_changes_only_but_every_failure() -> None:
    c = checks.TaskChecks(task_with(health_check=health(
        delay_seconds=0.0, interval_seconds=1.0, grace_period_seconds=0.0,
        consecutive_failures=3)), 0.0)
    results = [200, 204, 399, 500, 503, 301, 200]
    reports = []
    now = 0.0
    for code in results:
        run = run_probe(c, now)
        reports.append(c.probe_done(run.probe_id, code, None, now))
        now += 1.0
    assert reports == [
        [checks.HealthReport(True, 0, False, "")],  # the first success
        [], [],  # still healthy (200-399)
        [checks.HealthReport(False, 1, False, "Unexpected HTTP response code: 500")],
        [checks.HealthReport(False, 2, False, "Unexpected HTTP response code: 503")],
        [checks.HealthReport(True, 0, False, "")],  # healthy again (a 3xx is healthy)
        [],
    ]


def test_failures_in_the_grace_period_are_ignored_until_the_first_success() -> None:
    c = checks.TaskChecks(task_with(health_check=health(
        "COMMAND", delay_seconds=0.0, interval_seconds=1.0, grace_period_seconds=2.5,
        consecutive_failures=2)), 0.0)
    out = []
    for now, code in [(0.0, 1), (1.0, 1), (2.0, 1), (3.0, 1), (4.0, 1)]:
        run = run_probe(c, now)
        out.append(c.probe_done(run.probe_id, code, None, now))
    assert out == [
        [], [], [],  # in the grace period (t <= 2.5) and never healthy: ignored
        [checks.HealthReport(False, 1, False, "Command exited with status 1")],
        [checks.HealthReport(False, 2, True, "Command exited with status 1")],  # kill
    ]


def test_after_a_first_success_the_grace_period_no_longer_applies() -> None:
    c = checks.TaskChecks(task_with(health_check=health(
        "TCP", delay_seconds=0.0, interval_seconds=1.0, grace_period_seconds=100.0,
        consecutive_failures=1)), 0.0)
    run = run_probe(c, 0.0)
    assert c.probe_done(run.probe_id, True, None, 0.0) == [checks.HealthReport(True, 0, False, "")]
    run = run_probe(c, 1.0)
    assert c.probe_done(run.probe_id, False, None, 1.0) == [
        checks.HealthReport(False, 1, True, "TCP connection failed")]


def test_a_probe_that_times_out_is_aborted_and_counts_as_a_failure() -> None:
    c = checks.TaskChecks(task_with(health_check=health(
        delay_seconds=1.0, interval_seconds=2.0, timeout_seconds=0.5, grace_period_seconds=0.0,
        consecutive_failures=5)), 0.0)
    assert c.tick(0.5) == ([], [])  # the delay
    run = run_probe(c, 1.0)
    assert c.deadlines() == [1.5]
    actions, reports = c.tick(1.5)
    assert actions == [checks.AbortProbe(run.probe_id)]
    assert reports == [checks.HealthReport(False, 1, False, "HTTP health timed out after 0.5s")]
    assert c.deadlines() == [3.5]
    # The aborted probe's late answer is stale.
    assert c.probe_done(run.probe_id, 200, None, 1.6) == []


def test_timeout_zero_means_no_limit() -> None:
    c = checks.TaskChecks(task_with(check=check(delay_seconds=0.0, timeout_seconds=0.0)), 0.0)
    run_probe(c, 0.0)
    assert c.deadlines() == [None]


def test_check_reports_only_changes_and_errors_are_empty_results() -> None:
    c = checks.TaskChecks(task_with(check=check(
        "HTTP", delay_seconds=0.0, interval_seconds=1.0)), 0.0)
    assert c.check_status == {"type": "HTTP", "http": {}}
    out = []
    for now, (result, error) in enumerate(
        [(None, "connection refused"), (200, None), (200, None), (202, None),
         (None, "timed out")]
    ):
        run = run_probe(c, float(now))
        out.append(c.probe_done(run.probe_id, result, error, float(now)))
    assert out == [
        [],  # an error is the empty result, which is the starting one: nothing new
        [checks.CheckReport({"type": "HTTP", "http": {"status_code": 200}})],
        [],
        [checks.CheckReport({"type": "HTTP", "http": {"status_code": 202}})],  # checks see 202
        [checks.CheckReport({"type": "HTTP", "http": {}})],
    ]


def test_command_and_tcp_check_results() -> None:
    c = checks.TaskChecks(task_with(check=check(delay_seconds=0.0)), 0.0)
    run = run_probe(c, 0.0)
    assert run.spec.kind == "COMMAND" and run.spec.argv == ["/bin/sh", "-c", "cat state"]
    assert c.probe_done(run.probe_id, 3, None, 0.0) == [
        checks.CheckReport({"type": "COMMAND", "command": {"exit_code": 3}})]
    t = checks.TaskChecks(task_with(check=check("TCP", delay_seconds=0.0)), 0.0)
    run = run_probe(t, 0.0)
    assert t.probe_done(run.probe_id, False, None, 0.0) == [
        checks.CheckReport({"type": "TCP", "tcp": {"succeeded": False}})]


def test_a_command_probe_runs_in_the_task_s_environment_and_directory() -> None:
    task = task_with(health_check={
        "type": "COMMAND",
        "command": {"value": "true", "environment": {"variables": [
            {"name": "B", "value": "check"}]}},
    })
    c = checks.TaskChecks(task, 0.0, env={"A": "task", "B": "task"}, cwd="/sandbox/tasks/web")
    run = run_probe(c, 15.0)
    assert run.spec.env == {"A": "task", "B": "check"}
    assert run.spec.cwd == "/sandbox/tasks/web"


def test_health_check_and_check_run_side_by_side_and_stop_aborts_both() -> None:
    c = checks.TaskChecks(task_with(
        check=check(delay_seconds=1.0), health_check=health(delay_seconds=2.0)), 0.0)
    assert c.deadlines() == [1.0, 2.0]
    first = run_probe(c, 1.0)
    second = run_probe(c, 2.0)
    assert (first.probe_id[1], second.probe_id[1]) == ("check", "health")
    assert c.stop() == [checks.AbortProbe(first.probe_id), checks.AbortProbe(second.probe_id)]
    assert c.deadlines() == []
    assert c.probe_done(first.probe_id, 0, None, 3.0) == []


def test_ipv6_and_https_for_health_checks() -> None:
    c = checks.TaskChecks(task_with(health_check={
        "type": "HTTP", "delay_seconds": 0.0,
        "http": {"port": 443, "scheme": "https", "protocol": "IPv6"}}), 0.0)
    spec = run_probe(c, 0.0).spec
    assert (spec.scheme, spec.host, spec.port, spec.path) == ("https", "::1", 443, "")


# ----------------------------------------------------------------------------- the command core


def started(task: dict[str, Any], *, killing: bool = True) -> tuple[Harness, list[Any]]:
    """A core running `task` as PID; the probes it started at once."""
    h = Harness()
    [subscribe] = h.handle(Tick())
    assert isinstance(subscribe, Subscribe)
    h.handle(Connected())
    h.handle(Subscribed({"value": "agent-1"}, killing))
    h.accept(h.handle(Launch(task)))
    rest = h.accept(h.handle(Spawned(PID)))
    return h, [a for a in rest if isinstance(a, checks.RunProbe)]


def statuses(actions: list[Any]) -> list[dict[str, Any]]:
    return [a.call["update"]["status"] for a in actions if isinstance(a, PostUpdate)]


def test_command_executor_reports_health_and_kills_an_unhealthy_task() -> None:
    task = task_with(
        health_check=health(delay_seconds=0.0, interval_seconds=1.0, grace_period_seconds=0.0,
                            consecutive_failures=2),
        kill_policy={"grace_period": {"nanoseconds": 2_000_000_000}},
    )
    h, [run] = started(task)
    assert run.spec.kind == "HTTP" and run.spec.port == 8080
    [healthy] = statuses(h.handle(checks.ProbeDone(run.probe_id, 200, None)))
    assert (healthy["state"], healthy["healthy"], healthy["reason"]) == (
        "TASK_RUNNING", True, "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED")
    h.accept([])
    h.handle(UpdateAccepted(h.core.posting))
    h.clock.set(1.0)
    [run] = [a for a in h.handle(Tick()) if isinstance(a, checks.RunProbe)]
    [sick] = statuses(h.handle(checks.ProbeDone(run.probe_id, 500, None)))
    assert (sick["state"], sick["healthy"]) == ("TASK_RUNNING", False)
    h.handle(UpdateAccepted(h.core.posting))
    h.clock.set(2.0)
    [run] = [a for a in h.handle(Tick()) if isinstance(a, checks.RunProbe)]
    actions = h.handle(checks.ProbeDone(run.probe_id, None, "connection refused"))
    assert [s["state"] for s in statuses(actions)] == ["TASK_RUNNING"]
    assert Signal(PID, 15) in actions  # SIGTERM: the kill began
    # TASK_KILLING is queued behind the unhealthy update; the kill uses the task's grace.
    assert h.core.kill_escalate_at == 4.0
    assert h.core.checks is not None and h.core.checks.stopped
    updates = h.accept(h.handle(UpdateAccepted(h.core.posting)))
    assert updates == []
    assert [s["state"] for s in h.core.unacked.values()][-1] == "TASK_KILLING"
    h.handle(ProcessExited(15))
    killed = list(h.core.unacked.values())[-1]
    assert killed["state"] == "TASK_KILLED" and killed["healthy"] is False
    assert "reason" not in killed


def test_command_executor_sends_check_status_on_every_update() -> None:
    task = task_with(check=check(delay_seconds=0.5, interval_seconds=1.0))
    h, probes = started(task)
    assert probes == []
    sent = list(h.core.unacked.values())
    assert [s["state"] for s in sent] == ["TASK_STARTING", "TASK_RUNNING"]
    assert all(s["check_status"] == {"type": "COMMAND", "command": {}} for s in sent)
    h.clock.set(0.5)
    [run] = [a for a in h.handle(Tick()) if isinstance(a, checks.RunProbe)]
    [update] = statuses(h.handle(checks.ProbeDone(run.probe_id, 0, None)))
    assert update["reason"] == "REASON_TASK_CHECK_STATUS_UPDATED"
    assert update["check_status"] == {"type": "COMMAND", "command": {"exit_code": 0}}
    assert update["state"] == "TASK_RUNNING" and "healthy" not in update
    h.handle(UpdateAccepted(h.core.posting))
    # The same result again: no update.
    h.clock.set(1.5)
    [run] = [a for a in h.handle(Tick()) if isinstance(a, checks.RunProbe)]
    assert statuses(h.handle(checks.ProbeDone(run.probe_id, 0, None))) == []
    # The task ends: its terminal update carries the empty result (made from scratch).
    h.handle(ProcessExited(exited(0)))
    finished = list(h.core.unacked.values())[-1]
    assert finished["state"] == "TASK_FINISHED"
    assert finished["check_status"] == {"type": "COMMAND", "command": {}}


def test_a_probe_in_flight_is_aborted_when_the_task_ends() -> None:
    h, [run] = started(task_with(health_check=health("COMMAND", delay_seconds=0.0)))
    actions = h.handle(ProcessExited(exited(0)))
    assert checks.AbortProbe(run.probe_id) in actions
    assert statuses(h.handle(checks.ProbeDone(run.probe_id, 1, None))) == []


# ----------------------------------------------------------------------------- real probes


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/ok")
        elif self.path == "/ok":
            self.send_response(200)
        else:
            self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drive(runner: ProbeRunner, probe_id: Any, spec: checks.ProbeSpec,
          timeout: float = 20.0) -> checks.ProbeDone:
    """Run one probe to its end with a poll loop like the executors'."""
    done = runner.start(probe_id, spec)
    deadline = time.monotonic() + timeout
    while done is None:
        assert time.monotonic() < deadline, "probe did not end"
        poller = select.poll()
        fds = runner.poll_fds()
        for fd, mask in fds:
            poller.register(fd, mask)
        for fd, mask in poller.poll(100):
            for result in runner.ready(fd, mask):
                assert result.probe_id == probe_id
                done = result
    return done


def http_spec(port: int, path: str) -> checks.ProbeSpec:
    return checks.ProbeSpec("HTTP", "", [], {}, None, "http", "127.0.0.1", port, path)


def tcp_spec(port: int) -> checks.ProbeSpec:
    return checks.ProbeSpec("TCP", "", [], {}, None, "", "127.0.0.1", port, "")


def command_spec(script: str, cwd: str | None = None, **env: str) -> checks.ProbeSpec:
    return checks.ProbeSpec("COMMAND", "/bin/sh", ["/bin/sh", "-c", script], env, cwd,
                            "", "", 0, "")


def test_http_probe_reports_the_status_code_and_follows_redirects(http_port: int) -> None:
    runner = ProbeRunner({})
    assert drive(runner, 1, http_spec(http_port, "/ok")) == checks.ProbeDone(1, 200, None)
    assert drive(runner, 2, http_spec(http_port, "/down")) == checks.ProbeDone(2, 503, None)
    assert drive(runner, 3, http_spec(http_port, "/moved")) == checks.ProbeDone(3, 200, None)
    assert runner.poll_fds() == []


def test_http_probe_of_a_closed_port_is_an_error() -> None:
    done = drive(ProbeRunner({}), 1, http_spec(closed_port(), ""))
    assert done.result is None and done.error


def test_tcp_probe(http_port: int) -> None:
    runner = ProbeRunner({})
    assert drive(runner, 1, tcp_spec(http_port)) == checks.ProbeDone(1, True, None)
    assert drive(runner, 2, tcp_spec(closed_port())) == checks.ProbeDone(2, False, None)


def test_command_probe_exit_code_environment_and_directory(tmp_path: Any) -> None:
    runner = ProbeRunner({"BASE": "executor", "PATH": "/usr/bin:/bin"})
    script = 'test "$BASE-$EXTRA-$(pwd)" = "executor-task-$0" && exit 7'
    spec = checks.ProbeSpec("COMMAND", "/bin/sh", ["/bin/sh", "-c", script, str(tmp_path)],
                            {"EXTRA": "task"}, str(tmp_path), "", "", 0, "")
    assert drive(runner, 1, spec) == checks.ProbeDone(1, 7, None)
    done = drive(runner, 2, command_spec("kill -KILL $$"))
    assert done == checks.ProbeDone(2, None, "Command terminated with signal SIGKILL")
    missing = checks.ProbeSpec("COMMAND", "no-such-program-x", ["no-such-program-x"], {}, None,
                               "", "", 0, "")
    done = runner.start(3, missing)
    assert done is not None and done.result is None and "not found" in (done.error or "")


def test_an_aborted_command_probe_is_killed_with_its_children_and_reaped(tmp_path: Any) -> None:
    runner = ProbeRunner({})
    pidfile = tmp_path / "child"
    assert runner.start(1, command_spec(f"sleep 60 & echo $! > {pidfile}; wait")) is None
    deadline = time.monotonic() + 20
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child = int(pidfile.read_text())
    runner.abort(1)
    deadline = time.monotonic() + 20
    while True:
        try:
            with open(f"/proc/{child}/stat") as f:
                gone = f.read().split(") ")[1][0] == "Z"
        except FileNotFoundError:
            gone = True
        if gone:
            break
        assert time.monotonic() < deadline, "the probe's child survived the abort"
        time.sleep(0.02)
    deadline = time.monotonic() + 20
    while runner.orphans:
        assert time.monotonic() < deadline
        runner.ready(-1, 0)
        time.sleep(0.02)


# ----------------------------------------------------------------------------- the default core


def test_default_executor_health_kill_takes_the_group_down_and_reports_unhealthy() -> None:
    h = GroupHarness()
    h.subscribe(KILLING)
    web = command_task("web", "serve", env={"PORT": "8080"})
    web["health_check"] = health("COMMAND", delay_seconds=1.0, interval_seconds=1.0,
                                 grace_period_seconds=0.0, consecutive_failures=1)
    web["kill_policy"] = grace(2.0)
    side = command_task("side", "sleep 60")
    pids = h.spawn_all(h.launch(web, side))
    [run] = h.advance_to_deadline()
    assert isinstance(run, checks.RunProbe) and run.probe_id[0] == "web"
    # The probe runs in the task's own sandbox with the task's environment.
    assert run.spec.cwd == "/sandbox/tasks/web"
    assert run.spec.env["PORT"] == "8080" and run.spec.env["MESOS_SANDBOX"] == "/sandbox/tasks/web"
    actions = h.handle(checks.ProbeDone(run.probe_id, 1, None))
    assert Signal(pids["web"], 15) in actions
    unhealthy = [u for u in h.updates if u["task_id"]["value"] == "web"][-2]
    assert unhealthy["state"] == "TASK_RUNNING" and unhealthy["healthy"] is False
    assert unhealthy["reason"] == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
    assert unhealthy["container_status"] == h.last("web")["container_status"]
    assert h.states("web")[-1] == "TASK_KILLING"
    assert h.core.runs["web"].escalate_at == 3.0  # the task's own grace
    h.handle(TaskExited("web", 15))
    killed = h.last("web")
    assert killed["state"] == "TASK_KILLED" and killed["healthy"] is False
    assert h.states("side")[-1] == "TASK_KILLING"  # its group goes with it
    assert "healthy" not in h.last("side")


def test_default_executor_check_status_per_task() -> None:
    h = GroupHarness()
    h.subscribe()
    web = command_task("web", "serve")
    web["check"] = check("TCP", delay_seconds=0.5, interval_seconds=1.0)
    plain = command_task("plain", "sleep 60")
    h.spawn_all(h.launch(web, plain))
    assert h.last("web")["check_status"] == {"type": "TCP", "tcp": {}}
    assert "check_status" not in h.last("plain")
    [run] = h.advance_to_deadline()
    h.handle(checks.ProbeDone(run.probe_id, True, None))
    update = h.last("web")
    assert update["state"] == "TASK_RUNNING"
    assert update["reason"] == "REASON_TASK_CHECK_STATUS_UPDATED"
    assert update["check_status"] == {"type": "TCP", "tcp": {"succeeded": True}}


def test_https_probe_does_not_verify_the_certificate(tmp_path: Any) -> None:
    ca = make_test_ca(tmp_path / "ca")  # the probe does not know this CA: `curl -k`
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ca.cert_file, ca.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        spec = checks.ProbeSpec("HTTP", "", [], {}, None, "https", "127.0.0.1", port, "/moved")
        assert drive(ProbeRunner({}), 1, spec) == checks.ProbeDone(1, 200, None)
    finally:
        server.shutdown()
        server.server_close()


def test_a_redirect_off_this_machine_is_not_followed() -> None:
    class Away(_Handler):
        def do_GET(self) -> None:
            self.send_response(301)
            self.send_header("Location", "http://example.com/")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Away)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = drive(ProbeRunner({}), 1, http_spec(server.server_address[1], "/"))
        assert done == checks.ProbeDone(1, 301, None)  # reported as is (healthy: 200-399)
    finally:
        server.shutdown()
        server.server_close()


def test_default_executor_drops_health_results_while_disconnected() -> None:
    h = GroupHarness(checkpoint=True)
    h.subscribe()
    web = command_task("web", "serve")
    web["health_check"] = health("TCP", delay_seconds=1.0, interval_seconds=1.0,
                                 grace_period_seconds=0.0, consecutive_failures=2)
    pids = h.spawn_all(h.launch(web))
    [run] = h.advance_to_deadline()
    resubscribe = h.handle(Disconnected("agent restarting"))
    assert any(isinstance(a, Subscribe) for a in resubscribe)
    sent = len(h.updates)
    actions = h.handle(checks.ProbeDone(run.probe_id, False, None))
    assert Signal(pids["web"], 15) not in actions
    assert len(h.updates) == sent and len(h.core.unacked) == 2  # STARTING, RUNNING only
    # The count went on: once back, the next failure is the second in a row and kills.
    h.handle(Connected())
    h.clock.set(2.0)
    [run] = [a for a in h.handle(Tick()) if isinstance(a, checks.RunProbe)]
    actions = h.handle(checks.ProbeDone(run.probe_id, False, None))
    assert Signal(pids["web"], 15) in actions
    assert h.core.runs["web"].killed_by_health_check
