"""Portable project export (released GNS3 1.5.x): the project directory as a zip archive, written while it is sent.

A worker thread writes the archive into a `ChunkSink`, which hands fixed-size chunks to the event loop through a
small bounded queue: when the client reads slowly the thread waits, so memory stays flat whatever the project's
size. Files are opened without following symlinks, so nothing outside the project (or the images directory, for
`include_images`) ever ends up in an archive.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import logging
import os
import stat
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from gns3core.projects import TEMPORARY_MARKER

log = logging.getLogger(__name__)

CHUNK_SIZE = 256 * 1024  # bytes handed to the response at a time
QUEUE_CHUNKS = 4  # chunks waiting for the client at most: about 1 MiB in flight per export
READ_SIZE = 1024 * 1024
COMPRESS_LEVEL = 1  # deflate's fastest level: disk images dominate and barely shrink further at higher levels
TOPOLOGY_MAX = 64 * 1024 * 1024  # a topology file larger than this is exported as it is, not rewritten
TOPOLOGY_NAME = "project.gns3"
VM_SERVER_DIR = ("servers", "vm")  # files a GNS3 VM would hold; merged into the archive root
SKIPPED_UNDER_PROJECT_FILES = frozenset({"snapshots", "captures"})
SKIPPED_SUFFIXES = ("_log.txt", ".log")
SKIPPED_NAMES = frozenset({".DS_Store", TEMPORARY_MARKER})
IMAGE_FOLDERS = ("IOS", "QEMU", "IOU")  # Dynamips, Qemu, IOU: tried in this order for include_images
ZIP64_FORCE = 1024 ** 3  # members above 1 GiB get zip64 sizes at once (they may still grow while read)


class ExportCancelled(Exception):
    """The client went away: the worker stops writing."""


@dataclass(frozen=True)
class Member:
    """One file of the archive: where it is read from and its name inside the archive."""

    path: Path
    name: str
    topology: bool = False


def export_file_name(name: str | None, project_id: str) -> str:
    return f"{name or project_id}.gns3project"


def content_disposition(file_name: str) -> str:
    """`attachment` with an ASCII file name (quotes and controls replaced) and the exact one in RFC 5987 form."""
    from urllib.parse import quote

    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in file_name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(file_name, safe='')}"


def _skipped(name: str) -> bool:
    return name in SKIPPED_NAMES or name.endswith(SKIPPED_SUFFIXES)


def project_members(root: Path, project_name: str | None) -> Iterator[Member]:
    """The files an export holds, in a stable order (the layout of GNS3 1.5.x archives).

    Skipped: `project-files/snapshots` and `project-files/captures`, logs, `.DS_Store`, the temporary-project
    marker, and anything that is not a regular file (symlinks are never followed). `servers/vm/<x>` is stored as
    `<x>`. One topology file at the top becomes `project.gns3` (the one named after the project, else the newest).
    """
    topology = _choose_topology(root, project_name)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        relative = here.relative_to(root).parts
        dirnames.sort()
        if relative == ("project-files",):
            dirnames[:] = [d for d in dirnames if d not in SKIPPED_UNDER_PROJECT_FILES]
        for filename in sorted(filenames):
            if _skipped(filename):
                continue
            path = here / filename
            if path == topology:
                yield Member(path, TOPOLOGY_NAME, topology=True)
                continue
            if not relative and filename == TOPOLOGY_NAME and topology is not None:
                continue  # a stale copy: the chosen topology takes this name in the archive
            parts = (*relative, filename)
            if parts[: len(VM_SERVER_DIR)] == VM_SERVER_DIR and len(parts) > len(VM_SERVER_DIR):
                parts = parts[len(VM_SERVER_DIR):]
            yield Member(path, "/".join(parts))


def _choose_topology(root: Path, project_name: str | None) -> Path | None:
    try:
        candidates = [p for p in root.iterdir() if p.name.endswith(".gns3") and p.is_file() and not p.is_symlink()]
    except OSError:
        return None
    if not candidates:
        return None
    for candidate in candidates:
        if project_name is not None and candidate.name == f"{project_name}.gns3":
            return candidate
    return max(candidates, key=lambda p: (p.stat().st_mtime, p.name))


def image_base_name(value: str) -> str:
    """The file name of an image path written on Linux or on Windows."""
    return PureWindowsPath(value).name if "\\" in value else PurePosixPath(value).name


# The image folder of each GNS3 1.5 node type that has image files (Dynamips routers are named after their platform).
NODE_IMAGE_FOLDERS = {"QemuVM": "QEMU", "IOUDevice": "IOU", **{f"C{p}": "IOS" for p in (
    "1700", "2600", "2691", "3600", "3725", "3745", "7200")}}


def portable_topology(topology: dict[str, Any]) -> list[tuple[str, str]]:
    """Rewrite node image properties to their base names, in place; returns `(node type, original value)` pairs.

    Every property whose name ends with `image` is rewritten, except on Docker nodes (their `image` is an image
    name, not a file).
    """
    originals: list[tuple[str, str]] = []
    nodes = topology.get("topology", {}).get("nodes", []) if isinstance(topology.get("topology"), dict) else []
    for node in nodes if isinstance(nodes, list) else []:
        if not isinstance(node, dict) or node.get("type") == "DockerVM":
            continue
        properties = node.get("properties")
        if not isinstance(properties, dict):
            continue
        for key, value in list(properties.items()):
            if key.endswith("image") and isinstance(value, str) and value:
                originals.append((str(node.get("type", "")), value))
                properties[key] = image_base_name(value)
    return originals


def find_image(value: str, images_root: Path, allow_outside: bool, node_type: str = "") -> tuple[str, Path] | None:
    """Where an image named in a topology is, as `(folder, path)`, or None.

    The folder of the node's type first (Qemu `QEMU`, IOU `IOU`, Dynamips routers `IOS`), then `IOS`, `QEMU`, `IOU`
    as GNS3 1.5.x tries them: an absolute value as it is, a relative one under `images_root/<folder>`. On a server
    that is not local, only files inside the images directory are used (no `..`, no symlink out); a local server
    also takes absolute paths elsewhere, as it does for its VMs.
    """
    root = images_root.resolve()
    preferred = NODE_IMAGE_FOLDERS.get(node_type)
    folders = ([preferred] if preferred else []) + [f for f in IMAGE_FOLDERS if f != preferred]
    for folder in folders:
        candidates = []
        if os.path.isabs(value):
            candidates.append(Path(value))
        else:
            candidates.append(images_root / folder / value)
        for candidate in candidates:
            try:
                resolved = candidate.resolve()
                if not resolved.is_file():
                    continue
            except OSError:
                continue
            if allow_outside or root in resolved.parents:
                return folder, resolved
    return None


class ChunkSink(io.RawIOBase):
    """A write-only file for zipfile in a worker thread: bytes reach the event loop in chunks, and the thread waits
    while the loop's queue is full (the client reads slower than the archive is made)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any], cancelled: threading.Event,
                 chunk_size: int = CHUNK_SIZE) -> None:
        super().__init__()
        self._loop = loop
        self._queue = queue
        self._cancelled = cancelled
        self._chunk_size = chunk_size
        self._buffer = bytearray()
        self.sent = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self._cancelled.is_set():
            raise ExportCancelled()
        self._buffer += data
        while len(self._buffer) >= self._chunk_size:
            chunk = bytes(self._buffer[: self._chunk_size])
            del self._buffer[: self._chunk_size]
            self.put(chunk)
        return len(data)

    def finish(self) -> None:
        if self._buffer:
            self.put(bytes(self._buffer))
            self._buffer.clear()

    def put(self, item: Any) -> None:
        """Queue one item for the loop, waiting for room; gives up when the export is cancelled."""
        future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        while True:
            try:
                future.result(0.25)
            except concurrent.futures.TimeoutError:
                if self._cancelled.is_set():
                    future.cancel()
                    raise ExportCancelled() from None
                continue
            if isinstance(item, bytes):
                self.sent += len(item)
            return


