"""VMnet interfaces: which ones VMware has on this host, and which one a VM adapter gets.

VMware's host-only networks `vmnet<n>` are configured in its networking file (`/etc/vmware/networking` on Linux,
one `answer VNET_<n>_VIRTUAL_ADAPTER yes` line per network with a host interface) and appear on the host as network
interfaces named `vmnet<n>`. The server gives each adapter of a running VM one of them and joins that interface to
the adapter's link. vmnet0 (bridged), vmnet1 (host-only) and vmnet8 (NAT) are VMware's own defaults and are never
handed out, nor is a vmnet some VM of this server already uses, nor one outside the configured range.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable
from pathlib import Path

from gns3core.errors import Conflict

VMNET_NAME = re.compile(r"^vmnet(\d+)$")
VIRTUAL_ADAPTER = re.compile(r"VNET_(\d+)_VIRTUAL_ADAPTER")
RESERVED = frozenset({0, 1, 8})
DEFAULT_NETWORKING_FILE = "/etc/vmware/networking"


def vmnet_number(name: str) -> int | None:
    """`vmnet12` -> 12; None for anything that is not a VMnet interface name."""
    match = VMNET_NAME.match(name)
    return int(match.group(1)) if match else None


def vnet_interface(vnet: str) -> str:
    """A VMX `ethernet<i>.vnet` value (`vmnet3`, `/dev/vmnet3`, `VMnet3`) as the host interface name."""
    return vnet.replace("\\", "/").rsplit("/", 1)[-1].lower()


def configured_vmnets(networking_text: str) -> set[int]:
    """The VMnet numbers that VMware's networking file gives a host interface."""
    return {int(n) for n in VIRTUAL_ADAPTER.findall(networking_text)}


def read_configured_vmnets(path: Path | str) -> set[int]:
    """The same, read from the file (blocking); an absent file means no VMnet is configured."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return configured_vmnets(handle.read(1024 * 1024))
    except OSError:
        return set()


def host_vmnets() -> set[int]:
    """VMnet numbers of the host's network interfaces named `vmnet<n>`."""
    numbers = (vmnet_number(name) for _, name in socket.if_nameindex())
    return {n for n in numbers if n is not None}


class VMnetPool:
    """The range of VMnets this server may use (`[VMware] vmnet_start_range` .. `vmnet_end_range`)."""

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end

    def manages(self, vmnet: str) -> bool:
        """Whether the server hands this VMnet out (so a VMX that names it is not the user's own choice)."""
        number = vmnet_number(vmnet)
        return number is not None and number not in RESERVED and self.start <= number <= self.end

    def free(self, available: Iterable[int], in_use: Iterable[str]) -> list[str]:
        """The VMnets that may be handed out now, lowest first."""
        used = {vmnet_number(name) for name in in_use}
        return [f"vmnet{n}" for n in sorted(set(available))
                if n not in RESERVED and n not in used and self.start <= n <= self.end]

    def exhausted(self) -> Conflict:
        return Conflict(f"No VMnet interface available between vmnet{self.start} and vmnet{self.end}. Go to "
                        "preferences VMware / Network / Configure to add more interfaces.")
