"""The fetcher: `CommandInfo.uris` into a sandbox before its executor starts (Mesos's fetcher).

Blocking code (downloads, copies, archives): the agent's shell runs `Fetcher.fetch` in a worker
thread, never on its event loop, after creating the sandbox and before launching the container;
a `FetchError` fails the launch (TASK_FAILED / REASON_CONTAINER_LAUNCH_FAILED, the reason in the
message). What is fetched is decided by the agent core (`ContainerLaunch.uris`).

Per URI, as Mesos does (docs/fetcher.md):

- sources: an absolute local path, `file://`, `http://` and `https://` (redirects followed);
- the name in the sandbox is the URI's last path segment, or `output_file` (a relative path,
  directories created);
- `executable`: chmod 755, and no extraction; otherwise, with `extract` (default true), archives
  recognised by their extension (.tar, .tar.gz, .tgz, .tar.bz2, .tbz2, .tar.xz, .txz, .zip, .gz)
  are unpacked into the sandbox (members may not leave it). Without the cache the archive stays
  next to what it contained; from the cache only the extracted files appear;
- `cache`: the download is kept in `--fetcher_cache_dir` per user and URI and reused; the cache
  holds at most `--fetcher_cache_size` bytes, evicting the least recently used files. A file
  larger than the whole cache is fetched directly into the sandbox (Mesos's fallback). The
  cache is emptied when the agent starts (Mesos does the same).

Progress and errors are appended to the sandbox's `stdout` / `stderr`, where the executor's own
output follows (Mesos writes the fetcher's output there too).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import shutil
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from mezzo.agent.containerizer.paths import stderr_path, stdout_path
from mezzo.api.common import URI

DEFAULT_CACHE_SIZE = 2 * 1024**3  # Mesos's --fetcher_cache_size default (2GB)
DEFAULT_CACHE_DIR = "/tmp/mesos/fetch"  # Mesos's --fetcher_cache_dir default
_TIMEOUT = 60.0  # seconds without progress before an HTTP fetch fails

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_ = (bz2, lzma)  # tarfile needs these codecs; importing them fails early if Python lacks them


class FetchError(Exception):
    """A URI could not be fetched; the message says which and why."""


class Fetcher:
    """Fetches URIs into sandboxes through one LRU download cache (thread-safe)."""

    def __init__(self, cache_dir: str | Path, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_size = cache_size
        self._lock = threading.Lock()  # one fetch through the cache at a time
        self._entries: OrderedDict[Path, int] = OrderedDict()  # cache file -> size, LRU first
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    @property
    def cached_bytes(self) -> int:
        return sum(self._entries.values())

    def fetch(self, uris: Sequence[URI], sandbox: Path, user: str | None = None) -> None:
        """Fetch every URI into `sandbox`, in order; the first failure raises FetchError."""
        if not uris:
            return
        with open(stdout_path(sandbox), "a") as out, open(stderr_path(sandbox), "a") as err:
            for uri in uris:
                try:
                    path = self._fetch_one(uri, sandbox, user, out)
                except FetchError as e:
                    err.write(f"Failed to fetch '{uri.value}': {e}\n")
                    raise FetchError(f"Failed to fetch '{uri.value}': {e}") from None
                out.write(f"Fetched '{uri.value}' to '{path}'\n")
                out.flush()

    # ------------------------------------------------------------------ one URI

    def _fetch_one(self, uri: URI, sandbox: Path, user: str | None, out) -> Path:
        name = _target_name(uri)
        target = (sandbox / name).resolve()
        if not target.is_relative_to(sandbox.resolve()):
            raise FetchError(f"output_file '{name}' leaves the sandbox")
        target.parent.mkdir(parents=True, exist_ok=True)
        executable = bool(uri.executable)
        extract = not executable and uri.extract is not False and _is_archive(target.name)
        cached = self._through_cache(uri, user, out) if uri.cache and self.cache_size > 0 else None
        if cached is not None:
            if extract:
                _extract(cached, target.name, target.parent)  # only the contents, as Mesos
            else:
                shutil.copyfile(cached, target)
        else:
            _download(uri.value, target)
            if extract:
                _extract(target, target.name, target.parent)
        if executable:
            target.chmod(0o755)
        _give_to(user, sandbox, target)
        return target

    def _through_cache(self, uri: URI, user: str | None, out) -> Path | None:
        """The cache file of (user, URI), downloaded if new; None when it does not fit."""
        key = hashlib.sha256(f"{user or ''}\0{uri.value}".encode()).hexdigest()
        path = self.cache_dir / (user or "_") / key / _target_name(uri).replace("/", "_")
        with self._lock:
            if path in self._entries:
                self._entries.move_to_end(path)
                out.write(f"Using the cached copy of '{uri.value}'\n")
                return path
            path.parent.mkdir(parents=True, exist_ok=True)
            _download(uri.value, path)
            size = path.stat().st_size
            if size > self.cache_size:
                out.write(f"'{uri.value}' ({size} bytes) exceeds the fetcher cache; not cached\n")
                shutil.rmtree(path.parent, ignore_errors=True)
                return None
            while self._entries and self.cached_bytes + size > self.cache_size:
                evicted, _size = self._entries.popitem(last=False)
                shutil.rmtree(evicted.parent, ignore_errors=True)
            self._entries[path] = size
            out.write(f"Downloaded '{uri.value}' into the fetcher cache\n")
            return path


def _target_name(uri: URI) -> str:
    if uri.output_file:
        name = uri.output_file
        if os.path.isabs(name) or ".." in Path(name).parts:
            raise FetchError(f"output_file '{name}' must be a relative path inside the sandbox")
        return name
    parsed = urllib.parse.urlparse(uri.value)
    base = os.path.basename(urllib.parse.unquote(parsed.path if parsed.scheme else uri.value))
    if not base:
        raise FetchError("the URI names no file (set output_file)")
    return base


def _download(value: str, target: Path) -> None:
    parsed = urllib.parse.urlparse(value)
    if parsed.scheme in ("", "file"):
        source = urllib.parse.unquote(parsed.path) if parsed.scheme else value
        if not os.path.isabs(source):
            raise FetchError("a local path must be absolute")
        try:
            shutil.copyfile(source, target)
        except OSError as e:
            raise FetchError(f"cannot copy '{source}': {e.strerror or e}") from None
        return
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"unsupported URI scheme '{parsed.scheme}' (file, http and https are)")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(value, timeout=_TIMEOUT) as response, open(target, "wb") as f:
            shutil.copyfileobj(response, f, 1 << 20)
    except urllib.error.HTTPError as e:
        raise FetchError(f"HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise FetchError(f"download failed after {time.monotonic() - started:.1f}s: {reason}") from None


def _is_archive(name: str) -> bool:
    return name.endswith((*_TAR_SUFFIXES, ".zip", ".gz"))


def _extract(archive: Path, name: str, into: Path) -> None:
    try:
        if name.endswith(_TAR_SUFFIXES):
            with tarfile.open(archive) as tar:
                tar.extractall(into, filter="data")  # refuses members leaving `into`
        elif name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():
                    if not (into / member).resolve().is_relative_to(into.resolve()):
                        raise FetchError(f"archive member '{member}' leaves the sandbox")
                z.extractall(into)
        else:  # a single gzip'ed file: x.gz -> x
            with gzip.open(archive, "rb") as src, open(into / name.removesuffix(".gz"), "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise FetchError(f"cannot extract '{name}': {e}") from None


def _give_to(user: str | None, sandbox: Path, target: Path) -> None:
    """Fetched files belong to the task's user when the agent is root (as Mesos chowns)."""
    if not user or os.geteuid() != 0:
        return
    try:
        for path in sandbox.rglob("*"):  # the target, or what was extracted from it
            shutil.chown(path, user)
    except (LookupError, OSError) as e:
        raise FetchError(f"cannot give the fetched files to user '{user}': {e}") from None
