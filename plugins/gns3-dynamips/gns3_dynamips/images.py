"""IOS images: where they live (`images_path/IOS`), how a router's `image` value resolves, list and upload."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from gns3core.errors import EmulatorError, Forbidden
from gns3core.images import list_images as core_list_images

if TYPE_CHECKING:
    from gns3core.server import Server

IOS_MAGIC = b"\x7fELF\x01\x02\x01"  # 32-bit big-endian ELF: what an IOS image for dynamips is


def images_dir(server: Server) -> Path:
    base = server.config.server.getpath("images_path") or Path(os.path.expanduser("~/GNS3/images"))
    return base / "IOS"


def resolve_image(server: Server, value: str) -> Path:
    """The absolute file for an `image` value (relative names live in images_path/IOS, or one level up)."""
    directory = images_dir(server)
    if re.match(r"^[A-Za-z]:", value) and os.name != "nt":
        raise EmulatorError(f"{value} is not allowed on this remote server. Please use only a filename in "
                            f"{directory}.")
    path = Path(os.path.expanduser(value))
    if path.is_absolute():
        if not server.local:
            root = directory.parent.resolve()
            resolved = path.resolve()
            if root not in resolved.parents:
                raise EmulatorError(f"{value} is not allowed on this remote server. Please use only a filename in "
                                    f"{directory}.")
        return path
    if any(part == ".." for part in path.parts):
        raise EmulatorError(f"{value} is not allowed: image names cannot contain '..'")
    candidate = directory / path
    if not candidate.exists() and (directory.parent / path).exists():
        return directory.parent / path
    return candidate


def display_image(server: Server, path: Path | None) -> str:
    """Relative to images_path/IOS when inside it, else absolute; "" when unset."""
    if path is None:
        return ""
    directory = images_dir(server)
    try:
        return str(path.relative_to(directory))
    except ValueError:
        return str(path)


def is_ios_image(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(7) == IOS_MAGIC
    except OSError:
        return False


def list_images(server: Server) -> list[dict[str, str]]:
    """Only the top level of images_path/IOS, and only files that are IOS images, sorted by name."""
    return core_list_images(images_dir(server), recursive=False, accept=is_ios_image)


def upload_target(server: Server, name: str) -> Path:
    """Destination of an upload: a single file name inside images_path/IOS (403 otherwise)."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith(".") or "\x00" in name:
        raise Forbidden(f"Could not write image: {name} is not a file name inside the IOS images directory")
    return images_dir(server) / name
