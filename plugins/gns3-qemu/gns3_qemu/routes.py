"""The server-wide Qemu endpoints: binaries, disk-image creation, the image list and image upload."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gns3_qemu import binaries, images, kvm, schemas
from gns3core.errors import Conflict, EmulatorError, Forbidden
from gns3core.host_paths import LOCAL_HINT, server_roots
from gns3core.routing import ApiRequest, Route


async def get_binaries(request: ApiRequest) -> list[dict[str, str]]:
    """Every qemu-system binary, or those of the architectures in the body's `archs` (the 1.5.4 appliance wizard
    picks the binary itself when exactly one comes back)."""
    return await binaries.list_binaries(img=False, excluded=server_roots(request.server),
                                        archs=request.json.get("archs"))


async def get_capabilities(request: ApiRequest) -> dict[str, list[str]]:
    """The architectures whose guests this server runs under KVM: probed, never assumed from /dev/kvm."""
    enabled = request.server.config.section("Qemu").getbool("enable_kvm", True)
    return {"kvm": await kvm.accelerated_platforms(server_roots(request.server)) if enabled else []}


async def get_img_binaries(request: ApiRequest) -> list[dict[str, str]]:
    return await binaries.list_binaries(img=True, excluded=server_roots(request.server))


def _qemu_img_program(request: ApiRequest, value: str) -> str:
    """Only a qemu-img this server found itself may be run on a client's say-so, never an arbitrary program."""
    if not binaries.is_qemu_img_name(os.path.basename(value)):
        raise EmulatorError(f"{value} is not a qemu-img binary found on this server")
    return binaries.resolve_program(value, binaries.is_qemu_img_name, "qemu-img binary", server_roots(request.server))


def _img_destination(request: ApiRequest, value: str) -> Path:
    """A relative path is a file name in images/QEMU; an absolute path is for a local server only (API v1)."""
    server = request.server
    if not os.path.isabs(value):
        return images.qemu_images_dir(server) / os.path.basename(value)
    if not server.local:
        raise Forbidden(f"Could not create disk image {value}: an absolute path is refused on this server; use a file "
                        f"name (it goes to {images.qemu_images_dir(server)}), or {LOCAL_HINT}")
    return Path(value)


async def create_img(request: ApiRequest) -> None:
    body = request.json
    destination = _img_destination(request, body["path"])
    qemu_img = _qemu_img_program(request, body["qemu_img"])
    if destination.exists():
        raise Conflict(f"Could not create disk image {body['path']} already exist")
    argv = [qemu_img, "create", "-f", body["format"]]
    for key in schemas.IMG_OPTIONS:  # alphabetical, as API v1 servers pass them
        if key in body:
            argv += ["-o", f"{key}={body[key]}"]
    argv += [str(destination), f"{body['size']}M"]
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmulatorError(f"Could not create disk image {destination}: {exc}") from exc
    await binaries.run_tool(argv, f"Could not create disk image {destination}", timeout=300)
    return None


async def list_images(request: ApiRequest) -> list[dict[str, str]]:
    return await asyncio.to_thread(images.list_images, images.qemu_images_dir(request.server))


async def upload_image(request: ApiRequest) -> None:
    target = images.upload_target(request.server, request.match["path"])
    await images.receive_upload(request.raw.content, target, request.raw.content_length)  # never executable


def global_routes() -> list[Route]:
    return [
        Route("GET", "/v1/qemu/binaries", get_binaries, 200, input=schemas.BINARY_FILTER, output=schemas.BINARY_LIST,
              description="Get a list of available Qemu binaries"),
        Route("GET", "/v1/qemu/capabilities", get_capabilities, 200, output=schemas.CAPABILITIES,
              description="Architectures this server accelerates with KVM (released GNS3 1.5.x)"),
        Route("GET", "/v1/qemu/img-binaries", get_img_binaries, 200, output=schemas.BINARY_LIST,
              description="Get a list of available Qemu-img binaries"),
        Route("POST", "/v1/qemu/img", create_img, 201, input=schemas.IMG_CREATE, description="Create a Qemu image"),
        Route("GET", "/v1/qemu/vms", list_images, 200, output=schemas.IMAGE_LIST,
              description="Retrieve the list of Qemu images"),
        Route("POST", "/v1/qemu/vms/{path:.+}", upload_image, 204, raw=True, description="Upload Qemu image"),
    ]

