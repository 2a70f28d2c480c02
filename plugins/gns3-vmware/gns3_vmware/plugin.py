"""Registers the VMware kind: the API v1 endpoints under /v1/projects/{project_id}/vmware/vms, the host's VM list
and the VMnet allocation."""

from __future__ import annotations

from typing import Any

from gns3_vmware import schemas
from gns3_vmware.manager import VMwareManager
from gns3core import hookimpl
from gns3core import schemas as core_schemas
from gns3core.emulator.routes import vm_of, vm_routes
from gns3core.registry import Emulator
from gns3core.routing import ApiRequest, Route

KIND = "vmware"


async def list_vms(request: ApiRequest) -> list[dict[str, str]]:
    """The host's VMware VMs (VMware's inventory, or its default VM folder), after the product version check."""
    manager: VMwareManager = request.server.emulators[KIND]
    return await manager.list_vms()


async def allocate_vmnet(request: ApiRequest) -> dict[str, str]:
    manager: VMwareManager = request.server.emulators[KIND]
    vm = vm_of(request, KIND)
    return {"vmnet": await manager.allocate_vmnet(vm)}


ROUTES = [
    Route("GET", "/v1/vmware/vms", list_vms, 200, output=schemas.VM_LIST,
          description="Get all VMware VMs available"),
    *vm_routes(KIND, create=schemas.CREATE, update=schemas.UPDATE, output=schemas.OUTPUT,
               actions=("start", "stop", "reload", "suspend", "resume"), nio=schemas.NIO,
               capture=core_schemas.CAPTURE),
    Route("POST", "/v1/projects/{project_id}/vmware/vms/{vm_id}/interfaces/vmnet", allocate_vmnet, 201,
          output=schemas.VMNET, description="Allocate a VMware VMnet interface on the server"),
]


@hookimpl
def gns3_register(registry: Any) -> None:
    registry.add_emulator(Emulator(name=KIND, manager=VMwareManager, routes=ROUTES,
                                   description="VMware Workstation and Player VMs through vmrun"))
