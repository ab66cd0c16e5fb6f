"""The agent's operator calls that take a payload: GET_LOGGING_LEVEL, SET_LOGGING_LEVEL (with
its duration), LIST_FILES, READ_FILE (sandbox paths, with the same rules as `/files/*`) and
GET_OPERATIONS (no operations exist on this agent: reservations and volumes are not offered
yet, so the list is truly empty). The rest of the agent's operator API is
`mezzo.agent.http.ReadEndpoints.operator_result`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from mezzo.api import operator as op
from mezzo.api.codec import encode
from mezzo.api.common import TimeInfo
from mezzo.net.files import READ_CAP, group_name, user_name
from mezzo.net.http import HTTPProblem, json_response, text_response
from mezzo.net.logging_level import LoggingLevel

_T = op.CallType


class AgentOperatorExtras:
    SERVED = frozenset({_T.GET_LOGGING_LEVEL, _T.SET_LOGGING_LEVEL, _T.LIST_FILES, _T.READ_FILE,
                        _T.GET_OPERATIONS})

    def __init__(self, resolve: Callable[[str | None], Path], logging: LoggingLevel) -> None:
        self.resolve = resolve
        self.logging = logging

    def call(self, call: op.Call) -> web.Response:
        try:
            match call.type:
                case _T.GET_LOGGING_LEVEL:
                    resp = op.Response(type=_T.GET_LOGGING_LEVEL,
                                       get_logging_level=op.GetLoggingLevel(level=self.logging.level))
                case _T.SET_LOGGING_LEVEL:
                    assert call.set_logging_level is not None
                    request = call.set_logging_level
                    self.logging.set(request.level, request.duration.nanoseconds / 1e9)
                    return web.Response(status=200)
                case _T.LIST_FILES:
                    assert call.list_files is not None
                    resp = op.Response(type=_T.LIST_FILES, list_files=op.ListFilesResponse(
                        file_infos=self.list_files(call.list_files.path)))
                case _T.READ_FILE:
                    assert call.read_file is not None
                    size, data = self.read_file(call.read_file)
                    resp = op.Response(type=_T.READ_FILE, read_file=op.ReadFileResponse(size=size, data=data))
                case _T.GET_OPERATIONS:
                    resp = op.Response(type=_T.GET_OPERATIONS, get_operations=op.GetOperations())
                case _:
                    return text_response(501, f"Call {call.type} is not implemented by this agent")
        except HTTPProblem as problem:
            return problem.response()
        return json_response(encode(resp))

    def list_files(self, raw: str) -> list[op.FileInfo]:
        path = self.resolve(raw)
        try:
            entries = sorted(path.iterdir()) if path.is_dir() else [path]
            return [_file_info(p) for p in entries]
        except OSError as exc:
            raise HTTPProblem(404, f"Path cannot be listed: {exc.strerror}") from None

    def read_file(self, request: op.ReadFile) -> tuple[int, bytes]:
        if request.offset < 0 or (request.length is not None and request.length < 0):
            raise HTTPProblem(400, "'offset' and 'length' must not be negative")
        path = self.resolve(request.path)
        if path.is_dir():
            raise HTTPProblem(400, "Cannot read a directory")
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if request.offset >= size or request.length == 0:
                    return size, b""
                f.seek(request.offset)
                wanted = size - request.offset if request.length is None else request.length
                return size, f.read(min(wanted, READ_CAP))
        except OSError as exc:
            raise HTTPProblem(404, f"Path cannot be read: {exc.strerror}") from None


def _file_info(path: Path) -> op.FileInfo:
    st = path.lstat()
    return op.FileInfo(path=str(path), nlink=st.st_nlink, size=st.st_size,
                       mtime=TimeInfo(nanoseconds=st.st_mtime_ns), mode=st.st_mode,
                       uid=user_name(st.st_uid), gid=group_name(st.st_gid))

