"""The Qemu image store (`images_path/QEMU`): path resolution for VM fields, listing, and streamed uploads.

Paths from clients never leave the images directory or the VM's project directory, except on a local server.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gns3core.errors import Forbidden
from gns3core.files import contained_path
from gns3core.host_paths import image_path
from gns3core.images import images_root, list_images, receive_upload  # noqa: F401 (used by the routes)

if TYPE_CHECKING:

    from gns3core.projects import Project
    from gns3core.server import Server


def qemu_images_dir(server: Server) -> Path:
    return images_root(server) / "QEMU"


def resolve_image(server: Server, project: Project, value: str) -> Path | None:
    """The file a VM field names (api-emulators §0.3): relative to images/QEMU (or images/, the pre-1.3 layout); an
    absolute path anywhere on a local server, elsewhere inside the images or the VM's project directory."""
    return image_path(server, value, qemu_images_dir(server), extra_roots=[project.path])


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
