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


async def ping_line(request: ApiRequest) -> bytes:
    """A ping with the host load, as released GNS3 1.5.x sends it (the seed's ping had `action` only)."""
    return encode_event({**PING, "event": await request.server.host_load.current()})


async def notifications(request: ApiRequest) -> web.StreamResponse:
    project = request.project
    listener = project.notifications.listen()
    response = web.StreamResponse(status=200, headers=request.headers(JSON_TYPE))
    response.enable_chunked_encoding()
    try:
        await response.prepare(request.raw)
        await response.write(await ping_line(request))
        while True:
            try:
                line = await asyncio.wait_for(listener.queue.get(), PING_INTERVAL)
            except TimeoutError:
                line = await ping_line(request)  # the GNS3 client reads only when bytes arrive: never skip it
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
