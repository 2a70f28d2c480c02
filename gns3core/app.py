"""The aiohttp application factory: plugins loaded, routes mounted, the server object owned by cleanup_ctx."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gns3core.config import Config
from gns3core.plugins import load_plugins
from gns3core.routing import error_response, make_handler
from gns3core.server import Server

log = logging.getLogger(__name__)

SERVER_KEY = web.AppKey("gns3_server", Server)


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Unknown paths and wrong methods answer in the API's JSON error shape instead of plain text."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        server = request.app[SERVER_KEY]
        headers = server.common_headers(request.path)
        if exc.status == 405:
            headers["Allow"] = exc.headers.get("Allow", "")
        message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else f"{exc.status}: {exc.reason}"
        if exc.status == 404:
            message = f"No such API endpoint: {request.method} {request.path}"
        return error_response(exc.status, message, headers)


def create_app(
    config: Config,
    *,
    extra_plugins: list[Any] | None = None,
    use_entry_points: bool = True,
    validate_output: bool = False,
) -> web.Application:
    """Build the application; `extra_plugins` registers plugin objects in-process (tests, embedding)."""
    pm, registry, report = load_plugins(extra_plugins, use_entry_points)
    server = Server(config, registry, pm, report, validate_output=validate_output)
    app = web.Application(middlewares=[error_middleware], client_max_size=64 * 1024 * 1024)
    app[SERVER_KEY] = server
    setup_routes(app, server)
    app.cleanup_ctx.append(_server_lifecycle)
    return app


def setup_routes(app: web.Application, server: Server) -> None:
    """Mount every registered route; a path declared twice is a plugin bug, reported once at start."""
    seen: set[tuple[str, str]] = set()
    for route in server.registry.routes:
        key = (route.method, route.path)
        if key in seen:
            log.error("Route %s %s declared twice (plugin %s); keeping the first", route.method, route.path,
                      route.plugin)
            continue
        seen.add(key)
        app.router.add_route(route.method, route.path, make_handler(route, server))


async def _server_lifecycle(app: web.Application) -> AsyncIterator[None]:
    server = app[SERVER_KEY]
    try:
        await asyncio.to_thread(server.projects.purge_temporary)
    except OSError as exc:
        log.warning("Could not clean leftover temporary projects: %s", exc)
    watcher = asyncio.get_running_loop().create_task(_watch_config(server))
    await server.call_hook("gns3_server_started", server=server)
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await server.close()


async def _watch_config(server: Server, interval: float = 1.0) -> None:
    """Re-read the configuration files whenever one changes, as API v1 servers do every second."""
    while True:
        await asyncio.sleep(interval)
        try:
            if server.config.changed_on_disk():
                log.info("Configuration changed on disk, reloading")
                server.reload_config()
        except Exception:
            log.exception("Configuration reload failed")
