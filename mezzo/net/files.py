"""Virtual file access: Mesos's `/files/*` endpoints and the LIST_FILES / READ_FILE calls.

A daemon *attaches* real paths under virtual ones (the master its log file as `/master/log`;
Mesos's libprocess `files` process does the same). A virtual path resolves by its longest
attached prefix; what is below a directory attachment is reachable, and with symlinks resolved
it must stay inside the attached directory (403 otherwise), so `..` or a link in a sandbox
cannot reach the rest of the machine.

Endpoints (`add_routes`), as in Mesos's `src/files/files.cpp`:
- `/files/browse?path=P`: the entries of a directory (or the file itself) as
  `[{path, nlink, size, mtime, mode, uid, gid}]`, `path` virtual;
- `/files/read?path=P&offset=N&length=N`: `{"data": "...", "offset": N}`; no offset (or -1)
  answers the size as `offset` with no data; reads are capped at 16 pages, as Mesos's;
- `/files/download?path=P`: the raw bytes, `Content-Disposition: attachment` (`attachment`);
- `/files/debug`: the attachments, `{virtual: real}`.
Each also answers with a `.json` suffix; `jsonp` is honoured. Errors are one-line 400/403/404;
a path with a NUL byte, of PATH_MAX bytes or more or with a name over NAME_MAX bytes is 400
(`check_path`, shared with the agent's sandbox paths).
"""

from __future__ import annotations

import grp
import json
import mimetypes
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from mezzo.net.http import HTTPProblem

READ_CAP = 16 * (os.sysconf("SC_PAGESIZE") if hasattr(os, "sysconf") else 4096)
# Linux limits on a path and on one of its names; longer ones are refused with 400 (Mesos's
# realpath() fails the same way) before the file system is asked.
PATH_MAX = 4096
NAME_MAX = 255


# A file name sent as is in `filename=` (Mesos sends the bare name; so do we when it is a token).
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def attachment(name: str) -> str:
    """The `Content-Disposition` of a download of file `name`: Mesos's bare
    `attachment; filename=NAME` for a plain name; any other name (spaces, quotes, non-ASCII,
    control characters such as a newline, undecodable bytes) percent-encoded as RFC 6266's
    `filename*`, with an ASCII-safe `filename` beside it, so a header never breaks."""
    if name and set(name) <= _TOKEN:
        return f"attachment; filename={name}"
    raw = name.encode("utf-8", "surrogateescape")
    fallback = "".join(c if c in _TOKEN else "_" for c in name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(raw, safe='')}"


def check_path(path: str) -> None:
    """HTTPProblem 400 for a path with a NUL byte, of PATH_MAX bytes or more, or with a name
    longer than NAME_MAX bytes: the OS would refuse it (ENAMETOOLONG), so it is not asked."""
    if "\0" in path:
        raise HTTPProblem(400, "Path contains a NUL byte")
    if len(path.encode("utf-8", "surrogatepass")) >= PATH_MAX or any(
        len(part.encode("utf-8", "surrogatepass")) > NAME_MAX for part in path.split("/")
    ):
        raise HTTPProblem(400, "Path is too long")


@dataclass(frozen=True, slots=True)
class Entry:
    """One file as listed: its virtual path and its `lstat`."""

    path: str
    stat: os.stat_result

    def legacy_json(self) -> dict[str, Any]:
        st = self.stat
        return {
            "path": self.path, "nlink": st.st_nlink, "size": st.st_size, "mtime": st.st_mtime,
            "mode": stat.filemode(st.st_mode), "uid": user_name(st.st_uid),
            "gid": group_name(st.st_gid),
        }

    def v1_json(self) -> dict[str, Any]:
        """The v1 `FileInfo` (mode as the numeric st_mode, mtime as TimeInfo)."""
        st = self.stat
        return {
            "path": self.path, "nlink": st.st_nlink, "size": st.st_size,
            "mtime": {"nanoseconds": st.st_mtime_ns}, "mode": st.st_mode,
            "uid": user_name(st.st_uid), "gid": group_name(st.st_gid),
        }


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


