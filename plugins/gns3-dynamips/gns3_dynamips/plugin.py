"""Plugin entry point: the routes of `/dynamips/vms` (routers), `/dynamips/devices` and the IOS image endpoints."""

from __future__ import annotations

from typing import Any

from gns3_dynamips import schemas as dyn_schemas
from gns3_dynamips.images import list_images, upload_target
from gns3_dynamips.managers import DEVICE_KIND, ROUTER_KIND, DynamipsDeviceManager, DynamipsVMManager
from gns3core import hookimpl, schemas
from gns3core.emulator import vm_routes
from gns3core.emulator.routes import vm_of
from gns3core.errors import Conflict
from gns3core.images import receive_upload
from gns3core.registry import Emulator
from gns3core.routing import ApiRequest, Route

ROUTER_ITEM = "/v1/projects/{project_id}/dynamips/vms/{vm_id}"
DEVICE_PORT = "/v1/projects/{project_id}/dynamips/devices/{device_id}/ports/{port_number:\\d+}/nio"


# -- routers: the endpoints the shared pattern lacks -----------------------------------------------------------------

async def get_configs(request: ApiRequest) -> dict[str, Any]:
    return await vm_of(request, ROUTER_KIND).get_configs()


async def save_configs(request: ApiRequest) -> None:
    await vm_of(request, ROUTER_KIND).save_configs()


async def idlepc_proposals(request: ApiRequest) -> list[str]:
    return await vm_of(request, ROUTER_KIND).idlepc_proposals()


async def auto_idlepc(request: ApiRequest) -> dict[str, str]:
    manager = request.server.emulators[ROUTER_KIND]
    router = vm_of(request, ROUTER_KIND)
    value = await router.auto_idlepc(manager.auto_idlepc_boot_wait, manager.auto_idlepc_sample_wait)
    return {"idlepc": value}


async def list_ios_images(request: ApiRequest) -> list[dict[str, str]]:
    return list_images(request.server)


async def upload_ios_image(request: ApiRequest) -> None:
    """Stream the raw body into images_path/IOS/<name> (executable), with its md5 sidecar."""
    target = upload_target(request.server, request.match["path"])
    await receive_upload(request.raw.content, target, request.raw.content_length)


# -- devices: NIO endpoints with the device wrapper ----------------------------------------------------------------

async def add_device_nio(request: ApiRequest) -> dict[str, Any]:
    device = vm_of(request, DEVICE_KIND)
    port = request.int_param("port_number")
    body = request.json
    wrapped = "nio" in body
    settings = body.get("port_settings") if wrapped else None
    mappings = body.get("mappings") if wrapped else None
    if mappings is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in mappings.items()):
        raise Conflict("Invalid Frame-Relay mappings" if device.device_type == "frame_relay_switch"
                       else "Invalid ATM mappings")
    device.check_port(0, port)
    nio = request.server.emulators[DEVICE_KIND].create_nio(device, body)
    await device.add_port_nio(port, nio, settings, mappings)
    return nio.as_json()


async def remove_device_nio(request: ApiRequest) -> None:
    device = vm_of(request, DEVICE_KIND)
    await device.remove_nio(0, request.int_param("port_number"))


def router_routes() -> list[Route]:
    routes = vm_routes(ROUTER_KIND, create=dyn_schemas.ROUTER_CREATE, update=dyn_schemas.ROUTER_UPDATE,
                       output=dyn_schemas.ROUTER_OBJECT,
                       actions=("start", "stop", "reload", "suspend", "resume"),
                       nio=schemas.NIO, capture=schemas.CAPTURE)
    routes += [
        Route("GET", ROUTER_ITEM + "/configs", get_configs, 200, output=dyn_schemas.ROUTER_CONFIGS,
              description="Retrieve the startup and private configs content"),
        Route("POST", ROUTER_ITEM + "/configs/save", save_configs, 200,
              description="Save the startup and private configs content"),
        Route("GET", ROUTER_ITEM + "/idlepc_proposals", idlepc_proposals, 200, output=dyn_schemas.IDLEPC_PROPOSALS,
              description="Retrieve the idlepc proposals"),
        Route("GET", ROUTER_ITEM + "/auto_idlepc", auto_idlepc, 200, output=dyn_schemas.AUTO_IDLEPC,
              description="Find the best idle-PC value"),
        Route("GET", "/v1/dynamips/vms", list_ios_images, 200, output=dyn_schemas.IMAGE_LIST,
              description="Retrieve the list of Dynamips IOS images"),
        Route("POST", "/v1/dynamips/vms/{path}", upload_ios_image, 204, raw=True,
              description="Upload a Dynamips IOS image"),
    ]
    return routes


def device_routes() -> list[Route]:
    generated = vm_routes(DEVICE_KIND, create=dyn_schemas.DEVICE_CREATE, update=dyn_schemas.DEVICE_UPDATE,
                          output=dyn_schemas.DEVICE_OBJECT, actions=(), nio=None, capture=schemas.CAPTURE,
                          collection="devices", id_param="device_id", adapters=False, segment=ROUTER_KIND)
    routes = generated + [
        Route("POST", DEVICE_PORT, add_device_nio, 201, input=dyn_schemas.DEVICE_NIO,
              description="Add a NIO to a Dynamips device instance"),
        Route("DELETE", DEVICE_PORT, remove_device_nio, 204,
              description="Remove a NIO from a Dynamips device instance"),
    ]
    return routes


@hookimpl
def gns3_register(registry) -> None:
    registry.add_emulator(Emulator(name=ROUTER_KIND, manager=DynamipsVMManager, routes=router_routes(),
                                   description="Cisco routers emulated by dynamips"))
    registry.add_emulator(Emulator(name=DEVICE_KIND, manager=DynamipsDeviceManager, routes=device_routes(),
                                   description="Ethernet/Frame-Relay/ATM switches and hubs (dynamips or built-in)"))
