"""IOU images (`images_path/IOU`): which file a VM's `path` names, listing, uploads.

A `path` is a file name relative to the IOU folder (or to the images directory, the pre-1.3 layout). An absolute
path is accepted on a local server, and on any server when it lies inside the images directory. IOU images are
programs: the image a VM names is run by the server, so it must be an image the server's owner put there (uploaded or
copied into the images directory), never an arbitrary host file named by a remote client.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gns3core import host_paths
from gns3core.errors import EmulatorError, Forbidden
from gns3core.files import contained_path
from gns3core.images import images_root

if TYPE_CHECKING:
    from gns3core.server import Server


def iou_images_dir(server: Server) -> Path:
    return images_root(server) / "IOU"


def resolve_image(server: Server, value: str | None) -> Path | None:
    """The image file a VM's `path` names (None when unset), by the server's one host-path policy; 409 for a path a
    remote client may not use. As IOU servers did, a path outside any `IOU` folder whose file also exists in an
    `IOU` folder beside it means that file."""
    if not value:
        return None
    folder = iou_images_dir(server)
    try:
        path = host_paths.image_path(server, value, folder)
        if path is not None and "IOU" not in path.parts and not path.exists():
            beside = path.parent / "IOU" / path.name
            if beside.exists():
                return beside
    except Forbidden as exc:
        raise EmulatorError(f"{exc.message}. Please use only a filename in {folder}.") from None
    except OSError as exc:  # e.g. a name too long for the file system
        raise EmulatorError(f"IOU image path {value!r} cannot be used: {exc.strerror or exc}") from None
    return path


def output_path(server: Server, path: Path | None) -> str:
    """What the API shows: relative to images/IOU when inside it, else absolute; "" when unset."""
    if path is None:
        return ""
    try:
        return str(path.relative_to(iou_images_dir(server)))
    except ValueError:
        return str(path)


def upload_target(server: Server, name: str) -> Path:
    """Where `POST /v1/iou/vms/{path}` writes: one file name inside images/IOU (403 otherwise)."""
    if "/" in name or "\\" in name:
        raise Forbidden(f"Could not write image: {name}: only a file name is allowed, without folders")
    try:
        return contained_path(iou_images_dir(server), name, "image path")
    except Forbidden as exc:
        raise Forbidden(f"Could not write image: {name}: {exc.message}") from exc
