"""IOU images (`images_path/IOU`): which file a VM's `path` names, listing, uploads.

A `path` is a file name relative to the IOU folder (or to the images directory, the pre-1.3 layout). An absolute
path is accepted on a local server, and on any server when it lies inside the images directory. IOU images are
programs: the image a VM names is run by the server, so it must be an image the server's owner put there (uploaded or
copied into the images directory), never an arbitrary host file named by a remote client.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from gns3core.errors import EmulatorError, Forbidden
from gns3core.files import contained_path
from gns3core.images import images_root

if TYPE_CHECKING:
    from gns3core.server import Server

_DRIVE = re.compile(r"^[A-Za-z]:")


def iou_images_dir(server: Server) -> Path:
    return images_root(server) / "IOU"


def _inside(path: Path, root: Path) -> bool:
    root = root.resolve()
    return path == root or root in path.parents


def resolve_image(server: Server, value: str | None) -> Path | None:
    """The image file a VM's `path` names (None when unset); 409 for a path a remote client may not use."""
    if not value:
        return None
    folder = iou_images_dir(server)
    refused = f"{value} is not allowed on this remote server. Please use only a filename in {folder}."
    if _DRIVE.match(value):
        raise EmulatorError(refused)
    if os.path.isabs(value):
        path = Path(os.path.normpath(value))
        if not server.local and not _inside(path.resolve(), images_root(server)):
            raise EmulatorError(refused)
        return path
    try:
        candidate = contained_path(folder, value, "image path")
        if not candidate.exists():
            older = contained_path(images_root(server), value, "image path")
            if older.exists():
                return older
    except Forbidden as exc:
        raise EmulatorError(f"{exc.message}. Please use only a filename in {folder}.") from None
    except OSError as exc:  # e.g. a name too long for the file system
        raise EmulatorError(f"IOU image path {value!r} cannot be used: {exc.strerror or exc}") from None
    return candidate


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
