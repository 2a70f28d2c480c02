"""Link endpoints (NIOs) exactly as API v1 describes them, plus the capture state the server keeps per NIO."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from gns3core.errors import Conflict


@dataclass
class NIO:
    """Base of every NIO type; `type` is the API v1 name (e.g. `nio_udp`)."""

    type: ClassVar[str] = ""
    capture_file: Path | None = field(default=None, init=False, compare=False)
    capture_dlt: str | None = field(default=None, init=False, compare=False)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            if f.init:
                data[f.name] = getattr(self, f.name)
        return data

    @property
    def capturing(self) -> bool:
        return self.capture_file is not None

    def check(self) -> None:
        """Host-side checks done when the NIO is created; raise Conflict with a message a person can act on."""


@dataclass
class NIOUDP(NIO):
    type: ClassVar[str] = "nio_udp"
    lport: int = 0
    rhost: str = ""
    rport: int = 0

    def check(self) -> None:
        try:
            infos = socket.getaddrinfo(self.rhost, self.rport, type=socket.SOCK_DGRAM)
            family, kind, proto, _, address = infos[0]
            with socket.socket(family, kind, proto) as sock:
                sock.connect(address)
        except (OSError, IndexError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode
            raise Conflict(f"Could not create an UDP connection to {self.rhost}:{self.rport}: {exc}") from exc


@dataclass
class NIOTAP(NIO):
    type: ClassVar[str] = "nio_tap"
    tap_device: str = ""


@dataclass
class NIOGenericEthernet(NIO):
    type: ClassVar[str] = "nio_generic_ethernet"
    ethernet_device: str = ""

    def check(self) -> None:
        import psutil

        stats = psutil.net_if_stats().get(self.ethernet_device)
        if stats is None or not stats.isup:
            raise Conflict(f"Ethernet interface {self.ethernet_device} does not exist or is down")


@dataclass
class NIOLinuxEthernet(NIOGenericEthernet):
    type: ClassVar[str] = "nio_linux_ethernet"


@dataclass
class NIONAT(NIO):
    type: ClassVar[str] = "nio_nat"


@dataclass
class NIOUNIX(NIO):
    type: ClassVar[str] = "nio_unix"
    local_file: str = ""
    remote_file: str = ""


@dataclass
class NIOVDE(NIO):
    type: ClassVar[str] = "nio_vde"
    control_file: str = ""
    local_file: str = ""


@dataclass
class NIOVMNET(NIO):
    type: ClassVar[str] = "nio_vmnet"
    vmnet: str = ""


@dataclass
class NIONull(NIO):
    type: ClassVar[str] = "nio_null"


NIO_TYPES: dict[str, type[NIO]] = {
    cls.type: cls
    for cls in (NIOUDP, NIOTAP, NIOGenericEthernet, NIOLinuxEthernet, NIONAT, NIOUNIX, NIOVDE, NIOVMNET, NIONull)
}


def nio_from_json(data: dict[str, Any], supported: frozenset[str] | set[str] | None = None) -> NIO:
    """Build a NIO from a validated request body; 409 for a type this emulator cannot use."""
    nio_type = data.get("type", "")
    cls = NIO_TYPES.get(nio_type)
    if cls is None or (supported is not None and nio_type not in supported):
        raise Conflict(f"NIO of type {nio_type} is not supported")
    values = {k: v for k, v in data.items() if k != "type"}
    nio = cls(**values)
    nio.check()
    return nio
