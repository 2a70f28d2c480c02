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


PING_DUE = b""  # queued by the ping timer: "send a ping now" (an empty line is never an event)


async def notifications(request: ApiRequest) -> web.StreamResponse:
    """Stream the project's events, and a ping after every `PING_INTERVAL` without one.

    With a thousand listeners every event wakes a thousand of these loops, so each wake-up costs as little as it
    can: a plain queue read (no timeout task per read; a timer queues the ping instead), and whatever is queued by
    then goes out in one write.
    """
    project = request.project
    listener = project.notifications.listen()
    response = web.StreamResponse(status=200, headers=request.headers(JSON_TYPE))
    response.enable_chunked_encoding()
    loop = asyncio.get_running_loop()
    queue = listener.queue
    last_sent = loop.time()
    timer: asyncio.TimerHandle | None = None

    def ping_if_quiet() -> None:
        nonlocal timer
        quiet = loop.time() - last_sent
        if quiet >= PING_INTERVAL - 0.05:
            listener.offer(PING_DUE)
            timer = loop.call_later(PING_INTERVAL, ping_if_quiet)
        else:
            timer = loop.call_later(PING_INTERVAL - quiet, ping_if_quiet)

    try:
        await response.prepare(request.raw)
        await response.write(await ping_line(request))
        last_sent = loop.time()
        timer = loop.call_later(PING_INTERVAL, ping_if_quiet)
        ended = False
        while not ended:
            lines = [await queue.get()]
            while not queue.empty() and lines[-1] is not None:
                lines.append(queue.get_nowait())
            if lines[-1] is None:
                ended = True
                lines.pop()
            chunk = b"".join([await ping_line(request) if line == PING_DUE else line for line in lines])
            if chunk:
                await response.write(chunk)
                last_sent = loop.time()
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away
    finally:
        if timer is not None:
            timer.cancel()
        project.notifications.forget(listener)
    return response


@hookimpl
def gns3_register(registry: Registry) -> None:
    registry.add_routes([
        Route("GET", "/v1/projects/{project_id}/notifications", notifications, 200,
              description="Receive the project's notifications as a stream of JSON lines"),
    ])
