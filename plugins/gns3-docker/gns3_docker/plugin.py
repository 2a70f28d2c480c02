"""Registers the Docker kind under both API families, on one shared state (api-1.5-release §0, §8):

* the seed's `/v1/projects/{project_id}/docker/images/{id}` routes (new containers get 0 adapters);
* the released 1.5.x `/v1/projects/{project_id}/docker/vms/{vm_id}` routes (new containers get 1 adapter);

plus `GET /v1/docker/images`, whose items carry both the `image` and the `imagename` key.
"""

from __future__ import annotations

from typing import Any

from gns3_docker import schemas
from gns3_docker.manager import DockerManager
from gns3core import hookimpl
from gns3core.emulator.routes import vm_routes
from gns3core.registry import Emulator
from gns3core.routing import ApiRequest, Route
from gns3core.schemas import CAPTURE

KIND = "docker"
ACTIONS = ("start", "stop", "reload", "suspend", "resume")


async def list_images(request: ApiRequest) -> list[dict[str, Any]]:
    """The engine's images, one item per repository tag, sorted."""
    manager: DockerManager = request.server.emulators[KIND]
    return await manager.list_images()


def container_routes(collection: str, id_param: str, default_adapters: int) -> list[Route]:
    """One API family's routes; a create without `adapters` (or with null) gets that family's default."""
    routes = vm_routes(KIND, create=schemas.CREATE, update=schemas.UPDATE, output=schemas.OUTPUT, actions=ACTIONS,
                       capture=CAPTURE, collection=collection, id_param=id_param)
    create = next(r for r in routes if r.method == "POST" and r.path.endswith("/" + collection))
    create_vm = create.handler

    async def create_container(request: ApiRequest) -> dict[str, Any]:
        if request.json.get("adapters") is None:
            request.json = {**request.json, "adapters": default_adapters}
        return await create_vm(request)

    create.handler = create_container
    return routes


ROUTES = [
    Route("GET", "/v1/docker/images", list_images, 200, output=schemas.IMAGES,
          description="Get all available Docker images"),
    *container_routes("images", "id", default_adapters=0),
    *container_routes("vms", "vm_id", default_adapters=1),
]


@hookimpl
def gns3_register(registry: Any) -> None:
    registry.add_emulator(Emulator(name=KIND, manager=DockerManager, routes=ROUTES,
                                   description="Docker containers through the Docker Engine API"))
