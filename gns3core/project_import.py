"""Portable project import (released GNS3 1.5.x), all or nothing.

The archive is checked whole before a byte is extracted (names, types, sizes, counts, compression ratios, members
that share bytes), extracted into a staging directory beside the project while every member's real size is counted,
its topology rewritten there, and only then moved into place: project files and images are renamed in one pass that
is undone if any step fails. A broken or hostile archive is a 400 and leaves the disk as it was.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gns3core.errors import BadRequest, Conflict
from gns3core.projects import TEMPORARY_MARKER

log = logging.getLogger(__name__)

TOPOLOGY_NAME = "project.gns3"
TOPOLOGY_MAX = 64 * 1024 * 1024
IMAGES_DIR = "images"
STAGING_PREFIX = ".gns3-import-"  # staging directories beside projects; removed at start if a crash left one
VM_MODULES = ("qemu", "iou", "docker")  # moved under servers/vm/ for a GNS3 VM (gns3vm=1)
VM_NODE_TYPES = frozenset({"QemuVM", "IOUDevice", "DockerVM"})
LOCAL_SERVER = {"id": 1, "local": True, "vm": False}
GNS3_VM_SERVER = {"id": 2, "local": False, "vm": True}
COPY_CHUNK = 1024 * 1024
NAME_MAX = 255
PATH_MAX = 4096
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ImportLimits:
    """What an archive may hold; `[Server] import_max_size`, `import_max_files` and `import_max_ratio` set them."""

    max_bytes: int = 64 * 1024 ** 3  # uncompressed content, and the archive itself
    max_files: int = 100_000
    # Uncompressed / compressed size of one member. Deflate cannot exceed about 1032:1, so a larger figure is a lie
    # of the archive's directory or a member built to expand.
    max_ratio: int = 1100


@dataclass(frozen=True)
class ArchiveMember:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    is_dir: bool
    mode: int


def refuse(message: str) -> BadRequest:
    return BadRequest(f"Cannot import the project: {message}; nothing was changed")


# -- checking ------------------------------------------------------------------------------------------------------


def member_parts(name: str) -> tuple[tuple[str, ...], bool]:
    """The path components of a member name, and whether it is a directory; 400 for any name that could leave the
    project (absolute, drive letter, `..`, backslashes, empty or `.` components, NUL, over-long)."""
    shown = name[:200]
    if "\x00" in name or "\\" in name:
        raise refuse(f"the member name {shown!r} holds a NUL or a backslash")
    if name.startswith("/") or _DRIVE.match(name):
        raise refuse(f"the member {shown!r} has an absolute path")
    if len(name.encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise refuse(f"the member name {shown!r}... is longer than {PATH_MAX} bytes")
    is_dir = name.endswith("/")
    parts = tuple(name.rstrip("/").split("/"))
    if any(part in ("", ".", "..") for part in parts):
        raise refuse(f"the member {shown!r} has an empty, '.' or '..' path component")
    if any(len(part.encode("utf-8", "surrogateescape")) > NAME_MAX for part in parts):
        raise refuse(f"the member {shown!r} has a path component longer than {NAME_MAX} bytes")
    return parts, is_dir


def check_archive(archive: zipfile.ZipFile, archive_size: int, limits: ImportLimits) -> list[ArchiveMember]:
    """Every member, checked before anything is extracted; 400 naming the first problem."""
    infos = archive.infolist()
    if len(infos) > limits.max_files:
        raise refuse(f"the archive holds {len(infos)} members, more than the {limits.max_files} allowed")
    members: list[ArchiveMember] = []
    seen: dict[tuple[str, ...], bool] = {}
    total = 0
    for info in infos:
        parts, is_dir = member_parts(info.filename)
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise refuse(f"the member {info.filename!r} is a symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR) or (kind == stat.S_IFDIR and not is_dir):
            raise refuse(f"the member {info.filename!r} is not a regular file or a directory")
        if info.flag_bits & 0x1:
            raise refuse(f"the member {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise refuse(f"the member {info.filename!r} uses compression method {info.compress_type}; "
                         "only stored and deflate are accepted")
        if parts in seen:
            raise refuse(f"the member {info.filename!r} appears twice")
        seen[parts] = is_dir
        if not is_dir:
            if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
                raise refuse(f"the stored member {info.filename!r} has two different sizes")
            if info.file_size > 0 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
                raise refuse(f"the member {info.filename!r} would expand more than {limits.max_ratio} times")
            total += info.file_size
            if total > limits.max_bytes:
                raise refuse(f"its content is larger than the {_size(limits.max_bytes)} allowed")
        members.append(ArchiveMember(info, parts, is_dir, mode))
    for parts in seen:
        for depth in range(1, len(parts)):
            if seen.get(parts[:depth]) is False:
                raise refuse(f"{'/'.join(parts[:depth])!r} is both a file and a folder in the archive")
    _check_no_shared_bytes(archive, members, archive_size)
    return members


def _check_no_shared_bytes(archive: zipfile.ZipFile, members: list[ArchiveMember], archive_size: int) -> None:
    """Each member's bytes must lie apart from every other's: overlapping members are how a few kilobytes declare
    terabytes (a "non-recursive zip bomb")."""
    fp = archive.fp
    assert fp is not None
    end_of_data = getattr(archive, "start_dir", archive_size)
    spans = []
    for member in members:
        offset = member.info.header_offset
        fp.seek(offset)
        header = fp.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
            raise refuse(f"the member {member.info.filename!r} has no valid local header (a broken archive)")
        fields = _LOCAL_HEADER.unpack(header)
        data_start = offset + _LOCAL_HEADER.size + fields[10] + fields[11]
        spans.append((offset, data_start + member.info.compress_size, member.info.filename))
    spans.sort()
    for (_start, end, name), (next_start, _end, next_name) in zip(spans, spans[1:], strict=False):
        if end > next_start:
            raise refuse(f"the members {name!r} and {next_name!r} share bytes (a zip bomb)")
    if spans and spans[-1][1] > end_of_data:
        raise refuse(f"the member {spans[-1][2]!r} runs past the end of the archive's data")


def _size(value: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value} {unit}" if unit == "bytes" else f"{value:.0f} {unit}"
        value /= 1024  # type: ignore[assignment]
    return str(value)


# -- extracting ----------------------------------------------------------------------------------------------------


def extract(archive: zipfile.ZipFile, members: list[ArchiveMember], staging: Path) -> None:
    """Write every member under staging, counting the bytes that really come out (a member that yields more than
    it declared, or fails its CRC, is refused)."""
    for member in members:
        if member.parts == (TEMPORARY_MARKER,):
            continue  # the imported project is not temporary: its files must survive the next start
        target = staging.joinpath(*member.parts)
        if member.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        executable = bool(stat.S_IMODE(member.mode) & 0o111)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755 if executable else 0o644)
        written = 0
        with os.fdopen(fd, "wb") as out:
            try:
                with archive.open(member.info) as source:
                    while chunk := source.read(COPY_CHUNK):
                        written += len(chunk)
                        if written > member.info.file_size:
                            raise refuse(f"the member {member.info.filename!r} is larger than it declares")
                        out.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise refuse(f"the member {member.info.filename!r} is damaged ({exc})") from exc
        if written != member.info.file_size:
            raise refuse(f"the member {member.info.filename!r} is shorter than it declares")


# -- the topology --------------------------------------------------------------------------------------------------


def topology_file_name(name: str) -> str:
    """`<name>.gns3`, the file the GNS3 client opens after an import; 409 for a name that is not a file name."""
    file_name = f"{name}.gns3"
    if "/" in name or "\\" in name or "\x00" in name or name in (".", "..") or len(file_name.encode()) > NAME_MAX:
        raise Conflict(f"Cannot import the project: its name {name[:100]!r} cannot be used as a file name "
                       "(rename the project first)")
    return file_name


def rewrite_topology(data: dict[str, Any], project_id: str, name: str, for_gns3_vm: bool) -> dict[str, Any]:
    """The topology as this server's project: its id and name, every node on the local server (or, for a GNS3
    VM, Qemu, IOU and Docker nodes on the VM)."""
    data["project_id"] = project_id
    data["name"] = name
    topology = data.get("topology")
    if not isinstance(topology, dict):
        topology = data["topology"] = {}
    nodes = topology.get("nodes")
    if not isinstance(nodes, list):
        nodes = topology["nodes"] = []
    servers = [dict(LOCAL_SERVER)]
    if for_gns3_vm:
        servers.append(dict(GNS3_VM_SERVER))
    topology["servers"] = servers
    for node in nodes:
        if isinstance(node, dict):
            on_vm = for_gns3_vm and node.get("type") in VM_NODE_TYPES
            node["server_id"] = GNS3_VM_SERVER["id"] if on_vm else LOCAL_SERVER["id"]
    return data


def read_topology(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > TOPOLOGY_MAX:
            raise refuse(f"{TOPOLOGY_NAME} is larger than {_size(TOPOLOGY_MAX)}")
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise refuse(f"{TOPOLOGY_NAME} is not valid JSON ({str(exc)[:200]})") from exc
    if not isinstance(data, dict):
        raise refuse(f"{TOPOLOGY_NAME} is not a JSON object")
    return data


def prepare_topology(staging: Path, project_id: str, name: str | None, for_gns3_vm: bool) -> str | None:
    """Rewrite `project.gns3` in staging as `<name>.gns3`, move VM files for a GNS3 VM; returns the name used (the
    archive's own when the project has none)."""
    topology_path = staging / TOPOLOGY_NAME
    data = read_topology(topology_path) if topology_path.is_file() else None
    if name is None and data is not None and isinstance(data.get("name"), str) and data["name"]:
        name = data["name"]
    if for_gns3_vm:
        for module in VM_MODULES:
            source = staging / "project-files" / module
            if source.is_dir():
                target = staging / "servers" / "vm" / "project-files" / module
                if target.exists():
                    raise refuse(f"it holds both project-files/{module} and servers/vm/project-files/{module}")
                target.parent.mkdir(parents=True, exist_ok=True)
                source.rename(target)
    if data is not None:
        file_name = topology_file_name(name or project_id)
        rewritten = rewrite_topology(data, project_id, name or project_id, for_gns3_vm)
        (staging / file_name).write_text(json.dumps(rewritten, indent=4, sort_keys=True), encoding="utf-8")
        if file_name != TOPOLOGY_NAME:
            topology_path.unlink()
    return name


# -- moving into place -----------------------------------------------------------------------------------------------


@dataclass
class Placement:
    """Renames into place, each one recorded so that a failure puts everything back (newest first)."""

    backup: Path
    _undo: list[Callable[[], None]] = field(default_factory=list)
    _count: int = 0

    def _aside(self, path: Path) -> None:
        """Move an existing entry into the backup directory (restored on rollback)."""
        self._count += 1
        spot = self.backup / str(self._count)
        os.rename(path, spot)
        self._undo.append(lambda: os.rename(spot, path))

    def put_aside(self, path: Path) -> None:
        """Take an entry out of the way (it comes back on rollback, and goes with the staging directory else)."""
        self._aside(path)

    def ensure_root(self, root: Path) -> None:
        """root as a directory, creating the missing ones (removed again on rollback)."""
        missing = []
        current = root
        while not current.is_dir() and current != current.parent:
            missing.append(current)
            current = current.parent
        for directory in reversed(missing):
            directory.mkdir()
            self._undo.append(lambda d=directory: d.rmdir())

    def ensure_dir(self, path: Path, root: Path) -> None:
        """`path` and the folders between root and it, as real directories: a file or a symlink in the way is moved
        aside (nothing is ever written through a symlink)."""
        current = root
        for part in path.relative_to(root).parts:
            current = current / part
            if current.is_dir() and not current.is_symlink():
                continue
            if current.is_symlink() or current.exists():
                self._aside(current)
            current.mkdir()
            self._undo.append(lambda d=current: d.rmdir())

    def put(self, source: Path, target: Path, root: Path) -> None:
        """Rename a staged file to target (its parents created), moving whatever is there aside."""
        self.ensure_dir(target.parent, root)
        if target.is_symlink() or target.exists():
            self._aside(target)
        _move(source, target)
        self._undo.append(lambda: _move(target, source))

    def rollback(self) -> None:
        for undo in reversed(self._undo):
            try:
                undo()
            except OSError as exc:  # keep going: put back as much as possible, and say what could not be
                log.error("Could not undo part of a failed import: %s", exc)
        self._undo.clear()


def _move(source: Path, target: Path) -> None:
    """Rename, or copy then rename across file systems (the images directory may be elsewhere)."""
    try:
        os.rename(source, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".import", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, COPY_CHUNK)
            out.flush()
            os.fsync(out.fileno())
        shutil.copymode(source, tmp_name)
        os.replace(tmp_name, target)
    except BaseException:
        os.unlink(tmp_name)
        raise
    os.unlink(source)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def place_images(staging_images: Path, images_root: Path, placement: Placement, replace_different: bool) -> None:
    """Every file under the archive's `images/` to `<images_path>/<same path>`. An identical image is kept; a
    different one is replaced on a local server (as GNS3 1.5.x does) and refused (409) on any other, where other
    users' projects may rely on it."""
    for dirpath, _dirnames, filenames in os.walk(staging_images):
        for filename in sorted(filenames):
            source = Path(dirpath) / filename
            relative = source.relative_to(staging_images)
            target = images_root / relative
            if target.is_file() and not target.is_symlink():
                if target.stat().st_size == source.stat().st_size and _md5(target) == _md5(source):
                    continue
                if not replace_different:
                    raise Conflict(f"Cannot import the project: the image {relative} already exists on this server "
                                   "with a different content; nothing was changed")
            placement.ensure_root(images_root)
            placement.put(source, target, images_root)
            sidecar = target.with_name(target.name + ".md5sum")
            if sidecar.is_file():  # the checksum of the image it replaced
                placement.put_aside(sidecar)


def place_project_files(staging: Path, project_root: Path, placement: Placement) -> None:
    """Every staged file (and empty folder) into the project directory, replacing what has the same name."""
    for dirpath, dirnames, filenames in os.walk(staging):
        here = Path(dirpath)
        relative = here.relative_to(staging)
        if relative == Path("."):
            dirnames[:] = [d for d in dirnames if d != IMAGES_DIR]
        placement.ensure_dir(project_root / relative, project_root)
        for filename in sorted(filenames):
            placement.put(here / filename, project_root / relative / filename, project_root)


# -- the whole import ------------------------------------------------------------------------------------------------


@dataclass
class ImportJob:
    archive_path: Path
    staging: Path
    project_root: Path
    project_id: str
    project_name: str | None
    images_root: Path
    for_gns3_vm: bool
    replace_images: bool
    limits: ImportLimits

    def run(self) -> str | None:
        """Check, extract, rewrite, move into place (runs in a worker thread); returns the project's name."""
        extracted = self.staging / "content"
        backup = self.staging / "replaced"
        extracted.mkdir()
        backup.mkdir()
        try:
            with zipfile.ZipFile(self.archive_path) as archive:
                members = check_archive(archive, self.archive_path.stat().st_size, self.limits)
                _check_free_space(self.staging, sum(m.info.file_size for m in members))
                extract(archive, members, extracted)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as exc:
            raise refuse(f"the body is not a readable ZIP archive ({str(exc)[:200]})") from exc
        name = prepare_topology(extracted, self.project_id, self.project_name, self.for_gns3_vm)
        placement = Placement(backup)
        try:
            images = extracted / IMAGES_DIR
            if images.is_dir():
                place_images(images, self.images_root, placement, self.replace_images)
            place_project_files(extracted, self.project_root, placement)
        except BaseException:
            placement.rollback()
            raise
        return name


def _check_free_space(directory: Path, needed: int) -> None:
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return
    if needed > free:
        raise Conflict(f"Cannot import the project: it needs {_size(needed)} and only {_size(free)} are free on "
                       f"the disk of {directory.parent}; nothing was changed")


def make_staging(project_root: Path) -> Path:
    """A private directory beside the project (same file system, so moving into place is a rename)."""
    project_root.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=project_root.parent))


def remove_leftover_staging(location: Path) -> None:
    """Crash recovery: staging directories a stopped server left in the projects directory."""
    try:
        entries = list(location.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(STAGING_PREFIX) and entry.is_dir() and not entry.is_symlink():
            log.info("Removing the leftover import directory %s", entry)
            shutil.rmtree(entry, ignore_errors=True)
