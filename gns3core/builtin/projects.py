"""Projects: create, list, read, update, close, commit, delete."""

from __future__ import annotations

from typing import Any

from gns3core import schemas
from gns3core.hookspecs import hookimpl
from gns3core.registry import Registry
from gns3core.routing import ApiRequest, Route


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
    ])
