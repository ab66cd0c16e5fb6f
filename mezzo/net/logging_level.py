"""Toggling a daemon's log verbosity for a while: `/logging/toggle`, GET_LOGGING_LEVEL and
SET_LOGGING_LEVEL (spec §7.1), with Mesos's semantics (libprocess `src/logging.cpp`).

Mesos speaks glog *verbosity*: 0 normally, 1-3 more and more detail. Here 0 is the level the
daemon was started with (`--logging_level`), 1 and 2 turn mezzo's own loggers to DEBUG, and 3
or more also the libraries' (aiohttp, kazoo). A level set for a duration goes back to 0 when
the duration is over, unless another toggle came in between (its own timer then decides).

`/logging/toggle` without parameters answers the current level; with `level` and `duration`
it sets them (400 with a one-line message for a missing, non-numeric or negative one).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from mezzo.api import operator as op
from mezzo.api.codec import encode
from mezzo.core.durations import parse_duration
from mezzo.core.errors import ConfigError
from mezzo.net.http import HTTPProblem, json_response, text_response

LIBRARY_LOGGERS = ("aiohttp", "kazoo")
_ORIGINAL = 0  # the verbosity a daemon starts with
# Mesos's bounds: the level is a uint32, a duration at most int64 nanoseconds (~292 years).
MAX_LEVEL = 2**32 - 1
MAX_DURATION_SECONDS = (2**63 - 1) / 1e9


class LoggingLevel:
    def __init__(self, logger: str = "mezzo") -> None:
        self.logger = logger
        self.level = _ORIGINAL
        # Each logger's level as the daemon configured it, kept at the first change.
        self._saved: dict[str, int] = {}
        self._revert: asyncio.TimerHandle | None = None

    def set(self, level: int, duration: float) -> None:
        """Use verbosity `level` for `duration` seconds, then go back to 0."""
        if level < 0 or level > MAX_LEVEL:
            raise HTTPProblem(400, f"Invalid level '{level}'")
        if not duration <= MAX_DURATION_SECONDS:  # also NaN
            raise HTTPProblem(400, f"Invalid duration '{duration}': at most {MAX_DURATION_SECONDS:.0f} seconds")
        if self._revert is not None:
            self._revert.cancel()
            self._revert = None
        self._apply(level)
        if level != _ORIGINAL:
            loop = asyncio.get_running_loop()
            self._revert = loop.call_later(max(duration, 0.0), self._apply, _ORIGINAL)

    def _apply(self, level: int) -> None:
        self.level = level
        names = [self.logger, *(LIBRARY_LOGGERS if level >= 3 else ())]
        for name in [self.logger, *LIBRARY_LOGGERS]:
            logger = logging.getLogger(name)
            self._saved.setdefault(name, logger.level)
            logger.setLevel(logging.DEBUG if name in names and level > 0 else self._saved[name])

    def answer(self, call: op.Call) -> web.Response | None:
        """GET_LOGGING_LEVEL and SET_LOGGING_LEVEL of the operator API (master and agent);
        None for any other call."""
        if call.type == op.CallType.GET_LOGGING_LEVEL:
            resp = op.Response(type=op.CallType.GET_LOGGING_LEVEL,
                               get_logging_level=op.GetLoggingLevel(level=self.level))
            return json_response(encode(resp))
        if call.type == op.CallType.SET_LOGGING_LEVEL:
            assert call.set_logging_level is not None  # the decoder requires the payload
            request = call.set_logging_level
            try:
                self.set(request.level, request.duration.nanoseconds / 1e9)
            except HTTPProblem as problem:
                return problem.response()
            return web.Response(status=200)
        return None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/logging/toggle", self.toggle)

    async def toggle(self, request: web.Request) -> web.Response:
        level = request.query.get("level")
        duration = request.query.get("duration")
        if level is None and duration is None:
            return web.Response(text=f"{self.level}\n")
        if duration is None:
            return text_response(400, "Expecting 'duration=value' in query")
        if level is None:
            return text_response(400, "Expecting 'level=value' in query")
        try:
            value = int(level)
        except ValueError:
            return text_response(400, f"Failed to convert '{level}' to number")
        try:
            seconds = parse_duration(duration)
        except ConfigError as exc:
            return text_response(400, f"Failed to parse duration: {exc}")
        try:
            self.set(value, seconds)
        except HTTPProblem as problem:
            return problem.response()
        return web.Response(status=200)
