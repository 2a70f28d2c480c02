"""Projects: create, list, read, update, close, commit, delete; export and import as portable archives."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

from aiohttp import web

from gns3core import schemas
from gns3core.errors import ApiError, Conflict
from gns3core.hookspecs import hookimpl
from gns3core.images import images_root
from gns3core.project_export import ExportJob, content_disposition, export_file_name, run_export
from gns3core.project_import import ImportJob, ImportLimits, make_staging, refuse
from gns3core.registry import Registry
from gns3core.routing import ApiRequest, Route

log = logging.getLogger(__name__)

EXPORT_TYPE = "application/gns3project"
UPLOAD_BUFFER = 1024 * 1024


async def create_project(request: ApiRequest) -> dict[str, Any]:
    project = await request.server.projects.create(request.json)
    return project.as_json()


async def list_projects(request: ApiRequest) -> list[dict[str, Any]]:
    return [p.as_json() for p in request.server.projects.projects.values()]


async def get_project(request: ApiRequest) -> dict[str, Any]:
    return request.project.as_json()


async def update_project(request: ApiRequest) -> dict[str, Any]:
    project = request.project
    await request.server.projects.update(project, request.json)
    return project.as_json()


async def delete_project(request: ApiRequest) -> None:
    await request.server.projects.delete(request.project)


async def close_project(request: ApiRequest) -> None:
    await request.server.projects.close(request.project)


async def commit_project(request: ApiRequest) -> None:
    await request.project.commit()


async def export_project(request: ApiRequest) -> web.StreamResponse:
    """The project as a zip archive, written while it is sent (memory stays flat whatever the project's size)."""
    project = request.project
    server = request.server
    loop = asyncio.get_running_loop()

    def warn(message: str) -> None:  # called from the worker thread
        log.warning("Export of project %s: %s", project.id, message)
        loop.call_soon_threadsafe(project.warn, message)

    job = ExportJob(root=project.path, project_name=project.name, images_root=images_root(server),
                    include_images=int(request.json.get("include_images", "0")) != 0,
                    allow_outside_images=server.local, warn=warn)
    response = web.StreamResponse(status=200, headers=request.headers(EXPORT_TYPE))
    response.headers["Content-Disposition"] = content_disposition(export_file_name(project.name, project.id))
    response.enable_chunked_encoding()

    async def prepare() -> None:
        await response.prepare(request.raw)

    try:
        await run_export(job, response.write, prepare)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        if not response.prepared:
            raise
        # Half an archive is already out: end the connection without the last chunk, so the client sees a broken
        # transfer rather than a short file it could take for the whole project.
        log.exception("Export of project %s failed while it was sent", project.id)
        if request.raw.transport is not None:
            request.raw.transport.close()
        return response
    if not response.prepared:
        await prepare()
    await response.write_eof()
    return response


def import_limits(request: ApiRequest) -> ImportLimits:
    section = request.server.config.server
    defaults = ImportLimits()
    return ImportLimits(
        max_bytes=section.getint("import_max_size", defaults.max_bytes // 1024 ** 2) * 1024 ** 2,
        max_files=section.getint("import_max_files", defaults.max_files),
        max_ratio=section.getint("import_max_ratio", defaults.max_ratio),
    )


async def receive_archive(request: web.Request, path: Path, max_bytes: int) -> None:
    """The request body into `path`, written by a worker thread a MiB at a time; 413 past `max_bytes`."""
    too_large = ApiError(f"Cannot import the project: the archive is larger than the {max_bytes // 1024 ** 2} MiB "
                         "allowed ([Server] import_max_size); nothing was changed", 413)
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    handle = await asyncio.to_thread(open, path, "xb")
    total = 0
    pending = bytearray()
    try:
        async for chunk in request.content.iter_chunked(UPLOAD_BUFFER):
            total += len(chunk)
            if total > max_bytes:
                raise too_large
            pending += chunk
            if len(pending) >= UPLOAD_BUFFER:
                await asyncio.to_thread(handle.write, bytes(pending))
                pending.clear()
        if pending:
            await asyncio.to_thread(handle.write, bytes(pending))
    finally:
        await asyncio.to_thread(handle.close)
    if total == 0:
        raise refuse("the body is empty (send the .gns3project archive as the request body)")


async def import_project(request: ApiRequest) -> dict[str, Any]:
    """A portable archive into the project (opened first if it is not), all or nothing."""
    server = request.server
    project_id = request.match["project_id"]
    key = f"import {project_id}"
    lock = await server.locks.acquire(key)
    try:
        return await _import_locked(request, project_id)
    finally:
        server.locks.release(key, lock)


async def _import_locked(request: ApiRequest, project_id: str) -> dict[str, Any]:
    server = request.server
    opened_here = project_id not in server.projects.projects
    existed = (server.projects.location / project_id).exists()
    project = await server.projects.create({"project_id": project_id}) if opened_here else request.project
    try:
        if project.vms:
            raise Conflict(f"Cannot import into project {project_id}: it has open VMs (import into a new project, "
                           "or delete its VMs first)")
        staging = await asyncio.to_thread(make_staging, project.path)
        try:
            archive = staging / "archive.zip"
            await receive_archive(request.raw, archive, import_limits(request).max_bytes)
            job = ImportJob(archive_path=archive, staging=staging, project_root=project.path, project_id=project.id,
                            project_name=project.name, images_root=images_root(server),
                            for_gns3_vm=int(request.json.get("gns3vm", "1")) != 0, replace_images=server.local,
                            limits=import_limits(request))
            name = await asyncio.to_thread(job.run)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
    except BaseException:
        if opened_here:  # the failed import leaves no project behind either
            server.projects.projects.pop(project_id, None)
            if not existed:
                await asyncio.to_thread(shutil.rmtree, project.path, True)
        raise
    if project.name is None and name:
        project.name = name
    return project.as_json()


P = "/v1/projects/{project_id}"


@hookimpl
def gns3_register(registry: Registry) -> None:
    registry.add_routes([
        Route("POST", "/v1/projects", create_project, 201, input=schemas.PROJECT_CREATE,
              output=schemas.PROJECT_OBJECT, description="Create a new project on the server"),
        Route("GET", "/v1/projects", list_projects, 200, output=schemas.PROJECT_LIST,
              description="List the open projects"),
        Route("GET", P, get_project, 200, output=schemas.PROJECT_OBJECT, description="Get a project"),
        Route("PUT", P, update_project, 200, input=schemas.PROJECT_UPDATE, output=schemas.PROJECT_OBJECT,
              description="Update a project"),
        Route("DELETE", P, delete_project, 204, description="Delete a project and its directory"),
        Route("POST", P + "/close", close_project, 204, description="Close a project"),
        Route("POST", P + "/commit", commit_project, 204, description="Write the project's changes to disk"),
        Route("GET", P + "/export", export_project, 200, input=schemas.PROJECT_EXPORT_QUERY, query=True,
              description="Export the project as a portable .gns3project archive (released GNS3 1.5.x)"),
        Route("POST", P + "/import", import_project, 201, input=schemas.PROJECT_IMPORT_QUERY, query=True, raw=True,
              output=schemas.PROJECT_OBJECT,
              description="Import a portable .gns3project archive into the project (released GNS3 1.5.x)"),
    ])
