"""Where a request may point the server on its host: one policy for every field that becomes a path or a program.

A local server (`--local`, `[Server] local = true`) runs on the user's own machine for the user's own client: it
accepts absolute paths anywhere, as API v1 does. Any other server keeps every client-chosen path inside the images
directory, the projects directory or the VM's own directory, and says so in its 409. Programs are a separate rule,
local or not: the server runs only programs it found itself, never a file under the images or projects directories
(anything there may have been uploaded by a client).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from gns3core.errors import EmulatorError
from gns3core.files import contained_path
from gns3core.images import images_root

if TYPE_CHECKING:
    from gns3core.server import Server

LOCAL_HINT = "a local server (--local, or [Server] local = true) accepts it"
_DRIVE = re.compile(r"^[A-Za-z]:")


def inside(path: Path | str, root: Path | str) -> bool:
    """True when path, symlinks resolved, is root or lies under it."""
    resolved = Path(path).resolve()
    base = Path(root).resolve()
    return resolved == base or base in resolved.parents


def server_roots(server: Server) -> list[Path]:
    """The directories clients can write into: images, the projects directory and every open project."""
    roots = [images_root(server), server.projects.location]
    roots += [project.path for project in server.projects.projects.values()]
    return [root.resolve() for root in roots]


def image_path(server: Server, value: str, directory: Path, *, extra_roots: Iterable[Path] = ()) -> Path | None:
    """An image field (api-emulators §0.3): `""` is unset; a relative name lives in `directory` (or one level up,
    the pre-1.3 layout); an absolute path is taken as is on a local server, and elsewhere only inside the images
    directory or `extra_roots` (the VM's project)."""
    if not value:
        return None
    refused = (f"{value} is not allowed on this remote server. Please use only a filename in {directory} "
               f"({LOCAL_HINT.replace('accepts it', 'accepts other paths')}).")
    if _DRIVE.match(value) and os.name != "nt":
        raise EmulatorError(refused)
    if os.path.isabs(value):
        if not server.local and not any(inside(value, root) for root in [images_root(server), *extra_roots]):
            raise EmulatorError(refused)
        return Path(os.path.normpath(value))
    candidate = contained_path(directory, value, "image path")
    if not candidate.exists():
        older = contained_path(images_root(server), value, "image path")
        if older.exists():
            return older
    return candidate


def host_file(server: Server, value: str, roots: Iterable[Path], what: str) -> Path:
    """A file on the host named by a request (a UNIX socket, a VDE control file): anywhere on a local server,
    elsewhere inside one of `roots` (409 otherwise)."""
    if "\x00" in value:
        raise EmulatorError(f"The {what} {value!r} is not allowed: it contains a NUL character")
    path = Path(value)
    roots = list(roots)
    if server.local:
        return path
    if not path.is_absolute() and roots:
        path = roots[0] / path
    if not any(inside(path, root) for root in roots):
        places = " or ".join(str(root) for root in roots)
        raise EmulatorError(f"The {what} {value} is not allowed on this server: use a path inside {places} "
                            f"({LOCAL_HINT.replace('accepts it', 'accepts any path')})")
    return path


def check_program(server: Server, program: str | Path, what: str = "program") -> None:
    """409 for a program under the images or projects directories: a client may have put it there."""
    for root in server_roots(server):
        if inside(program, root):
            raise EmulatorError(f"The {what} {program} is refused: the server never runs a file from {root}, "
                                "where clients can upload files")