@dataclass
class ExportJob:
    """What one export writes: the project directory, and where its images are looked up."""

    root: Path
    project_name: str | None
    images_root: Path
    include_images: bool
    allow_outside_images: bool
    warn: Callable[[str], None]

    def write(self, sink: io.RawIOBase) -> None:
        """Write the whole archive into sink (runs in a worker thread)."""
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL,
                             allowZip64=True) as archive:
            images: dict[str, Path] = {}
            written: set[str] = set()
            for member in project_members(self.root, self.project_name):
                if member.name in written:  # servers/vm/<x> and <x> both present: the archive holds one
                    self.warn(f"Could not export file {member.path}: the archive already holds {member.name}")
                    continue
                written.add(member.name)
                if member.topology:
                    self._add_topology(archive, member, images)
                else:
                    self._add_file(archive, member.path, member.name)
            for name, path in sorted(images.items()):
                if name not in written:
                    self._add_file(archive, path, name)

    def _add_topology(self, archive: zipfile.ZipFile, member: Member, images: dict[str, Path]) -> None:
        try:
            size = member.path.stat().st_size
            data = json.loads(member.path.read_bytes()) if size <= TOPOLOGY_MAX else None
        except (OSError, ValueError) as exc:
            log.warning("Topology %s exported as it is: %s", member.path, exc)
            data = None
        if not isinstance(data, dict):
            self._add_file(archive, member.path, member.name)
            return
        for node_type, value in portable_topology(data):
            if not self.include_images:
                continue
            found = find_image(value, self.images_root, self.allow_outside_images, node_type)
            if found is None:
                self.warn(f"Image {value} of the project was not found: it is not in the export")
                continue
            folder, path = found
            images.setdefault(f"images/{folder}/{image_base_name(value)}", path)
        info = zipfile.ZipInfo(TOPOLOGY_NAME, _zip_time(time.time()))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        archive.writestr(info, json.dumps(data, indent=4, sort_keys=True))

    def _add_file(self, archive: zipfile.ZipFile, path: Path, name: str) -> None:
        """One regular file, opened without following a symlink; one that cannot be opened is skipped and said so.

        A read error after the member has started cannot be skipped (its bytes are already sent): it ends the export.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            if not path.is_symlink():  # a symlink is left out on purpose, not a failure
                self.warn(f"Could not export file {path}: {exc.strerror or exc}")
            return
        with os.fdopen(fd, "rb") as source:
            info_stat = os.fstat(source.fileno())
            if not stat.S_ISREG(info_stat.st_mode):
                return
            info = zipfile.ZipInfo(name, _zip_time(info_stat.st_mtime))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | stat.S_IMODE(info_stat.st_mode)) << 16
            info.file_size = info_stat.st_size
            with archive.open(info, "w", force_zip64=info_stat.st_size > ZIP64_FORCE) as target:
                while chunk := source.read(READ_SIZE):
                    target.write(chunk)


def _zip_time(timestamp: float) -> tuple[int, int, int, int, int, int]:
    """A zip member time: local time, clamped to the format's 1980-2107 range."""
    moment = time.localtime(timestamp)[:6]
    if moment[0] < 1980:
        return (1980, 1, 1, 0, 0, 0)
    if moment[0] > 2107:
        return (2107, 12, 31, 23, 59, 58)
    return moment  # type: ignore[return-value]


