"""The IOU licence: where the iourc file is looked for, and the key check IOU images apply against the host.

A licence key is tied to the host name and the host id (what the `hostid` command prints). The expected key is the
first 16 hex digits of an MD5 over a fixed pad, a second pad, the 32-bit sum of the host id and the host name's
character codes, and the first pad again. The iourc file is INI: section `[license]`, one key per host name, each
value 16 hex digits followed by `;`.
"""

from __future__ import annotations

import configparser
import ctypes
import ctypes.util
import hashlib
import os
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gns3core.errors import EmulatorError

PAD1 = bytes.fromhex("4B582181567B0DF321439B7EAC1DE68A")
PAD2 = b"\x80" + bytes(39)
KEY_LENGTH = 16


def licence_key(hostname: str, hostid: str) -> str:
    """The key IOU expects for this host: 16 lower-case hex digits."""
    try:
        number = int(hostid, 16)
    except ValueError:
        raise EmulatorError(f"The host id {hostid!r} is not hexadecimal") from None
    total = (number + sum(ord(c) for c in hostname)) & 0xFFFFFFFF
    return hashlib.md5(PAD1 + PAD2 + struct.pack(">I", total) + PAD1).hexdigest()[:KEY_LENGTH]


def host_id() -> str:
    """The host id as the `hostid` command prints it (8 hex digits); libc's gethostid() when it is missing."""
    program = shutil.which("hostid")
    if program is not None:
        try:
            result = subprocess.run([program], capture_output=True, text=True, timeout=10, check=False)
            value = result.stdout.strip()
            if result.returncode == 0 and value:
                return value
        except (OSError, subprocess.TimeoutExpired):
            pass
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.gethostid.restype = ctypes.c_long
    return f"{libc.gethostid() & 0xFFFFFFFF:08x}"


def host_name() -> str:
    return socket.gethostname()


@dataclass
class Iourc:
    """The iourc a start uses, and how it was found."""

    path: Path
    origin: str  # "configuration", "home", "vm directory", "iourc_content"


def find_iourc(configured: str | None, vm_directory: Path, content_file: Path | None) -> Iourc | None:
    """The spec's lookup order: `[IOU] iourc_path`, `~/.iourc`, `<vm dir>/iourc`, then the file written from
    `iourc_content`. None when there is none."""
    if configured:
        return Iourc(Path(os.path.expanduser(configured)), "configuration")
    home = Path(os.path.expanduser("~/.iourc"))
    if home.exists():
        return Iourc(home, "home")
    local = vm_directory / "iourc"
    if local.exists():
        return Iourc(local, "vm directory")
    if content_file is not None and content_file.exists():
        return Iourc(content_file, "iourc_content")
    return None


def read_licence_value(path: Path, hostname: str) -> str:
    """The value the iourc gives this host's name (case-insensitive, as configparser reads keys); 409 otherwise."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise EmulatorError(f"Could not read iourc file {path}: {exc.strerror or exc}") from None
    except configparser.Error as exc:
        raise EmulatorError(f"Could not parse iourc file {path}: {str(exc).splitlines()[0]}") from None
    if not parser.has_section("license"):
        raise EmulatorError(f"The iourc file {path} has no [license] section")
    if not parser.has_option("license", hostname):
        raise EmulatorError(f'Hostname "{hostname}" not found in iourc file {path}')
    return parser.get("license", hostname)


def check_licence(path: Path, hostname: str, hostid: str) -> None:
    """409 with the released line's wording unless the iourc holds the right key for this host."""
    value = read_licence_value(path, hostname).strip()
    if not value.endswith(";"):
        raise EmulatorError(f"IOU key not ending with ; in iourc file {path}")
    key = value[:-1].strip()
    if len(key) != KEY_LENGTH:
        raise EmulatorError(f"IOU key length is not 16 characters in iourc file {path}")
    if key.lower() != licence_key(hostname, hostid):
        raise EmulatorError(f"Invalid IOU license key {key} detected in iourc file {path} for host {hostname}")


def iourc_text(hostname: str, key: str) -> str:
    """An iourc holding one key (what a licence file for this host looks like)."""
    return f"[license]\n{hostname} = {key};\n"
