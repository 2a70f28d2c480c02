"""The image store shared by emulators (`images_path/<FOLDER>`): listing and streamed uploads."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gns3core.errors import ApiError, BadRequest, Conflict
from gns3core.files import atomic_write

if TYPE_CHECKING:
    from aiohttp import StreamReader

    from gns3core.server import Server

UPLOAD_CHUNK = 1 << 20  # written and hashed per MiB: memory stays flat whatever the image size


def images_root(server: Server) -> Path:
    return (server.config.server.getpath("images_path", "~/GNS3/images") or Path("~/GNS3/images")).absolute()


def list_images(directory: Path, recursive: bool = True,
                accept: Callable[[Path], bool] | None = None) -> list[dict[str, str]]:
    """Image files under directory, without hidden files and md5 sidecars; `accept` filters by content."""
    images: list[dict[str, str]] = []
    if not directory.is_dir():
        return images
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        for filename in sorted(filenames):
            if filename.startswith(".") or filename.endswith(".md5sum"):
                continue
            full = Path(dirpath) / filename
            if not full.is_file() or (accept is not None and not accept(full)):
                continue
            images.append({"filename": filename, "path": str(full.relative_to(directory))})
    return images


def _write_chunk(handle: Any, digest: Any, data: bytes) -> None:
    digest.update(data)
    handle.write(data)


async def receive_upload(content: StreamReader, target: Path, expected_length: int | None,
                         executable: bool = False) -> str:
    """Stream a request body into target and return its md5, both computed in one pass in constant memory.

    Images are data (disks, ROMs) and are stored without any execute bit; only a kind whose images are programs
    (IOU) asks for `executable`, since whoever may upload one may then have the server run it.

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
        os.chmod(tmp_name, 0o700 if executable else 0o600)
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
