"""Registers the Docker kind: the API v1 endpoints under /v1/projects/{project_id}/docker/images and the image list."""

from __future__ import annotations

from typing import Any

from gns3_docker import schemas
from gns3_docker.manager import DockerManager
from gns3core import hookimpl
from gns3core.emulator.routes import vm_routes
from gns3core.registry import Emulator
from gns3core.routing import ApiRequest, Route

KIND = "docker"


async def list_images(request: ApiRequest) -> list[dict[str, Any]]:
    """The engine's images, one item per repository tag."""
    manager: DockerManager = request.server.emulators[KIND]
    return await manager.list_images()


ROUTES = [
    Route("GET", "/v1/docker/images", list_images, 200, output=schemas.IMAGES,
          description="Get all available Docker images"),
    *vm_routes(KIND, create=schemas.CREATE, update=schemas.UPDATE, output=schemas.OUTPUT,
               actions=("start", "stop", "reload", "suspend", "resume"), collection="images", id_param="id"),
]


@hookimpl
def gns3_register(registry: Any) -> None:
    registry.add_emulator(Emulator(name=KIND, manager=DockerManager, routes=ROUTES,
                                   description="Docker containers through the Docker Engine API"))
