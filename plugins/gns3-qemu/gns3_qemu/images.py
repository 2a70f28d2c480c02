"""The Qemu image store (`images_path/QEMU`): path resolution for VM fields, listing, and streamed uploads.

Paths from clients never leave the images directory or the VM's project directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from gns3core.errors import EmulatorError, Forbidden
from gns3core.files import contained_path
from gns3core.images import images_root, list_images, receive_upload  # noqa: F401 (used by the routes)

if TYPE_CHECKING:

    from gns3core.projects import Project
    from gns3core.server import Server

_DRIVE = re.compile(r"^[A-Za-z]:")


def qemu_images_dir(server: Server) -> Path:
    return images_root(server) / "QEMU"


def _inside(path: Path, root: Path) -> bool:
    root = root.resolve()
    return path == root or root in path.parents


def resolve_image(server: Server, project: Project, value: str) -> Path | None:
    """The file a VM field names: relative to images/QEMU (or images/, the pre-1.3 layout), or an absolute path
    inside the images or project directory. `""` means unset."""
    if not value:
        return None
    qemu_dir = qemu_images_dir(server)
    refused = f"{value} is not allowed on this remote server. Please use only a filename in {qemu_dir}."
    if _DRIVE.match(value):
        raise EmulatorError(refused)
    if os.path.isabs(value):
        resolved = Path(value).resolve()
        if not (_inside(resolved, images_root(server)) or _inside(resolved, project.path)):
            raise EmulatorError(refused)
        return Path(os.path.normpath(value))
    candidate = contained_path(qemu_dir, value, "image path")
    if not candidate.exists():
        older = contained_path(images_root(server), value, "image path")
        if older.exists():
            return older
    return candidate


def output_path(server: Server, path: Path | None) -> str:
    """What the API shows: relative to images/QEMU when inside it, else absolute; `""` when unset."""
    if path is None:
        return ""
    qemu_dir = qemu_images_dir(server)
    try:
        return str(path.relative_to(qemu_dir))
    except ValueError:
        return str(path)


def upload_target(server: Server, relative: str) -> Path:
    try:
        return contained_path(qemu_images_dir(server), relative, "image path")
    except Forbidden as exc:
        raise Forbidden(f"Could not write image: {relative}: {exc.message}") from exc