class VirtualFiles:
    def __init__(self) -> None:
        self.attachments: dict[str, Path] = {}

    def attach(self, real: str | Path, virtual: str) -> None:
        self.attachments[_normal(virtual)] = Path(real)

    def detach(self, virtual: str) -> None:
        self.attachments.pop(_normal(virtual), None)

    # ------------------------------------------------------------------ lookups

    def resolve(self, virtual: str) -> Path:
        """The real path of `virtual`; HTTPProblem 400/403/404 otherwise."""
        if not virtual:
            raise HTTPProblem(400, "Expecting 'path=value' in query")
        check_path(virtual)
        parts = [p for p in _normal(virtual).split("/") if p]
        for cut in range(len(parts), -1, -1):
            prefix = "/" + "/".join(parts[:cut])
            base = self.attachments.get(prefix)
            if base is None:
                continue
            rest = parts[cut:]
            if not rest:
                real = base
            else:
                try:
                    root = base.resolve()
                    real = base.joinpath(*rest).resolve()
                except (OSError, RuntimeError, ValueError):
                    raise HTTPProblem(400, "Path cannot be resolved") from None
                if real != root and root not in real.parents:
                    raise HTTPProblem(403, "Path is outside of the attached directory")
            try:
                exists = real.exists()
            except OSError:  # the OS refuses the name (resolve(strict=False) did not ask)
                raise HTTPProblem(400, "Path cannot be resolved") from None
            if not exists:
                break
            return real
        raise HTTPProblem(404, f"No such file or directory: '{virtual}'")

    def browse(self, virtual: str) -> list[Entry]:
        real = self.resolve(virtual)
        try:
            if not real.is_dir():
                return [Entry(_normal(virtual), real.lstat())]
            base = _normal(virtual).rstrip("/")
            return [Entry(f"{base}/{child.name}", child.lstat()) for child in sorted(real.iterdir())]
        except OSError as exc:
            raise HTTPProblem(404, f"Path cannot be listed: {exc.strerror}") from None

    def read(self, virtual: str, offset: int, length: int | None) -> tuple[int, bytes]:
        """(size, data) from `offset` (at most `length`, capped at READ_CAP bytes)."""
        return read_range(self.resolve(virtual), offset, length)

    # ------------------------------------------------------------------ HTTP

    def add_routes(self, app: web.Application) -> None:
        for suffix in ("", ".json"):
            app.router.add_get("/files/browse" + suffix, self._browse)
            app.router.add_get("/files/read" + suffix, self._read)
            app.router.add_get("/files/download" + suffix, self._download)
            app.router.add_get("/files/debug" + suffix, self._debug)

    async def _browse(self, request: web.Request) -> web.Response:
        try:
            entries = self.browse(request.query.get("path", ""))
        except HTTPProblem as problem:
            return problem.response()
        return _json(request, [e.legacy_json() for e in entries])

    async def _read(self, request: web.Request) -> web.Response:
        try:
            offset = _int_query(request, "offset")
            length = _int_query(request, "length")
            if offset is None or offset == -1:
                size, _ = self.read(request.query.get("path", ""), 0, 0)
                return _json(request, {"data": "", "offset": size})
            if length == -1:
                length = None
            _, data = self.read(request.query.get("path", ""), offset, length)
        except HTTPProblem as problem:
            return problem.response()
        return _json(request, {"data": data.decode("utf-8", "replace"), "offset": offset})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        try:
            real = self.resolve(request.query.get("path", ""))
        except HTTPProblem as problem:
            return problem.response()
        if real.is_dir():
            return HTTPProblem(400, "Cannot download a directory").response()
        kind = mimetypes.guess_type(real.name)[0] or "application/octet-stream"
        return web.FileResponse(real, headers={
            "Content-Type": kind, "Content-Disposition": attachment(real.name)})

    async def _debug(self, request: web.Request) -> web.Response:
        return _json(request, {v: str(p) for v, p in sorted(self.attachments.items())})


def read_range(real: Path, offset: int, length: int | None) -> tuple[int, bytes]:
    """(size, data) of a file from `offset`: at most `length` bytes, at most READ_CAP."""
    if real.is_dir():
        raise HTTPProblem(400, "Cannot read a directory")
    try:
        with open(real, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if offset >= size or length == 0:
                return size, b""
            f.seek(offset)
            return size, f.read(min(size - offset if length is None else length, READ_CAP))
    except OSError as exc:
        raise HTTPProblem(404, f"Path cannot be read: {exc.strerror}") from None


def _normal(virtual: str) -> str:
    return "/" + virtual.strip("/") if virtual.strip("/") else "/"


def _int_query(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise HTTPProblem(400, f"Failed to parse {name}: '{raw}' is not a number") from None
    if value < -1:
        raise HTTPProblem(400, f"Negative {name} provided: {value}")
    return value


def _json(request: web.Request, payload: Any) -> web.Response:
    text = json.dumps(payload)
    jsonp = request.query.get("jsonp")
    if jsonp:
        return web.Response(text=f"{jsonp}({text});", content_type="text/javascript")
    return web.Response(text=text, content_type="application/json")
