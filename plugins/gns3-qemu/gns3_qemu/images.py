"""The Qemu image store (`images_path/QEMU`): path resolution for VM fields, listing, and streamed uploads.

Paths from clients never leave the images directory or the VM's project directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gns3core.errors import ApiError, BadRequest, Conflict, EmulatorError, Forbidden
from gns3core.files import atomic_write, contained_path

if TYPE_CHECKING:
    from aiohttp import StreamReader

    from gns3core.projects import Project
    from gns3core.server import Server

UPLOAD_CHUNK = 1 << 20  # written and hashed per MiB: memory stays flat whatever the image size
_DRIVE = re.compile(r"^[A-Za-z]:")


def images_root(server: Server) -> Path:
    return (server.config.server.getpath("images_path", "~/GNS3/images") or Path("~/GNS3/images")).absolute()


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


def list_images(directory: Path) -> list[dict[str, str]]:
    """Every image file under directory, recursively, without hidden files and md5 sidecars."""
    images: list[dict[str, str]] = []
    if not directory.is_dir():
        return images
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if filename.startswith(".") or filename.endswith(".md5sum"):
                continue
            full = Path(dirpath) / filename
            images.append({"filename": filename, "path": str(full.relative_to(directory))})
    return images


def upload_target(server: Server, relative: str) -> Path:
    try:
        return contained_path(qemu_images_dir(server), relative, "image path")
    except Forbidden as exc:
        raise Forbidden(f"Could not write image: {relative}: {exc.message}") from exc


def _write_chunk(handle: Any, digest: Any, data: bytes) -> None:
    digest.update(data)
    handle.write(data)


async def receive_upload(content: StreamReader, target: Path, expected_length: int | None) -> str:
    """Stream a request body into target and return its md5, both computed in one pass in constant memory.

    The bytes go to a hidden temporary file beside the target, renamed into place only when the body is complete:
    a broken-off upload leaves the previous image (and its `.md5sum`) as they were and no half file behind.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".upload", dir=target.parent)
    except OSError as exc:
        raise Conflict(f"Could not write image: {target}: {exc.strerror or exc}") from exc
    digest = hashlib.md5()
    received = 0
    done = False
    try:
        with os.fdopen(fd, "wb") as handle:
            buffer = bytearray()
            while True:
                chunk = await content.read(UPLOAD_CHUNK)
                if chunk:
                    buffer += chunk
                    received += len(chunk)
                if buffer and (len(buffer) >= UPLOAD_CHUNK or not chunk):
                    await asyncio.to_thread(_write_chunk, handle, digest, bytes(buffer))
                    buffer.clear()
                if not chunk:
                    break
            if expected_length is not None and received != expected_length:
                raise BadRequest(f"Upload of {target.name} broke off after {received} of {expected_length} bytes")
            await asyncio.to_thread(os.fsync, handle.fileno())
        os.chmod(tmp_name, 0o700)
        sidecar = target.with_name(target.name + ".md5sum")
        sidecar.unlink(missing_ok=True)
        os.replace(tmp_name, target)
        done = True
    except ApiError:
        raise
    except OSError as exc:
        raise Conflict(f"Could not write image: {target}: {exc.strerror or exc}") from exc
    finally:
        if not done:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    md5 = digest.hexdigest()
    atomic_write(sidecar, md5)
    return md5
