"""Which free-text Qemu `options` a server that is not local refuses: those that read or write host files outside
the images and project directories, or run host programs.

Qemu has many ways to touch the host (`-chardev file`, `-serial pipe:`, a second monitor whose `migrate exec:` runs
a shell command, `script=` on a tap netdev, `-virtfs`, `-plugin`, ...). A local server runs for its own user and
accepts them all, as API v1 does; any other server accepts only options that stay inside the guest, paths inside the
images directory or the VM's project, and says which option it refused.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gns3_qemu.command import split_options
from gns3core.errors import EmulatorError
from gns3core.host_paths import LOCAL_HINT, inside
from gns3core.images import images_root

if TYPE_CHECKING:
    from gns3core.server import Server

# Options refused whatever their value: host programs, host directories shared whole, extra monitors (a monitor's
# `migrate exec:` runs any shell command), configuration files, privilege changes, files written by Qemu itself.
REFUSED = {
    "virtfs": "shares a host directory", "fsdev": "shares a host directory", "plugin": "loads a host library",
    "run-with": "changes the user or root directory", "runas": "changes the user", "chroot": "changes the root",
    "daemonize": "detaches from the server", "readconfig": "reads a host configuration file",
    "writeconfig": "writes a host file", "set": "sets arbitrary properties", "add-fd": "passes host file descriptors",
    "monitor": "opens a monitor, which can run host commands", "qmp": "opens a monitor, which can run host commands",
    "qmp-pretty": "opens a monitor, which can run host commands", "mon": "opens a monitor, which can run host commands",
    "pidfile": "writes a host file", "D": "writes a host log file", "incoming": "can run a host command",
}
# Options whose value is a host path.
PATH_OPTIONS = {"hda", "hdb", "hdc", "hdd", "cdrom", "fda", "fdb", "mtdblock", "sd", "pflash", "bios", "kernel",
                "initrd", "dtb", "option-rom", "L", "mem-path", "qtest-log"}
# Options whose value is a character device: `file:P`, `pipe:P`, `unix:P`, `/dev/...`, `mon:...`.
CHARDEV_OPTIONS = {"serial", "parallel", "debugcon", "gdb", "qtest", "vnc"}
# Keys of `key=value` lists (and JSON forms) that name host paths, or host programs.
PATH_KEYS = {"file", "filename", "path", "mem-path", "logfile", "romfile", "tftp", "sock", "dumpdtb", "events",
             "x509-dir", "dir"}
PROGRAM_KEYS = {"script", "downscript", "helper", "smb"}
_PROTOCOL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


class Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_options(server: Server, options: str, project_dir: Path, cwd: Path) -> None:
    """409 naming the first option a non-local server refuses; nothing on a local server."""
    if server.local or not options:
        return
    roots = [images_root(server), project_dir]
    tokens = split_options(options)
    for index, token in enumerate(tokens):
        if not token.startswith("-") or token == "-":
            continue
        name = token.lstrip("-")
        value = tokens[index + 1] if index + 1 < len(tokens) else ""
        try:
            _check_option(name, value, roots, cwd)
        except Refused as exc:
            shown = f"{token} {value}" if value and not value.startswith("-") else token
            if len(shown) > 120:
                shown = shown[:120] + "..."
            raise EmulatorError(f"The QEMU option '{shown}' is refused on this server: it {exc.reason}. Use paths "
                                f"inside the images or project directories, or {LOCAL_HINT}") from None


def _check_option(name: str, value: str, roots: list[Path], cwd: Path) -> None:
    if name in REFUSED:
        raise Refused(REFUSED[name])
    if name in PATH_OPTIONS:
        _check_path(value, roots, cwd)
    elif name in CHARDEV_OPTIONS:
        _check_chardev_spec(value, roots, cwd)
    if value.startswith("{"):
        _check_json(value, roots, cwd)
        return
    pairs = _key_values(value)
    if name == "chardev" and pairs and pairs[0][0] in ("file", "pipe", "serial", "tty", "parallel", "parport"):
        if not any(key == "path" for key, _ in pairs):
            raise Refused("opens a host device or file")
    for key, item in pairs:
        _check_key(key, item, roots, cwd)


def _key_values(value: str) -> list[tuple[str, str]]:
    """`a,b=c,d=e,,f` -> [("a", ""), ("b", "c"), ("d", "e,f")] (Qemu doubles a literal comma)."""
    parts = value.replace(",,", "\x00").split(",")
    pairs = []
    for part in parts:
        key, _, item = part.partition("=")
        pairs.append((key.replace("\x00", ","), item.replace("\x00", ",")))
    return pairs


def _check_key(key: str, value: str, roots: list[Path], cwd: Path) -> None:
    key = key.strip()
    leaf = key.rsplit(".", 1)[-1]
    if leaf in PROGRAM_KEYS and value not in ("", "no"):
        raise Refused(f"runs a host program ({key}=)")
    if leaf in PATH_KEYS and value:
        _check_path(value, roots, cwd)


def _check_json(value: str, roots: list[Path], cwd: Path) -> None:
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise Refused("has a JSON argument that cannot be read") from exc
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(sub, str):
                    _check_key(str(key), sub, roots, cwd)
                else:
                    stack.append(sub)
        elif isinstance(item, list):
            stack.extend(item)


def _check_chardev_spec(value: str, roots: list[Path], cwd: Path) -> None:
    if value.startswith("mon:"):
        raise Refused("opens a monitor, which can run host commands")
    for prefix in ("file:", "pipe:", "unix:"):
        if value.startswith(prefix):
            _check_path(value[len(prefix):].split(",", 1)[0], roots, cwd)
            return
    if value.startswith("/"):
        _check_path(value.split(",", 1)[0], roots, cwd)


def _check_path(value: str, roots: list[Path], cwd: Path) -> None:
    """A path Qemu opens: relative ones are relative to its working directory (the VM directory)."""
    if value.startswith("json:"):
        _check_json(value[5:], roots, cwd)
        return
    protocol = _PROTOCOL.match(value)
    if protocol is not None:
        if protocol.group(1) != "file":
            raise Refused(f"uses the '{protocol.group(1)}:' protocol on a host path")
        value = value[len("file:"):]
    path = Path(value) if os.path.isabs(value) else cwd / value
    if not any(inside(path, root) for root in roots):
        raise Refused(f"reads or writes {value[:100]}, outside the images and project directories")
