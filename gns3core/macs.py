"""MAC addresses the server hands out to virtual NICs: one base per server, so servers sharing a lab never collide.

`[Server] mac_base` chooses the base:

* empty or `auto` (default): three bytes derived from the server identity, a random id kept in the projects
  directory (`.gns3server-id`, created on first use): each server, and each projects directory, gets its own base.
  The first byte is locally administered and unicast (`x2`, `x6`, `xa` or `xe`), so no vendor address can clash.
* three bytes such as `02:4a:7c`: that base (a multicast first byte is refused).
* `gns3`: GNS3's own addresses (VPCS `00:50:79:66:68:<n>`, Qemu `00:00:ab:<vm id>:<n>`, Dynamips' choice for
  routers); fine for a single server, identical on every server.

Every kind draws from its own part of the base, so no two kinds meet: VPCS `<base>:00:00:<n>`, Dynamips routers
`<base>:01-0f:<id>:00` (dynamips numbers the interfaces in the last byte), Qemu `<base>:10-ff:<xx>:<adapter>`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from gns3core.errors import Conflict

log = logging.getLogger(__name__)

IDENTITY_FILE = ".gns3server-id"
GNS3 = "gns3"
GNS3_VPCS_PREFIX = "00:50:79:66:68"
VPCS_PLANE = 0x00
DYNAMIPS_PLANES = range(0x01, 0x10)
QEMU_PLANES = range(0x10, 0x100)
_BASE_PATTERN = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){2}$")


def _hex(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


@dataclass(frozen=True)
class MacBase:
    """The server's MAC base; `prefix` is None for GNS3's fixed addresses. `origin` says where it came from."""

    prefix: bytes | None
    origin: str

    @property
    def gns3(self) -> bool:
        return self.prefix is None

    def __str__(self) -> str:
        return GNS3 if self.prefix is None else _hex(self.prefix)

    def vpcs(self, offset: int) -> str:
        """The address of VPCS MAC offset `offset` (0-254, unique per project)."""
        if self.prefix is None:
            return f"{GNS3_VPCS_PREFIX}:{offset:02x}"
        return _hex(self.prefix + bytes((VPCS_PLANE, 0, offset & 0xFF)))

    def qemu(self, vm_id: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
        """The default base MAC of Qemu VM `vm_id` (adapter n adds n to the last byte), stable for the VM id.

        `taken` holds base MACs of the server's other Qemu VMs: the next free value is used instead of one of them.
        """
        if self.prefix is None:
            return f"00:00:ab:{vm_id[-4:-2]}:{vm_id[-2:]}:00"
        digest = hashlib.sha256(vm_id.encode()).digest()
        span = len(QEMU_PLANES) * 256
        start = int.from_bytes(digest[:4], "big") % span
        for step in range(span):
            value = (start + step) % span
            mac = _hex(self.prefix + bytes((QEMU_PLANES.start + value // 256, value % 256, 0)))
            if mac not in taken:
                return mac
        raise Conflict(f"Every default Qemu MAC address of base {self} is in use on this server: give the VM a "
                       "mac_address of its own")

    def dynamips(self, dynamips_id: int) -> str | None:
        """The chassis MAC of Dynamips router `dynamips_id`, in dynamips' `xxxx.xxxx.xxxx` form; None in GNS3 mode
        (dynamips then picks one from its instance id and process id, as GNS3 let it)."""
        if self.prefix is None:
            return None
        number = dynamips_id % (len(DYNAMIPS_PLANES) * 256)
        raw = self.prefix + bytes((DYNAMIPS_PLANES.start + number // 256, number % 256, 0))
        text = raw.hex()
        return f"{text[0:4]}.{text[4:8]}.{text[8:12]}"


def parse_mac_base(value: str | None) -> str | bytes | None:
    """`[Server] mac_base`: None for the derived default, GNS3 for GNS3's addresses, else three bytes. 409 for a value
    that is none of these, with what to write instead."""
    text = (value or "").strip().lower().replace("-", ":")
    if text in ("", "auto"):
        return None
    if text == GNS3:
        return GNS3
    if not _BASE_PATTERN.match(text):
        raise Conflict(f"Invalid [Server] mac_base {value!r} in the server configuration: use auto (a base derived "
                       "from the server identity), gns3 (GNS3's 00:50:79:66:68:xx) or three bytes such as 02:4a:7c")
    prefix = bytes.fromhex(text.replace(":", ""))
    if prefix[0] & 0x01:
        raise Conflict(f"Invalid [Server] mac_base {value!r}: its first byte is a multicast address (odd); use an even "
                       "first byte, ideally with the locally administered bit (02, 06, 0a, 0e, ...)")
    return prefix


def base_from_identity(identity: bytes) -> bytes:
    """Three bytes from an identity: locally administered (bit 1 set), unicast (bit 0 clear)."""
    digest = hashlib.sha256(b"gns3core MAC base\0" + identity).digest()
    return bytes(((digest[0] & 0xFC) | 0x02, digest[1], digest[2]))


def server_identity(projects_dir: Path) -> tuple[bytes, str]:
    """The server's identity and where it comes from: `<projects_dir>/.gns3server-id`, created once with a random id.

    When the directory cannot be written, the identity is derived from the host (machine id and host name) and the
    directory's path, which is stable too but the same on cloned machines.
    """
    path = projects_dir / IDENTITY_FILE
    try:
        identity = _read_identity(path)
    except OSError as exc:
        return _host_identity(projects_dir, f"cannot read {path}: {exc.strerror}")
    if identity:
        return identity, str(path)
    try:
        projects_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{IDENTITY_FILE}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="ascii") as handle:
            handle.write(f"{uuid.uuid4()}\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            if path.exists():  # empty: left by a crash before its content reached the disk
                os.replace(tmp, path)
            else:
                os.link(tmp, path)  # never replaces the id another server process wrote meanwhile
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        identity = _read_identity(path)
    except OSError as exc:
        return _host_identity(projects_dir, f"cannot write {path}: {exc.strerror}")
    if not identity:
        return _host_identity(projects_dir, f"{path} stays empty")
    return identity, str(path)


def _read_identity(path: Path) -> bytes:
    """The id in the file; empty when there is no file yet (or an empty one)."""
    try:
        return path.read_text(encoding="ascii", errors="replace").strip().encode()
    except FileNotFoundError:
        return b""


def _host_identity(projects_dir: Path, why: str) -> tuple[bytes, str]:
    machine = ""
    for candidate in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            machine = Path(candidate).read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            continue
        if machine:
            break
    log.warning("Server identity: %s; deriving it from the host instead (set [Server] mac_base to choose the MAC "
                "base yourself)", why)
    return f"{machine}\0{socket.gethostname()}\0{projects_dir.absolute()}".encode(), "host data"


def resolve_mac_base(value: str | None, projects_dir: Path) -> MacBase:
    """The MAC base the configuration asks for (reading or creating the identity file for the default)."""
    parsed = parse_mac_base(value)
    if parsed == GNS3:
        return MacBase(None, "[Server] mac_base = gns3")
    if isinstance(parsed, bytes):
        return MacBase(parsed, "[Server] mac_base")
    identity, origin = server_identity(projects_dir)
    return MacBase(base_from_identity(identity), f"server identity ({origin})")
