"""The aiohttp application factory: plugins loaded, routes mounted, the server object owned by cleanup_ctx."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web

from gns3core.config import Config
from gns3core.plugins import load_plugins
from gns3core.routing import MAX_JSON_BODY, error_response, make_handler
from gns3core.server import Server

log = logging.getLogger(__name__)

SERVER_KEY = web.AppKey("gns3_server", Server)


def create_app(
    config: Config,
    *,
    extra_plugins: list[Any] | None = None,
    use_entry_points: bool = True,
    validate_output: bool = False,
    plugin_files: Iterable[str | Path] = (),
) -> web.Application:
    """Build the application; `extra_plugins` registers plugin objects in-process (tests, embedding) and
    `plugin_files` loads plugin modules from files (`--plugin PATH`)."""
    pm, registry, report = load_plugins(extra_plugins, use_entry_points, plugin_files)
    server = Server(config, registry, pm, report, validate_output=validate_output)
    # No middleware: every request would pay for it. Routing errors are answered by a catch-all route instead.
    app = web.Application(client_max_size=MAX_JSON_BODY)
    app[SERVER_KEY] = server
    setup_routes(app, server)
    app.on_shutdown.append(_end_streams)
    app.cleanup_ctx.append(_server_lifecycle)
    return app


async def _end_streams(app: web.Application) -> None:
    """Stopping: end the endless responses (notifications, followed files) so the server does not wait on them.

    aiohttp waits for running handlers before the cleanup that stops the VMs; a GNS3 client always holds a
    notification stream open, so without this a SIGTERM would take the whole shutdown timeout.
    """
    server = app[SERVER_KEY]
    server.stopping = True
    for project in list(server.projects.projects.values()):
        project.notifications.close()


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
    # Tried last (after every API route): unknown paths and wrong methods answer in the API's JSON error shape.
    catch_all = app.router.add_resource("/{unrouted_path:.*}")
    catch_all.add_route("*", _no_route_handler(app, catch_all))


def missing_kind_message(path: str, missing: dict[str, str]) -> str | None:
    """The 404 message for a path of an API v1 kind no installed plugin serves (`missing`: segment -> message)."""
    parts = path.split("/")  # "", "v1", segment, ... or "", "v1", "projects", id, segment, ...
    if len(parts) > 2 and parts[2] in missing:
        return missing[parts[2]]
    if len(parts) > 4 and parts[2] == "projects" and parts[4] in missing:
        return missing[parts[4]]
    return None


def _no_route_handler(app: web.Application, catch_all: web.AbstractResource) -> Any:
    missing = {kind.segment: kind.missing_message for kind in app[SERVER_KEY].plugin_report.missing_kinds}

    async def no_route(request: web.Request) -> web.StreamResponse:
        server = app[SERVER_KEY]
        denied = server.access.refuse(request, request.path, server.common_headers)
        if denied is not None:
            return denied
        if request.method == "OPTIONS" and "Origin" in request.headers:
            return _preflight(request, server.common_headers(request.path))
        allowed: set[str] = set()
        for resource in app.router.resources():
            if resource is not catch_all:
                _match, methods = await resource.resolve(request)
                allowed |= methods
        headers = server.common_headers(request.path)
        path = request.path if len(request.path) <= 200 else request.path[:200] + "..."
        if allowed:
            headers["Allow"] = ",".join(sorted(allowed))
            return error_response(405, f"Method {request.method} is not allowed on {path}", headers)
        not_installed = missing_kind_message(request.path, missing)
        if not_installed is not None:
            return error_response(404, not_installed, headers)
        return error_response(404, f"No such API endpoint: {request.method} {path}", headers)

    return no_route


def _preflight(request: web.Request, headers: dict[str, str]) -> web.Response:
    """CORS preflight of a page whose origin the configuration allows (the access check refused the others)."""
    headers.update({
        "Access-Control-Allow-Origin": request.headers["Origin"],
        "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    })
    return web.Response(status=204, headers=headers)


async def _server_lifecycle(app: web.Application) -> AsyncIterator[None]:
    server = app[SERVER_KEY]
    try:
        await asyncio.to_thread(server.projects.recover)
    except (OSError, psutil.Error) as exc:
        log.warning("Could not clean up after an earlier run: %s", exc)
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
