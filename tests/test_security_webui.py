"""The web UI of a secured master (issue 15): the browser authenticates (HTTP Basic) when the
page subscribes to the operator event stream, and the page shows only what that principal may
view (view_frameworks), live. Debian's chromium driven by Playwright, a real `mezzo local`
cluster, frameworks of two principals."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mezzo.security.authentication import basic_header
from mezzo.testing.agent_harness import MiniScheduler
from mezzo.testing.local_cluster import ClusterSpec, LocalCluster

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (scripts/install-test-deps.sh)", allow_module_level=True)

CREDENTIALS = "ops 0ps\nalice wonderland\nbob builder\nagent ag3nt\n"
ALICE = {"Authorization": basic_header("alice", "wonderland")}
BOB = {"Authorization": basic_header("bob", "builder")}
ACLS = {
    "permissive": False,
    "register_frameworks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}],
    "register_agents": [{"principals": {"values": ["agent"]}, "agents": {"type": "ANY"}}],
    "view_frameworks": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
                        {"principals": {"values": ["bob"]}, "users": {"values": ["bob"]}}],
    "view_tasks": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
    "get_endpoints": [{"principals": {"type": "ANY"}, "paths": {"type": "ANY"}}],
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    (tmp_path / "credentials").write_text(CREDENTIALS)
    (tmp_path / "agent").write_text("agent ag3nt\n")
    (tmp_path / "acls.json").write_text(json.dumps(ACLS))
    realms = [f"--{flag}=true" for flag in ("authenticate_http_frameworks", "authenticate_agents",
                                            "authenticate_http_readonly", "authenticate_http_readwrite")]
    spec = ClusterSpec(agents=1, work_dir=str(tmp_path / "cluster"),
                       master_args=["--credentials", str(tmp_path / "credentials"),
                                    "--acls", str(tmp_path / "acls.json"), *realms],
                       agent_args=["--credential", str(tmp_path / "agent")],
                       master_headers={"Authorization": basic_header("ops", "0ps")})
    with LocalCluster(spec) as c:
        c.wait_for_agents(1, 30)
        yield c


class Frameworks:
    """Two frameworks (alice's, user alice; bob's, user bob) subscribed from a thread."""

    def __init__(self, master_url: str) -> None:
        self.master_url = master_url
        self.ids: dict[str, str] = {}
        self.ready = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        async with MiniScheduler(self.master_url, name="alice-fw", headers=ALICE,
                                 framework_info={"user": "alice"}) as alice, \
                MiniScheduler(self.master_url, name="bob-fw", headers=BOB,
                              framework_info={"user": "bob"}) as bob:
            assert alice.framework_id is not None and bob.framework_id is not None
            self.ids = {"alice": alice.framework_id, "bob": bob.framework_id}
            self.ready.set()
            while not self.done.is_set():
                await asyncio.sleep(0.1)

    def __enter__(self) -> Frameworks:
        self.thread.start()
        assert self.ready.wait(30), "the frameworks did not subscribe"
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(30)


@pytest.mark.parametrize(("user", "secret", "sees_alice"), [("bob", "builder", False), ("ops", "0ps", True)])
def test_the_ui_shows_what_its_viewer_may_see(cluster: LocalCluster, user: str, secret: str,
                                              sees_alice: bool) -> None:
    with Frameworks(cluster.master_url) as frameworks, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            context = browser.new_context(http_credentials={"username": user, "password": secret})
            page = context.new_page()
            page.goto(cluster.master_url + "/#/frameworks")
            page.wait_for_selector("#live.on", timeout=15_000)
            page.wait_for_selector(f'tr[data-framework="{frameworks.ids["bob"]}"]', timeout=15_000)
            alice_row = page.query_selector(f'tr[data-framework="{frameworks.ids["alice"]}"]')
            if sees_alice:
                assert alice_row is None or alice_row.is_visible()
                page.wait_for_selector(f'tr[data-framework="{frameworks.ids["alice"]}"]', timeout=15_000)
            else:
                assert alice_row is None
                assert "alice-fw" not in page.inner_text("body")
        finally:
            browser.close()
