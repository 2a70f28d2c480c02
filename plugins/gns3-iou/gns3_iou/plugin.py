"""Entry point of the IOU plugin (group `gns3server.plugins`, name `iou`): registers the `iou` emulator kind."""

from __future__ import annotations

import asyncio
from typing import Any

from gns3_iou import images
from gns3_iou import schemas as iou_schemas
from gns3_iou.manager import IOUManager
from gns3_iou.vm import IOUVM
from gns3core import hookimpl, schemas
from gns3core.emulator import vm_routes
from gns3core.emulator.routes import vm_of
from gns3core.errors import Conflict
from gns3core.images import list_images, receive_upload
from gns3core.registry import Emulator, Registry
from gns3core.routing import ApiRequest, Route

KIND = "iou"
VM_PATH = "/v1/projects/{project_id}/iou/vms/{vm_id}"


def _vm(request: ApiRequest) -> IOUVM:
    return vm_of(request, KIND)  # type: ignore[return-value]


async def start_vm(request: ApiRequest) -> dict[str, Any]:
    """Start (a body may carry `iourc_content`); answers the VM object, as the released 1.5.x line does."""
    vm = _vm(request)
    body = request.json if isinstance(request.json, dict) else {}
    await vm.start(iourc_content=body.get("iourc_content"))
    return vm.as_json()


async def get_configs(request: ApiRequest) -> dict[str, str]:
    vm = _vm(request)
    return await asyncio.to_thread(vm.configs)


async def save_configs(request: ApiRequest) -> None:
    vm = _vm(request)
    try:
        await vm.save_configs()
    except OSError as exc:
        raise Conflict(f"Could not save the configs of IOU \"{vm.name}\": {exc}") from None


async def list_iou_images(request: ApiRequest) -> list[dict[str, str]]:
    return await asyncio.to_thread(list_images, images.iou_images_dir(request.server))


async def upload_image(request: ApiRequest) -> None:
    """IOU images are programs: the only uploads stored executable (see docs/iou.md on why auth matters)."""
    target = images.upload_target(request.server, request.match["path"])
    await receive_upload(request.raw.content, target, request.raw.content_length, executable=True)


def routes() -> list[Route]:
    standard = vm_routes(KIND, create=iou_schemas.CREATE, update=iou_schemas.UPDATE, output=iou_schemas.OBJECT,
                         actions=("stop", "reload"), nio=schemas.NIO, capture=schemas.CAPTURE)
    return [
        *standard,
        Route("POST", f"{VM_PATH}/start", start_vm, 200, input=iou_schemas.START, output=iou_schemas.OBJECT,
              description="Start an IOU VM"),
        Route("GET", f"{VM_PATH}/configs", get_configs, 200, output=iou_schemas.CONFIGS,
              description="The startup and private configs of an IOU VM"),
        Route("POST", f"{VM_PATH}/configs/save", save_configs, 200,
              description="Save the configs an IOU VM holds in NVRAM into its config files"),
        Route("GET", "/v1/iou/vms", list_iou_images, 200, output=iou_schemas.IMAGE_LIST,
              description="IOU images in the images directory"),
        Route("POST", "/v1/iou/vms/{path}", upload_image, 204, raw=True, description="Upload an IOU image"),
    ]


@hookimpl
def gns3_register(registry: Registry) -> None:
    registry.add_emulator(Emulator(
        name=KIND,
        manager=IOUManager,
        routes=routes(),
        schemas={"create": iou_schemas.CREATE, "update": iou_schemas.UPDATE, "object": iou_schemas.OBJECT},
        description="IOS on Unix: your IOU image and licence, linked through the core data plane (no iouyap needed)",
    ))
