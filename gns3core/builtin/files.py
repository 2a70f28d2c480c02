"""File access: project files with their md5, one project file, and a followed file stream (captures)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from gns3core import schemas
from gns3core.errors import Conflict, Forbidden, NotFound
from gns3core.files import contained_path
from gns3core.hookspecs import hookimpl
from gns3core.registry import Registry
from gns3core.routing import ApiRequest, Route

CHUNK = 64 * 1024


async def list_project_files(request: ApiRequest) -> list[dict[str, Any]]:
    project = request.project
    return await asyncio.to_thread(project.list_files)


async def _open_stream(request: ApiRequest) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=request.headers("application/octet-stream"))
    response.enable_chunked_encoding()
    await response.prepare(request.raw)
    return response


async def get_project_file(request: ApiRequest) -> web.StreamResponse:
    project = request.project
    path = contained_path(project.path, request.match["path"], "file path")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, across awaits
    except FileNotFoundError as exc:
        raise NotFound(f"File {request.match['path']} doesn't exist") from exc
    except IsADirectoryError as exc:
        raise NotFound(f"{request.match['path']} is a directory, not a file") from exc
    except PermissionError as exc:
        raise Forbidden(f"File {request.match['path']} cannot be read: permission denied") from exc
    with handle:
        response = await _open_stream(request)
        while chunk := await asyncio.to_thread(handle.read, CHUNK):
            await response.write(chunk)
    await response.write_eof()
    return response


def allowed_stream_roots(request: ApiRequest) -> list[Path]:
    """`/v1/files/stream` reads only inside open projects and the images directory."""
    server = request.server
    roots = [p.path for p in server.projects.projects.values()]
    images = server.config.server.getpath("images_path")
    if images is not None:
        roots.append(images)
    return [r.resolve() for r in roots]


async def stream_file(request: ApiRequest) -> web.StreamResponse:
    """Follow a file like `tail -f` (a capture being written) until the client goes away."""
    location = Path(os.path.expanduser(request.json["location"]))
    resolved = location.resolve()
    if not any(resolved == root or root in resolved.parents for root in allowed_stream_roots(request)):
        raise Forbidden(f"{location} is not inside an open project or the images directory")
    try:
        handle = open(resolved, "rb")  # noqa: SIM115
    except FileNotFoundError as exc:
        raise NotFound(f"File {location} doesn't exist") from exc
    except OSError as exc:
        raise Conflict(f"Could not read {location}: {exc.strerror or exc}") from exc
    with handle:
        response = await _open_stream(request)
        transport = request.raw.transport
        server = request.server
        while transport is not None and not transport.is_closing() and not server.stopping:
            chunk = handle.read(CHUNK)
            if chunk:
                await response.write(chunk)
            else:
                await asyncio.sleep(0.1)
            transport = request.raw.transport
    return response


@hookimpl
def gns3_register(registry: Registry) -> None:
    registry.add_routes([
        Route("GET", "/v1/projects/{project_id}/files", list_project_files, 200, output=schemas.PROJECT_FILE_LIST,
              description="List the project's files with their md5"),
        Route("GET", "/v1/projects/{project_id}/files/{path:.+}", get_project_file, 200,
              description="Download one project file"),
        Route("GET", "/v1/files/stream", stream_file, 200, input=schemas.FILE_STREAM,
              description="Follow a file as it grows (e.g. a capture)"),
    ])
