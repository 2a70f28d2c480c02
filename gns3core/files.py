"""File helpers the whole server shares: atomic writes, md5 sidecars and path containment."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path

from gns3core.errors import Conflict, Forbidden


def atomic_write(path: Path | str, data: bytes | str, mode: int | None = None) -> None:
    """Write a whole file so that a crash or a full disk leaves either the old file or the new one, never half.

    Raises Conflict with a readable message when the disk refuses (full disk, read-only, permission).
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise Conflict(_disk_message(path, exc)) from exc
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _disk_message(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"Could not write {path}: no space left on device (the previous file, if any, is unchanged)"
    return f"Could not write {path}: {exc.strerror or exc}"


def md5_of_file(path: Path | str, chunk_size: int = 1 << 20) -> str:
    """Hex md5 of a file, read in constant memory."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def cached_md5(path: Path | str) -> str | None:
    """md5 of an image, kept in a `<file>.md5sum` sidecar so large images are hashed once."""
    path = Path(path)
    sidecar = path.with_name(path.name + ".md5sum")
    try:
        if sidecar.is_file() and sidecar.stat().st_mtime >= path.stat().st_mtime:
            value = sidecar.read_text().strip()
            if len(value) == 32:
                return value
        value = md5_of_file(path)
    except OSError:
        return None
    try:
        atomic_write(sidecar, value)
    except Conflict:
        pass
    return value


def contained_path(root: Path | str, relative: str, what: str = "path") -> Path:
    """Resolve a client-supplied relative path under root, refusing anything that would leave it (403).

    Refuses absolute paths, `..` components, dot-files at any level, and symlinks that point outside root.
    """
    root = Path(root).resolve()
    if not relative or relative.startswith(("/", "\\")) or "\x00" in relative:
        raise Forbidden(f"The {what} '{relative}' is not allowed: use a path relative to the directory")
    parts = Path(os.path.normpath(relative)).parts
    if not parts or any(part.startswith(".") for part in parts):
        raise Forbidden(f"The {what} '{relative}' is not allowed: '..' and hidden files cannot be reached")
    candidate = root.joinpath(*parts)
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise Forbidden(f"The {what} '{relative}' is not allowed: it leads outside its directory")
    return candidate
