"""URL routing with Mesos's conventions (libprocess): a trailing `/` is ignored.

`/master/frameworks/` reaches `/master/frameworks`, `/api/v1/scheduler/` the scheduler API, on
every endpoint of master and agent, without a redirect (a redirect would make clients repeat
POST bodies, and Mesos answers in place). The path without the slash wins when it has a
route, even where the slashed path would match a wildcard route (`/api/v1/scheduler/` is the
scheduler API, not the operator API's `/api/v1/{anything}`); otherwise the request is routed
as sent.
`new_app` (mezzo.net.request) installs `ignore_trailing_slash` as the innermost middleware of
every application, so outer middlewares (the master's leader gate) see the request as sent.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler


@web.middleware
async def ignore_trailing_slash(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.rel_url.path
    if len(path) <= 1 or not path.endswith("/"):
        return await handler(request)
    stripped = request.clone(rel_url=request.rel_url.with_path(path.rstrip("/") or "/"))
    match = await request.app.router.resolve(stripped)
    if match.http_exception is not None:
        if match.http_exception.status == 404 or request.match_info.http_exception is None:
            return await handler(request)
        raise match.http_exception  # e.g. 405: the endpoint exists, the method does not
    match.add_app(request.app)
    match.freeze()
    # The handler reads its path parameters from the match; aiohttp sets it only while
    # routing, which happened for the path with the slash.
    stripped._match_info = match  # type: ignore[attr-defined]
    return await match.handler(stripped)
