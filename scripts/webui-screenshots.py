"""Screenshots of the web UI for docs/operator.md (docs/img/*.png).

Starts a local cluster (master + 3 agents), runs two example frameworks on it (a service in role
`web` and batch jobs in role `batch`, weights web=2,batch=1) for about a minute with the overview
open, so that the share charts have history, then takes one screenshot per view. Uses Debian's
chromium through Playwright, like tests/test_webui.py.

    .venv/bin/python scripts/webui-screenshots.py [docs/img]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from mezzo.testing.local_cluster import MEZZO_ARGV, ClusterSpec, LocalCluster

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img")
out.mkdir(parents=True, exist_ok=True)

spec = ClusterSpec(agents=3, agent_resources="cpus:4;mem:4096;disk:4096",
                   master_args=["--weights", "web=2,batch=1"])
with LocalCluster(spec) as cluster:
    cluster.wait_for_agents(3, 30)
    master = cluster.master_address
    frameworks = [
        subprocess.Popen([*MEZZO_ARGV, "example", "service", "--master", master, "--instances", "6",
                          "--cpus", "1", "--mem", "256", "--duration", "150", "--kill-every", "20"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(cluster.master_url + "/#/")
            page.wait_for_selector("#live.on")
            time.sleep(25)
            frameworks.append(subprocess.Popen(
                [*MEZZO_ARGV, "example", "batch", "--master", master],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(35)
            page.screenshot(path=str(out / "overview.png"))
            for view in ("frameworks", "agents", "tasks", "offers", "roles", "metrics"):
                page.goto(f"{cluster.master_url}/#/{view}")
                time.sleep(2.5)
                page.screenshot(path=str(out / f"{view}.png"))
            page.goto(f"{cluster.master_url}/#/tasks")
            page.wait_for_selector("tr[data-task] a")
            page.click("tr[data-task] a")
            page.wait_for_selector("a[data-path$='/stdout']", timeout=15_000)
            time.sleep(2)
            page.screenshot(path=str(out / "task-sandbox.png"))
            browser.close()
    finally:
        for proc in frameworks:
            proc.terminate()
        for proc in frameworks:
            proc.wait(30)
print(f"screenshots in {out}")
