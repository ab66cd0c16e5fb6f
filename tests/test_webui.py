"""The web UI in a real browser (Debian's chromium driven by Playwright) against a real local
cluster (master and agent processes, a real command executor): the page shows a launched task
within 2 s of TASK_RUNNING without a reload, the sandbox view shows the task's stdout, the
share charts update, and the browser logs no console error.

Screenshots of every view are kept in `build/test-artifacts/webui/` (override with
MEZZO_TEST_ARTIFACTS); docs/operator.md shows them. Skipped only where chromium or the
`playwright` package is missing (scripts/install-test-deps.sh installs both).
"""

from __future__ import annotations

import getpass
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mezzo.api.common import FrameworkInfo, TaskState
from mezzo.scheduler import Scheduler, SchedulerDriver, fits, shell_task
from mezzo.testing.ha_cluster import HaCluster
from mezzo.testing.local_cluster import ClusterSpec, LocalCluster

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("MEZZO_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "build" / "test-artifacts")) / "webui"
TASK_ID = "web-1"
STDOUT_LINE = "hello-from-the-sandbox"

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (scripts/install-test-deps.sh)", allow_module_level=True)


class OneLongTask(Scheduler):
    """Launches one task that prints a line and keeps running; records when it runs."""

    def __init__(self) -> None:
        self.launched = False
        self.running_at: float | None = None
        self.running = threading.Event()

    def resource_offers(self, driver, offers):  # type: ignore[no-untyped-def]
        for offer in offers:
            if not self.launched and fits(offer, "cpus:0.5;mem:64"):
                self.launched = True
                task = shell_task(offer, "cpus:0.5;mem:64", f"echo {STDOUT_LINE}; sleep 300",
                                  task_id=TASK_ID, name="web-demo")
                driver.launch(offer, [task])
            else:
                driver.decline(offer, refuse_seconds=60)

    def status_update(self, driver, status):  # type: ignore[no-untyped-def]
        if status.state == TaskState.TASK_RUNNING and self.running_at is None:
            self.running_at = time.monotonic()
            self.running.set()


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(ClusterSpec(agents=2, agent_resources="cpus:2;mem:2048;disk:2048")) as c:
        c.wait_for_agents(2, 30)
        yield c


@pytest.fixture
def page():  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.errors = errors  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            browser.close()
    assert errors == [], f"the browser logged errors: {errors}"


def test_live_task_sandbox_and_charts(cluster: LocalCluster, page) -> None:  # type: ignore[no-untyped-def]
    page.goto(cluster.master_url + "/#/tasks")
    page.wait_for_selector("#live.on", timeout=10_000)
    page.select_option("#task-state", "all")
    sched = OneLongTask()
    driver = SchedulerDriver(sched, FrameworkInfo(user=getpass.getuser(), name="webui-test"),
                             cluster.master_address)
    driver.start()
    try:
        assert sched.running.wait(60), "the task never reached TASK_RUNNING"
        assert sched.running_at is not None
        # Live: the already open page shows it running, without a reload, within 2 s.
        page.wait_for_selector(f'tr[data-task="{TASK_ID}"] .state.TASK_RUNNING', timeout=2_000)
        page.screenshot(path=str(ARTIFACTS / "tasks.png"), full_page=True)
        # No health check: its health is "-" (Mesos's UI words).
        assert page.inner_text(f'tr[data-task="{TASK_ID}"] td:nth-child(4)') == "-"

        page.fill("#task-search", "no-such-task")
        page.wait_for_selector("text=no tasks match")
        page.fill("#task-search", "web-demo")
        page.wait_for_selector(f'tr[data-task="{TASK_ID}"]')

        # The sandbox: browse it and tail stdout through the master's proxy to the agent.
        page.click(f'tr[data-task="{TASK_ID}"] a')
        page.wait_for_function(f"document.getElementById('sandbox-tail')?.textContent.includes('{STDOUT_LINE}')",
                               timeout=20_000)
        page.wait_for_selector("a[data-path$='/stdout']")
        page.screenshot(path=str(ARTIFACTS / "task-sandbox.png"), full_page=True)

        # The charts: samples keep coming and the framework's share shows in the legend.
        page.goto(cluster.master_url + "/#/")
        page.wait_for_selector("#chart-frameworks")
        before = int(page.get_attribute("#chart-frameworks", "data-samples") or 0)
        page.wait_for_function(
            f"Number(document.getElementById('chart-frameworks').dataset.samples) >= {before + 2}", timeout=10_000)
        legend = page.wait_for_selector("[data-series^='webui-test']")
        assert "%" in legend.inner_text() and not legend.inner_text().endswith(" 0.0%")
        assert "0.5 used" in page.inner_text("[data-resource='cpus']")
        assert page.inner_text("#stat-agents") == "2"
        page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)

        for view, ready in (("frameworks", "tr[data-framework]"), ("agents", "tr[data-agent]"),
                            ("roles", "tr[data-role='*']"), ("offers", "table"),
                            ("metrics", "text=master/tasks_running")):
            page.goto(f"{cluster.master_url}/#/{view}")
            page.wait_for_selector(ready, timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / f"{view}.png"), full_page=True)
    finally:
        driver.stop()
        driver.join(30)


@pytest.mark.zookeeper
def test_the_ui_is_reached_through_a_standby(zk_chroot, tmp_path: Path, page) -> None:  # type: ignore[no-untyped-def]
    """Opened on a standby master, the UI lands on the leader (the standby answers 307), and
    runs live there."""
    with HaCluster(zk_chroot.url, 2, work_dir=tmp_path) as ha:
        ha.start()
        leader = ha.wait_leader()
        [standby] = ha.standbys(leader)
        page.goto(standby.url + "/#/agents")
        page.wait_for_selector("#live.on", timeout=15_000)
        assert page.url.startswith(leader.url) and page.url.endswith("#/agents")
        page.wait_for_function(f"document.getElementById('leader').textContent.includes(':{leader.hostport.split(':')[1]}')",
                               timeout=15_000)
        page.screenshot(path=str(ARTIFACTS / "through-standby.png"))
