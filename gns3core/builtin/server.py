"""Server-wide operations reserved to a local server: configuration reload and shutdown."""

from __future__ import annotations

import asyncio
import logging

from gns3core.errors import Forbidden
from gns3core.hookspecs import hookimpl
from gns3core.registry import Registry
from gns3core.routing import ApiRequest, Route

log = logging.getLogger(__name__)


async def reload_config(request: ApiRequest) -> None:
    if not request.server.local:
        raise Forbidden("You can only reload the configuration for a local server")
    request.server.reload_config()


async def shutdown(request: ApiRequest) -> None:
    server = request.server
    if not server.local:
        raise Forbidden("You can only stop a local server")
    await server.projects.close_all()
    log.info("Shutdown requested through the API")
    if server.request_stop is not None:
        # Answer first, then stop: the client gets its 201 before the listener goes away.
        asyncio.get_running_loop().call_later(0.1, server.request_stop)


@hookimpl
def gns3_register(registry: Registry) -> None:
    registry.add_routes([
        Route("POST", "/v1/config/reload", reload_config, 201, description="Re-read the configuration files"),
        Route("POST", "/v1/server/shutdown", shutdown, 201, description="Close every project and stop the server"),
    ])
