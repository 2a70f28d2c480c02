"""File access: project files with their md5, one project file (read, or written as released 1.5.x does), and a
followed file stream (captures)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from gns3core import schemas
from gns3core.errors import ApiError, Conflict, Forbidden, NotFound
from gns3core.files import contained_path
from gns3core.hookspecs import hookimpl
from gns3core.registry import Registry
from gns3core.routing import ApiRequest, Route

CHUNK = 64 * 1024
PROJECT_FILE_MAX_MB = 64  # [Server] project_file_max_size: a written project file is a configuration, not an image


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


async def write_project_file(request: ApiRequest) -> None:
    """Write one project file from the raw body (the 1.5.4 client edits a Docker container's network configuration
    this way): inside the project only, into an existing folder, size-bounded, and atomic (a temporary file beside
    it renamed over it once complete, so a reader never sees half a file)."""
    project = request.project
    relative = request.match["path"]
    path = contained_path(project.path, relative, "file path")
    if not path.parent.is_dir():
        raise NotFound(f"The folder of {relative} doesn't exist (a project file is written into an existing folder)")
    if path.is_dir() and not path.is_symlink():
        raise Forbidden(f"{relative} is a directory, not a file")
    limit = request.server.config.server.getint("project_file_max_size", PROJECT_FILE_MAX_MB) * 1024 * 1024
    too_large = ApiError(f"The file is larger than the {limit // (1024 * 1024)} MiB allowed "
                         "([Server] project_file_max_size)", 413)
    content = request.raw
    if content.content_length is not None and content.content_length > limit:
        raise too_large
    try:
        fd, tmp_name = await asyncio.to_thread(tempfile.mkstemp, prefix=f".{path.name}.", suffix=".upload",
                                               dir=path.parent)
    except PermissionError as exc:
        raise Forbidden(f"File {relative} cannot be written: permission denied") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            total = 0
            async for chunk in content.content.iter_chunked(CHUNK):
                total += len(chunk)
                if total > limit:
                    raise too_large
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(_finish, handle, path)
        await asyncio.to_thread(_replace, tmp_name, path)
        tmp_name = None
    except PermissionError as exc:
        raise Forbidden(f"File {relative} cannot be written: permission denied") from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def _finish(handle: Any, path: Path) -> None:
    """Flush to the disk, with the mode of the file it replaces (a new one: rw-r--r--)."""
    handle.flush()
    os.fsync(handle.fileno())
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o644
    os.fchmod(handle.fileno(), mode)


def _replace(tmp_name: str, path: Path) -> None:
    """Rename into place, then make the rename itself durable."""
    os.replace(tmp_name, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        Route("POST", "/v1/projects/{project_id}/files/{path:.+}", write_project_file, 200, raw=True,
              description="Write one project file from the raw body (released GNS3 1.5.x)"),
        Route("GET", "/v1/files/stream", stream_file, 200, input=schemas.FILE_STREAM,
              description="Follow a file as it grows (e.g. a capture)"),
    ])
