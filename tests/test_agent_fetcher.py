"""The fetcher: real files, a real HTTP server on loopback (port 0), real archives; then a real
master and agent fetching a command task's URIs before it runs."""

from __future__ import annotations

import http.server
import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mezzo.agent.fetcher import Fetcher, FetchError
from mezzo.api.common import URI
from mezzo.testing.agent_harness import (
    MiniScheduler,
    Proc,
    command_task,
    kill_leftovers,
    start_agent,
    start_master,
)


class Server:
    """Serves files from a directory and counts the GETs of each path."""

    def __init__(self, root: Path) -> None:
        self.hits: dict[str, int] = {}
        hits = self.hits

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a: Any, **kw: Any) -> None:
                super().__init__(*a, directory=str(root), **kw)

            def do_GET(self) -> None:
                hits[self.path] = hits.get(self.path, 0) + 1
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "files"
    root.mkdir()
    (root / "hello.txt").write_text("hello\n")
    (root / "run.sh").write_text("#!/bin/sh\necho ran-script\n")
    for suffix, mode in [(".tar", "w"), (".tar.gz", "w:gz"), (".tar.bz2", "w:bz2"), (".tar.xz", "w:xz")]:
        with tarfile.open(root / f"bundle{suffix}", mode) as tar:
            data = f"inside {suffix}\n".encode()
            info = tarfile.TarInfo(f"pkg/inner{suffix.replace('.', '-')}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(root / "bundle.zip", "w") as z:
        z.writestr("zipped/a.txt", "from zip\n")
    (root / "big.bin").write_bytes(b"x" * 3000)
    (root / "other.bin").write_bytes(b"y" * 3000)
    return root


@pytest.fixture
def server(files: Path) -> Iterator[Server]:
    s = Server(files)
    try:
        yield s
    finally:
        s.close()


def sandbox(tmp_path: Path, name: str = "sb") -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def test_local_paths_file_urls_http_and_output_file(tmp_path: Path, files: Path, server: Server) -> None:
    box = sandbox(tmp_path)
    Fetcher(tmp_path / "cache").fetch([
        URI(value=str(files / "hello.txt")),
        URI(value=f"file://{files / 'run.sh'}", executable=True),
        URI(value=f"{server.url}/hello.txt?v=1", output_file="conf/greeting"),
    ], box)
    assert (box / "hello.txt").read_text() == "hello\n"
    assert (box / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (box / "conf" / "greeting").read_text() == "hello\n"
    log = (box / "stdout").read_text()
    assert f"Fetched '{server.url}/hello.txt?v=1'" in log and "conf/greeting" in log


def test_archives_are_extracted_unless_told_not_to(tmp_path: Path, server: Server) -> None:
    box = sandbox(tmp_path)
    names = ["bundle.tar", "bundle.tar.gz", "bundle.tar.bz2", "bundle.tar.xz", "bundle.zip"]
    Fetcher(tmp_path / "cache").fetch(
        [URI(value=f"{server.url}/{n}") for n in names]
        + [URI(value=f"{server.url}/bundle.tar.gz", output_file="kept.tar.gz", extract=False)],
        box,
    )
    for suffix in [".tar", ".tar.gz", ".tar.bz2", ".tar.xz"]:
        assert (box / "pkg" / f"inner{suffix.replace('.', '-')}.txt").read_text() == f"inside {suffix}\n"
        assert (box / f"bundle{suffix}").exists()  # without the cache the archive stays
    assert (box / "zipped" / "a.txt").read_text() == "from zip\n"
    assert (box / "kept.tar.gz").exists()


def test_failures_name_the_uri_and_the_reason(tmp_path: Path, server: Server) -> None:
    box = sandbox(tmp_path)
    fetcher = Fetcher(tmp_path / "cache")
    with pytest.raises(FetchError, match=r"Failed to fetch '.*/missing.txt': HTTP 404"):
        fetcher.fetch([URI(value=f"{server.url}/missing.txt")], box)
    assert "HTTP 404" in (box / "stderr").read_text()
    for uri, words in [
        (URI(value="relative/path"), "must be absolute"),
        (URI(value="ftp://h/x"), "unsupported URI scheme 'ftp'"),
        (URI(value=str(tmp_path / "nope")), "cannot copy"),
        (URI(value=f"{server.url}/hello.txt", output_file="../escape"), "relative path inside"),
        (URI(value="http://127.0.0.1:1/x"), "download failed"),
    ]:
        with pytest.raises(FetchError, match=words):
            fetcher.fetch([uri], box)
    (tmp_path / "bad.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(FetchError, match=r"cannot extract 'bad\.tar\.gz'"):
        fetcher.fetch([URI(value=str(tmp_path / "bad.tar.gz"))], box)


def test_the_cache_downloads_once_per_user_and_evicts_the_least_recently_used(
    tmp_path: Path, server: Server
) -> None:
    fetcher = Fetcher(tmp_path / "cache", cache_size=7000)
    big, other, tgz = (URI(value=f"{server.url}/{n}", cache=True)
                       for n in ("big.bin", "other.bin", "bundle.tar.gz"))
    first, second = sandbox(tmp_path, "one"), sandbox(tmp_path, "two")
    fetcher.fetch([big, tgz], first)
    fetcher.fetch([big, tgz], second)
    assert server.hits == {"/big.bin": 1, "/bundle.tar.gz": 1}
    assert (second / "big.bin").read_bytes() == b"x" * 3000
    # From the cache only the extracted files appear in the sandbox.
    assert (second / "pkg" / "inner-tar-gz.txt").exists() and not (second / "bundle.tar.gz").exists()
    fetcher.fetch([big], sandbox(tmp_path, "three"), user="nobody")  # another user's entry
    assert server.hits["/big.bin"] == 2
    # LRU order now: big, tgz, big (nobody); `other` needs the space of the oldest (big),
    # which is then fetched again and pushes out tgz and nobody's copy.
    fetcher.fetch([other, big], sandbox(tmp_path, "four"))
    assert server.hits["/big.bin"] == 3 and fetcher.cached_bytes == 6000
    fetcher.fetch([big, other], sandbox(tmp_path, "five"))
    assert server.hits["/big.bin"] == 3 and server.hits["/other.bin"] == 1  # both still cached
    fetcher.fetch([tgz], sandbox(tmp_path, "six"))
    assert server.hits["/bundle.tar.gz"] == 2  # evicted, fetched again
    fetcher.fetch([big], sandbox(tmp_path, "seven"), user="nobody")
    assert server.hits["/big.bin"] == 4  # nobody's copy was evicted too


def test_a_file_larger_than_the_cache_bypasses_it(tmp_path: Path, server: Server) -> None:
    fetcher = Fetcher(tmp_path / "cache", cache_size=100)
    box = sandbox(tmp_path)
    fetcher.fetch([URI(value=f"{server.url}/big.bin", cache=True)], box)
    assert (box / "big.bin").stat().st_size == 3000 and fetcher.cached_bytes == 0
    assert "exceeds the fetcher cache" in (box / "stdout").read_text()


# ------------------------------------------------------------------ a real master and agent


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Proc, Proc]]:
    master = start_master(tmp_path)
    agent = start_agent(tmp_path, master.address, "--resources", "cpus:4;mem:4096",
                        "--fetcher_cache_dir", str(tmp_path / "fetchcache"),
                        "--fetcher_cache_size", "1MB")
    try:
        yield master, agent
    finally:
        agent.kill()
        kill_leftovers(tmp_path / "agent")
        master.kill()


@pytest.mark.slow
async def test_tasks_run_with_their_fetched_uris_or_fail_before_starting(
    cluster: tuple[Proc, Proc], server: Server, tmp_path: Path
) -> None:
    master, _agent = cluster
    marker = tmp_path / "ran"
    async with MiniScheduler(master.url) as s:
        ok = command_task("ok", './run.sh > out && grep -q "inside .tar.gz" pkg/inner-tar-gz.txt')
        ok["command"]["uris"] = [
            {"value": f"{server.url}/run.sh", "executable": True},
            {"value": f"{server.url}/bundle.tar.gz", "cache": True},
        ]
        bad = command_task("bad", f"touch {marker}")
        bad["command"]["uris"] = [{"value": f"{server.url}/missing.tar.gz"}]
        await s.launch([ok, bad])
        await s.wait_state("ok", "TASK_FINISHED")
        failed = await s.wait_state("bad", "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED", failed
        assert "Failed to fetch all URIs" in failed["message"]
        assert "missing.tar.gz': HTTP 404" in failed["message"]
        assert s.states("bad") == ["TASK_FAILED"]
    assert not marker.exists()
    [out] = {p.resolve() for p in (tmp_path / "agent").rglob("runs/*/out")}  # runs/latest too
    assert out.read_text() == "ran-script\n"
    assert "Fetched" in (out.parent / "stdout").read_text()
