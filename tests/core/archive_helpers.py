"""Building archives for the import tests: well-formed ones, and the hostile or broken kinds an import must refuse."""

from __future__ import annotations

import io
import json
import stat
import struct
import warnings
import zipfile
from typing import Any

TOPOLOGY = {
    "name": "lab",
    "project_id": "11111111-1111-4111-8111-111111111111",
    "revision": 4,
    "type": "topology",
    "version": "1.5.4",
    "topology": {
        "nodes": [
            {"id": 1, "server_id": 7, "type": "VPCSDevice", "properties": {"name": "PC1"}},
            {"id": 2, "server_id": 7, "type": "QemuVM",
             "properties": {"name": "R1", "hda_disk_image": "linux.qcow2"}},
        ],
        "servers": [{"id": 7, "local": False, "host": "10.0.0.9", "port": 3080}],
    },
}


def zip_bytes(members: dict[str, bytes | str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def project_archive(extra: dict[str, bytes | str] | None = None, topology: dict[str, Any] | None = None) -> bytes:
    members: dict[str, bytes | str] = {
        "project.gns3": json.dumps(topology or TOPOLOGY),
        "project-files/vpcs/aaaa/startup.vpc": "set pcname PC1\nip 10.0.0.1 24\n",
        "project-files/qemu/bbbb/hda_disk.qcow2": b"QFI\xfb" + bytes(4000),
    }
    members.update(extra or {})
    return zip_bytes(members)


def with_mode(name: str, mode: int, content: bytes = b"x") -> bytes:
    """One member whose unix mode says it is a symlink, a FIFO, a device..."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("project.gns3", json.dumps(TOPOLOGY))
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = mode << 16
        archive.writestr(info, content)
    return buffer.getvalue()


def symlink_member() -> bytes:
    return with_mode("project-files/vpcs/aaaa/startup.vpc", stat.S_IFLNK | 0o777, b"/etc/passwd")


def fifo_member() -> bytes:
    return with_mode("project-files/fifo", stat.S_IFIFO | 0o644)


def _central_entries(data: bytes) -> list[int]:
    """Offsets of the central directory entries."""
    offsets, start = [], 0
    while (found := data.find(b"PK\x01\x02", start)) >= 0:
        offsets.append(found)
        start = found + 4
    return offsets


def patched_central(data: bytes, index: int, field_offset: int, fmt: str, value: int) -> bytes:
    """Change one field of the central directory entry `index` (e.g. 24 = uncompressed size, 42 = header offset)."""
    entry = _central_entries(data)[index]
    buffer = bytearray(data)
    struct.pack_into(fmt, buffer, entry + field_offset, value)
    return bytes(buffer)


def overlapping_bomb(copies: int = 50) -> bytes:
    """Many central directory entries sharing the bytes of one 10 MB member: kilobytes that declare 500 MB."""
    data = zip_bytes({f"project-files/f{i}": (bytes(10 * 1024 * 1024) if i == 0 else b"") for i in range(copies)})
    first = _central_entries(data)[0]
    crc, compressed, size = struct.unpack_from("<LLL", data, first + 16)
    for index in range(1, copies):
        for offset, value in ((16, crc), (20, compressed), (24, size), (42, 0)):
            data = patched_central(data, index, offset, "<L", value)
    return data


def lying_size() -> bytes:
    """A member whose directory entry claims 10 GB from a few hundred bytes of deflate."""
    return patched_central(zip_bytes({"project-files/big": bytes(100_000)}), 0, 24, "<L", 0xFFFF0000)


def duplicate_member() -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is asked to write
        archive.writestr("project-files/a.txt", "first")
        archive.writestr("project-files/a.txt", "second")
    return buffer.getvalue()


def encrypted_flag() -> bytes:
    data = zip_bytes({"project-files/secret": b"x" * 100})
    return patched_central(data, 0, 8, "<H", 0x1)


def damaged_crc() -> bytes:
    data = bytearray(zip_bytes({"project-files/a.txt": b"hello world " * 100}, zipfile.ZIP_STORED))
    where = data.find(b"hello world")
    data[where] ^= 0xFF
    return bytes(data)


def bzip2_member() -> bytes:
    return zip_bytes({"project-files/a.txt": b"hello" * 1000}, zipfile.ZIP_BZIP2)
