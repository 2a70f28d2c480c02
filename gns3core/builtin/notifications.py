"""GET /v1/projects/{project_id}/notifications: the project's event stream, one JSON object per line."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from gns3core.hookspecs import hookimpl
from gns3core.notifications import PING, encode_event
from gns3core.registry import Registry
from gns3core.routing import JSON_TYPE, ApiRequest, Route

PING_INTERVAL = 5.0
PING_LINE = encode_event(PING)


async def notifications(request: ApiRequest) -> web.StreamResponse:
    project = request.project
    listener = project.notifications.listen()
    response = web.StreamResponse(status=200, headers=request.headers(JSON_TYPE))
    response.enable_chunked_encoding()
    try:
        await response.prepare(request.raw)
        await response.write(PING_LINE)
        while True:
            try:
                line = await asyncio.wait_for(listener.queue.get(), PING_INTERVAL)
            except TimeoutError:
                line = PING_LINE  # the GNS3 client reads only when bytes arrive: never skip the keep-alive
            if line is None:
                break
            await response.write(line)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away
    finally:
        project.notifications.forget(listener)
    return response


@hookimpl
def gns3_register(registry: Registry) -> None:
    registry.add_routes([
        Route("GET", "/v1/projects/{project_id}/notifications", notifications, 200,
              description="Receive the project's notifications as a stream of JSON lines"),
    ])
