"""The server-wide Qemu endpoints: binaries, disk-image creation, the image list and image upload."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiohttp import web

from gns3_qemu import binaries, images, schemas
from gns3core.errors import Conflict, EmulatorError, Forbidden
from gns3core.routing import ApiRequest, Route


async def get_binaries(request: ApiRequest) -> list[dict[str, str]]:
    return await binaries.list_binaries(img=False)


async def get_img_binaries(request: ApiRequest) -> list[dict[str, str]]:
    return await binaries.list_binaries(img=True)


def _qemu_img_program(value: str) -> str:
    """Only a qemu-img binary may be run on a client's say-so, never an arbitrary program."""
    path = binaries.which(value) if os.sep not in value else os.path.abspath(value)
    if path is None or not binaries.is_qemu_img_name(os.path.basename(path)):
        raise EmulatorError(f"{value} is not a qemu-img binary found on this server")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise EmulatorError(f"qemu-img binary '{path}' is not accessible or not executable")
    return path


def _img_destination(request: ApiRequest, value: str) -> Path | web.Response:
    server = request.server
    if not os.path.isabs(value):
        return images.qemu_images_dir(server) / os.path.basename(value)
    if not server.local:
        return web.Response(status=403, headers=request.headers())  # API v1: an empty 403 for a remote server
    resolved = Path(value).resolve()
    roots = [images.images_root(server).resolve(), server.projects.location.resolve()]
    if not any(resolved == root or root in resolved.parents for root in roots):
        raise Forbidden(f"Could not create disk image {value}: only paths inside the images directory or the "
                        "projects directory are allowed")
    return Path(value)


async def create_img(request: ApiRequest) -> web.Response | None:
    body = request.json
    destination = _img_destination(request, body["path"])
    if isinstance(destination, web.Response):
        return destination
    qemu_img = _qemu_img_program(body["qemu_img"])
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
    await images.receive_upload(request.raw.content, target, request.raw.content_length)


def global_routes() -> list[Route]:
    return [
        Route("GET", "/v1/qemu/binaries", get_binaries, 200, output=schemas.BINARY_LIST,
              description="Get a list of available Qemu binaries"),
        Route("GET", "/v1/qemu/img-binaries", get_img_binaries, 200, output=schemas.BINARY_LIST,
              description="Get a list of available Qemu-img binaries"),
        Route("POST", "/v1/qemu/img", create_img, 201, input=schemas.IMG_CREATE, description="Create a Qemu image"),
        Route("GET", "/v1/qemu/vms", list_images, 200, output=schemas.IMAGE_LIST,
              description="Retrieve the list of Qemu images"),
        Route("POST", "/v1/qemu/vms/{path:.+}", upload_image, 204, raw=True, description="Upload Qemu image"),
    ]

