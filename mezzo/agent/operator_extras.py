"""The agent's operator calls that take a payload: GET_LOGGING_LEVEL, SET_LOGGING_LEVEL (with
its duration), LIST_FILES, READ_FILE (sandbox paths and the agent's log `/slave/log`, with the
same rules as `/files/*`) and GET_OPERATIONS (the operations applied here whose terminal
status the master has not acknowledged yet, `mezzo.agent.operations`). The rest of the agent's
operator API is `mezzo.agent.http.ReadEndpoints.operator_result`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from mezzo.api import operator as op
from mezzo.api.codec import convert, encode
from mezzo.api.common import Operation
from mezzo.net.files import Entry, read_range
from mezzo.net.http import HTTPProblem, json_response, text_response
from mezzo.net.logging_level import LoggingLevel

_T = op.CallType


class AgentOperatorExtras:
    SERVED = frozenset({_T.GET_LOGGING_LEVEL, _T.SET_LOGGING_LEVEL, _T.LIST_FILES, _T.READ_FILE,
                        _T.GET_OPERATIONS})

    def __init__(self, resolve: Callable[[str | None], Path], logging: LoggingLevel,
                 operations: Callable[[], list[Operation]] = list,
                 shown: Callable[[str | None], Callable[[Path], str]] = lambda raw: str) -> None:
        # `resolve`: a requested path -> the real one (HTTPProblem if not served); `shown`:
        # requested path -> how LIST_FILES shows each real path listed (virtual ones stay so).
        self.resolve = resolve
        self.shown = shown
        self.logging = logging
        self.operations = operations

    def call(self, call: op.Call) -> web.Response:
        logging_answer = self.logging.answer(call)
        if logging_answer is not None:
            return logging_answer
        try:
            match call.type:
                case _T.LIST_FILES:
                    assert call.list_files is not None
                    resp = op.Response(type=_T.LIST_FILES, list_files=op.ListFilesResponse(
                        file_infos=self.list_files(call.list_files.path)))
                case _T.READ_FILE:
                    assert call.read_file is not None
                    size, data = self.read_file(call.read_file)
                    resp = op.Response(type=_T.READ_FILE, read_file=op.ReadFileResponse(size=size, data=data))
                case _T.GET_OPERATIONS:
                    resp = op.Response(type=_T.GET_OPERATIONS, get_operations=op.GetOperations(
                        operations=self.operations()))
                case _:
                    return text_response(501, f"Call {call.type} is not implemented by this agent")
        except HTTPProblem as problem:
            return problem.response()
        return json_response(encode(resp))

    def list_files(self, raw: str) -> list[op.FileInfo]:
        path = self.resolve(raw)
        try:
            entries = sorted(path.iterdir()) if path.is_dir() else [path]
            shown = self.shown(raw)
            return [_file_info(p, shown(p)) for p in entries]
        except OSError as exc:
            raise HTTPProblem(404, f"Path cannot be listed: {exc.strerror}") from None

    def read_file(self, request: op.ReadFile) -> tuple[int, bytes]:
        if request.offset < 0 or (request.length is not None and request.length < 0):
            raise HTTPProblem(400, "'offset' and 'length' must not be negative")
        return read_range(self.resolve(request.path), request.offset, request.length)


def _file_info(path: Path, shown: str) -> op.FileInfo:
    return convert(Entry(shown, path.lstat()).v1_json(), op.FileInfo)

