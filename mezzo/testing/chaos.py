"""The chaos scenario of issue 9: a real HA cluster, a framework running short tasks, and a
seeded injector of crashes, pauses and outages; `run_chaos()` returns the verdict.

The cluster: one real ZooKeeper server, `masters` `mezzo master --zk` processes (HaCluster),
`agents` `mezzo agent --recover reconnect` processes, and the framework of
`mezzo.testing.chaos_scheduler` in its own process. The masters ping agents every
`--agent_ping_timeout 1secs` and give up after 3 missed pings, so an agent paused for longer
than about 3 s is marked unreachable (TASK_UNREACHABLE, then back to RUNNING when it resumes).

The injector draws a plan from the seed (`plan_faults`): which fault when, on which target,
for how long. Faults: `leader_kill` (kill -9 the serving leader; it comes back as a standby),
`agent_kill` (kill -9 an agent, restart it on the same port and work dir: its executors live
on and are recovered), `agent_pause` (SIGSTOP, then SIGCONT: a short one below the
unreachable threshold, a long one above it), `scheduler_kill` (kill -9 the framework, start it
again: it fails over to itself from its ledger), `zookeeper_stop` (stop the ZooKeeper server,
start it again on the same data). A keeper restarts any master that exits on its own (a master
that loses its ZooKeeper session exits, as Mesos's does) and records any other process that
dies unasked as a finding.

A sampler thread looks at the cluster every second: the leader's `/master/state` (used plus
offered <= total per agent), each running agent's `/state` (allocated <= total), and every
task process (`chaos-<task>` in its command line) against the framework's ledger: a process
alive after its task's terminal update is recorded with how late it was. The verdict
(`mezzo.testing.chaos_verdict`) is computed at the end from the ledger, the marker files and
these observations. Every process started here is stopped by pid at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from mezzo.testing import agent_harness
from mezzo.testing.chaos_scheduler import ended
from mezzo.testing.chaos_verdict import Observations, Verdict, judge
from mezzo.testing.ha_cluster import ROOT, HaCluster, HaMaster, http_get, until
from mezzo.testing.zookeeper import ZooKeeperServer, start_server

log = logging.getLogger("mezzo.chaos")

TASK_TOKEN = re.compile(r"chaos-(w\d+-\d+)")
# How many of each fault a plan holds, and for the pauses how long they last (seconds).
FAULT_COUNTS = {"leader_kill": 2, "agent_kill": 3, "agent_pause_short": 2, "agent_pause_long": 2,
                "scheduler_kill": 2, "zookeeper_stop": 1}
SHORT_PAUSE = (1.0, 1.8)  # below the unreachable threshold (3 missed pings of 1 s)
LONG_PAUSE = (6.0, 9.0)  # above it
DOWN_TIME = (0.5, 2.5)  # how long a killed process stays down before it is started again


@dataclass(frozen=True)
class ChaosOptions:
    seed: int = 1
    tasks: int = 150
    agents: int = 3
    masters: int = 3
    max_running: int = 8
    # Faults happen within this window after the framework starts; then the run drains.
    window: float = 90.0
    # The whole run (after the cluster is up) must end within this.
    deadline: float = 200.0


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the framework started
    kind: str
    target: int  # agent index (agent faults), unused otherwise
    duration: float  # pause length, or how long the killed process stays down


def plan_faults(options: ChaosOptions) -> list[Fault]:
    """The seeded plan: FAULT_COUNTS faults in a random order, spread over the window."""
    rng = random.Random(options.seed)
    kinds = [kind for kind, count in FAULT_COUNTS.items() for _ in range(count)]
    rng.shuffle(kinds)
    step = options.window / (len(kinds) + 1)
    plan = []
    for i, kind in enumerate(kinds):
        at = step * (i + 1) + rng.uniform(-step / 4, step / 4)
        span = {"agent_pause_short": SHORT_PAUSE, "agent_pause_long": LONG_PAUSE}.get(kind, DOWN_TIME)
        plan.append(Fault(round(at, 2), kind, rng.randrange(options.agents),
                          round(rng.uniform(*span), 2)))
    return plan


@dataclass
class Agent:
    name: str
    port: int
    proc: agent_harness.Proc | None = None
    paused: bool = False
    down: bool = False  # killed on purpose, not started again yet
    starts: int = 0  # each start logs to <name>.<starts>.log


@dataclass
class ChaosRun:
    """One run's processes and what happened to them (see the module docstring)."""

    options: ChaosOptions
    work_dir: Path
    zk: ZooKeeperServer | None = None
    cluster: HaCluster | None = None
    agents: list[Agent] = field(default_factory=list)
    scheduler: subprocess.Popen[bytes] | None = None
    scheduler_down: bool = False
    zk_down: bool = False
    injected: Counter[str] = field(default_factory=Counter)
    seen: Observations = field(default_factory=Observations)
    masters_down: set[str] = field(default_factory=set)
    not_injected: int = 0
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop_sampling: threading.Event = field(default_factory=threading.Event)

    @property
    def ledger_path(self) -> Path:
        return self.work_dir / "framework" / "ledger.jsonl"

    @property
    def marks(self) -> Path:
        return self.work_dir / "marks"

    # ------------------------------------------------------------------ processes

    def start_cluster(self) -> None:
        self.marks.mkdir(parents=True, exist_ok=True)
        self.zk = start_server(self.work_dir / "zookeeper")
        zk_url = f"zk://{self.zk.hosts}/mezzo"
        self.cluster = HaCluster(zk_url, self.options.masters, work_dir=self.work_dir,
                                 session_timeout="2secs",
                                 extra=["--agent_ping_timeout", "1secs", "--max_agent_ping_timeouts", "3"])
        self.cluster.start()
        self.cluster.wait_leader(60.0)
        for i in range(self.options.agents):
            agent = Agent(f"agent{i}", agent_harness.free_port())
            self.agents.append(agent)
            self._start_agent(agent)

    def _start_agent(self, agent: Agent) -> None:
        assert self.cluster is not None
        agent.proc = agent_harness.start(
            ["agent", "--master", self.cluster.zk, "--ip", "127.0.0.1", "--port", str(agent.port),
             "--work_dir", str(self.work_dir / agent.name), "--resources", "cpus:1;mem:512",
             "--recover", "reconnect", "--registration_backoff_factor", "100ms",
             "--status_update_retry_interval", "1secs"],
            self.work_dir / f"{agent.name}.{agent.starts}.log", timeout=60.0,
        )
        agent.starts += 1
        agent.down = False

    def _start_scheduler(self) -> None:
        assert self.cluster is not None
        log_file = (self.work_dir / "framework.log").open("ab")
        try:
            self.scheduler = subprocess.Popen(
                [sys.executable, "-m", "mezzo.testing.chaos_scheduler", "--master", self.cluster.zk,
                 "--state-dir", str(self.work_dir / "framework"), "--marks", str(self.marks),
                 "--tasks", str(self.options.tasks), "--max-running", str(self.options.max_running),
                 "--seed", str(self.options.seed)],
                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        finally:
            log_file.close()
        self.scheduler_down = False

    def stop_everything(self) -> None:
        self._stop_sampling.set()
        for agent in self.agents:
            if agent.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(agent.proc.pid, signal.SIGCONT)
                agent.proc.kill()
            agent_harness.kill_leftovers(self.work_dir / agent.name)
        if self.scheduler is not None and self.scheduler.poll() is None:
            self.scheduler.kill()
            self.scheduler.wait(10)
        if self.cluster is not None:
            self.cluster.close()
        if self.zk is not None:
            self.zk.stop()

    # ------------------------------------------------------------------ faults

    def leader(self) -> HaMaster | None:
        assert self.cluster is not None
        return next((m for m in self.cluster.masters if m.name not in self.masters_down
                     and m.is_serving_leader()), None)

    def inject(self, fault: Fault) -> list[tuple[float, Any]] | None:
        """Start a fault; returns what to do later (time, action) to end it, or None when its
        target is not there right now (no serving leader, the agent already down...)."""
        now = time.monotonic()
        later: list[tuple[float, Any]] = []
        if fault.kind == "leader_kill":
            leader = self.leader()
            if leader is None:
                return None
            self.masters_down.add(leader.name)
            leader.kill()
            later.append((now + fault.duration, lambda: self._restart_master(leader)))
        elif fault.kind == "agent_kill":
            agent = self.agents[fault.target]
            if agent.paused or agent.down or agent.proc is None:
                return None
            agent.down = True
            agent.proc.kill()
            later.append((now + fault.duration, lambda: self._start_agent(agent)))
        elif fault.kind.startswith("agent_pause"):
            agent = self.agents[fault.target]
            if agent.paused or agent.down or agent.proc is None:
                return None
            agent.paused = True
            os.kill(agent.proc.pid, signal.SIGSTOP)
            later.append((now + fault.duration, lambda: self._resume(agent)))
        elif fault.kind == "scheduler_kill":
            if self.scheduler is None or self.scheduler.poll() is not None:
                return None
            self.scheduler_down = True
            self.scheduler.kill()
            self.scheduler.wait(10)
            later.append((now + fault.duration, self._start_scheduler))
        elif fault.kind == "zookeeper_stop":
            assert self.zk is not None
            self.zk_down = True
            self.zk.stop()
            later.append((now + fault.duration, self._restart_zookeeper))
        self.injected[fault.kind] += 1
        log.info("fault %s (target %d, %.1f s)", fault.kind, fault.target, fault.duration)
        return later

    def _restart_master(self, master: HaMaster) -> None:
        master.start(timeout=60.0)
        self.masters_down.discard(master.name)

    def _resume(self, agent: Agent) -> None:
        assert agent.proc is not None
        os.kill(agent.proc.pid, signal.SIGCONT)
        agent.paused = False

    def _restart_zookeeper(self) -> None:
        assert self.zk is not None
        self.zk.start()
        self.zk.wait_serving(60.0)
        self.zk_down = False

    def keep(self) -> None:
        """Start again what died unasked: masters exit when they lose their ZooKeeper session
        (expected); an agent dying by itself is a finding."""
        assert self.cluster is not None
        for master in self.cluster.masters:
            if master.name not in self.masters_down and not master.alive and not self.zk_down:
                log.info("master %s exited (%s); starting it again", master.name,
                         master.proc.returncode if master.proc else "?")
                self.masters_down.add(master.name)
                self.background(lambda m=master: self._restart_master(m))
        for agent in self.agents:
            if not agent.down and agent.proc is not None and agent.proc.popen.poll() is not None:
                self.seen.unexpected_exits.append(
                    f"{agent.name} exited by itself with status {agent.proc.popen.returncode}")
                agent.down = True
                self.background(lambda a=agent: self._start_agent(a))

    def background(self, action: Any) -> None:
        """Run a (blocking) restart on its own thread, so that the injector keeps its times."""

        def run() -> None:
            try:
                action()
            except Exception:
                log.exception("restart failed")
                self.seen.unexpected_exits.append(f"a restart failed: {action}")

        thread = threading.Thread(target=run, daemon=True)
        self._threads.append(thread)
        thread.start()

    # ------------------------------------------------------------------ sampling

    def sample_forever(self) -> None:
        while not self._stop_sampling.wait(1.0):
            try:
                self.sample()
            except Exception:  # a sampling hiccup is not a verdict; log it
                log.exception("sample failed")

    def sample(self) -> None:
        self.seen.samples += 1
        self._check_accounting()
        self._check_processes()

    def _check_accounting(self) -> None:
        assert self.cluster is not None
        for master in self.cluster.masters:
            if master.name in self.masters_down or not master.alive:
                continue
            status, _, body = http_get(master.url + "/master/state", timeout=2.0)
            if status != 200:
                continue
            for slave in json.loads(body).get("slaves", []):
                total, used, offered = slave["resources"], slave["used_resources"], slave["offered_resources"]
                for name in ("cpus", "mem"):
                    if used.get(name, 0) + offered.get(name, 0) > total.get(name, 0) + 1e-9:
                        self.seen.overcommits.append(
                            f"leader {master.name}: agent {slave['id']} {name} used {used.get(name)} "
                            f"+ offered {offered.get(name)} > total {total.get(name)}")
        for agent in self.agents:
            if agent.paused or agent.down or agent.proc is None:
                continue
            status, _, body = http_get(agent.proc.url + "/state", timeout=2.0)
            if status != 200:
                continue
            state = json.loads(body)
            total, used = state["resources"], state["unreserved_resources_allocated"]
            for name in ("cpus", "mem"):
                if used.get(name, 0) > total.get(name, 0) + 1e-9:
                    self.seen.overcommits.append(
                        f"{agent.name}: {name} allocated {used.get(name)} > total {total.get(name)}")

    def _terminal_times(self) -> dict[str, float]:
        """Task id -> when the framework recorded its first terminal update."""
        out: dict[str, float] = {}
        with contextlib.suppress(OSError):
            for line in self.ledger_path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if record.get("ev") == "update" and ended(record["state"]):
                        out.setdefault(record["task"], record["t"])
        return out

    def task_processes(self) -> dict[str, list[int]]:
        """This run's live task processes (their command line names the run's marks
        directory: other runs on the machine use the same task ids)."""
        found: dict[str, list[int]] = {}
        marks = str(self.marks)
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            with contextlib.suppress(psutil.Error):
                if proc.info["status"] == psutil.STATUS_ZOMBIE:
                    continue
                cmdline = " ".join(proc.info["cmdline"] or ())
                match = TASK_TOKEN.search(cmdline)
                if match and marks in cmdline:
                    found.setdefault(match[1], []).append(proc.info["pid"])
        return found

    def _check_processes(self) -> None:
        alive = self.task_processes()
        if not alive:
            return
        terminal = self._terminal_times()
        now = time.time()
        for task_id in alive:
            if task_id in terminal:
                late = now - terminal[task_id]
                self.seen.late_processes[task_id] = max(late, self.seen.late_processes.get(task_id, 0.0))

    # ------------------------------------------------------------------ the run

    def run(self) -> Verdict:
        options = self.options
        self.start_cluster()
        self._start_scheduler()
        sampler = threading.Thread(target=self.sample_forever, name="chaos-sampler", daemon=True)
        sampler.start()
        start = time.monotonic()
        plan = plan_faults(options)
        pending: list[tuple[float, Any]] = []
        finished = False
        while time.monotonic() - start < options.deadline:
            now = time.monotonic()
            while plan and start + plan[0].at <= now:
                fault = plan.pop(0)
                later = self.inject(fault)
                if later is not None:
                    pending += later
                elif now - start < options.window + 30:  # try again in a moment
                    plan.insert(0, Fault(fault.at + 1.0, fault.kind, fault.target, fault.duration))
                    break
            for due in [p for p in pending if p[0] <= now]:
                pending.remove(due)
                self.background(due[1])
            self.keep()
            if not self.scheduler_down and self.scheduler is not None and self.scheduler.poll() is not None:
                if self.scheduler.returncode == 0:
                    finished = True
                    break
                self.seen.unexpected_exits.append(
                    f"the framework exited by itself with status {self.scheduler.returncode}")
                self._start_scheduler()
            time.sleep(0.1)
        self.not_injected = len(plan)
        for _, action in pending:  # end what is still in force (pauses, processes down)
            self.background(action)
        for thread in self._threads:
            thread.join(90)
        self.seen.finished_in_time = finished
        self._stop_sampling.set()
        sampler.join(10)
        self._final_checks()
        return judge(self._records(), [p.name for p in self.marks.iterdir()], self.seen)

    def _final_checks(self) -> None:
        try:
            until(lambda: not self.task_processes(), 15.0, "every task process to end")
        except TimeoutError:
            self.seen.leftovers = sorted(self.task_processes())
        try:
            assert self.cluster is not None
            self.cluster.wait_leader(30.0)
            self.seen.leader_at_end = True
        except (TimeoutError, AssertionError):
            self.seen.leader_at_end = False

    def _records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.ledger_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        return records


def run_chaos(options: ChaosOptions, work_dir: Path) -> tuple[Verdict, dict[str, int]]:
    """Run the scenario in `work_dir`; returns the verdict and the faults injected by kind
    (`not_injected`: planned faults the run finished before)."""
    run = ChaosRun(options, work_dir)
    try:
        verdict = run.run()
    finally:
        run.stop_everything()
    return verdict, {**run.injected, "not_injected": run.not_injected}
