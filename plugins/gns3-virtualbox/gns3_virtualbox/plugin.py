"""Entry point of the VirtualBox plugin (group `gns3server.plugins`, name `virtualbox`): registers the kind."""

from __future__ import annotations

from typing import Any

from gns3_virtualbox import schemas as vbox_schemas
from gns3_virtualbox.manager import VirtualBoxManager
from gns3core import hookimpl, schemas
from gns3core.emulator import vm_routes
from gns3core.emulator.routes import vm_of
from gns3core.registry import Emulator, Registry
from gns3core.routing import ApiRequest, Route

KIND = "virtualbox"
PORT = "/v1/projects/{project_id}/virtualbox/vms/{vm_id}/adapters/{adapter_number:\\d+}/ports/{port_number:\\d+}"


async def list_vms(request: ApiRequest) -> list[dict[str, Any]]:
    manager: VirtualBoxManager = request.server.emulators[KIND]
    return await manager.list_vms()


async def remove_nio_by_id(request: ApiRequest) -> None:
    """The seed's form of the NIO delete, `.../nio/{nio_id}`: the id is ignored (one NIO per adapter)."""
    vm = vm_of(request, KIND)
    await vm.remove_nio(request.int_param("adapter_number"), request.int_param("port_number"))


ROUTES = [
    Route("GET", "/v1/virtualbox/vms", list_vms, 200, output=vbox_schemas.VM_LIST,
          description="Get all VirtualBox VMs available"),
    *vm_routes(KIND, create=vbox_schemas.CREATE, update=vbox_schemas.UPDATE, output=vbox_schemas.OBJECT,
               actions=("start", "stop", "reload", "suspend", "resume"), nio=schemas.NIO, capture=schemas.CAPTURE),
    Route("DELETE", PORT + "/nio/{nio_id}", remove_nio_by_id, 204,
          description="Remove a NIO from a VirtualBox VM instance (seed path)"),
]


@hookimpl
def gns3_register(registry: Registry) -> None:
    registry.add_emulator(Emulator(
        name=KIND, manager=VirtualBoxManager, routes=ROUTES,
        schemas={"create": vbox_schemas.CREATE, "update": vbox_schemas.UPDATE, "object": vbox_schemas.OBJECT},
        description="VirtualBox VMs driven through VBoxManage (VirtualBox must be installed on the host)",
    ))