DONE = object()


async def run_export(job: ExportJob, send: Callable[[bytes], Any],
                     on_first: Callable[[], Any] | None = None) -> int:
    """Write the archive of `job`, passing each chunk to `send` (awaited); returns the number of bytes sent.

    `on_first` is awaited before the first chunk (the response is prepared only once there is something to send,
    so a failure before that is still an ordinary error answer). The worker thread stops when this coroutine ends,
    whether the client went away or `send` failed.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_CHUNKS)
    cancelled = threading.Event()
    sink = ChunkSink(loop, queue, cancelled)

    def work() -> None:
        try:
            job.write(sink)
            sink.finish()
        except ExportCancelled:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, which raises it
            try:
                sink.put(exc)
            except ExportCancelled:
                pass
            return
        try:
            sink.put(DONE)
        except ExportCancelled:
            pass

    worker = loop.run_in_executor(None, work)
    sent = 0
    try:
        first = True
        while True:
            item = await queue.get()
            if item is DONE:
                break
            if isinstance(item, BaseException):
                raise item
            if first and on_first is not None:
                await on_first()
            first = False
            await send(item)
            sent += len(item)
    finally:
        cancelled.set()
        while not queue.empty():  # let a worker blocked on a full queue see the cancellation at once
            queue.get_nowait()
        try:
            await asyncio.wait_for(asyncio.shield(worker), 30)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("The export worker did not stop within 30 s")
    return sent
