"""A relay between the real vpcs and its link, for what vpcs cannot do by itself.

vpcs always calls itself `00:50:79:66:68:<m>` and binds its tunnel on every IPv4 address. When the server hands out
other addresses (`[Server] mac_base`, the default) or binds tunnels on one address (`[Server] udp_host`), vpcs talks
to a relay on the loopback instead, and the core's data plane joins the relay to the NIO: frames leave with the
server's address for this PC and the tunnel binds where the configuration says. A NIO changed while the PC runs is
re-linked at once. With `mac_base = gns3` and tunnels on all addresses, vpcs binds the NIO's port itself, as in GNS3.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from gns3_vpcs.macs import vpcs_own_address
from gns3core.dataplane import MacMappedUDPEndpoint
from gns3core.emulator.nio import NIO, NIOUDP
from gns3core.errors import Conflict
from gns3core.tunnels import is_wildcard

if TYPE_CHECKING:
    from gns3_vpcs.vm import VPCSVM

LOOPBACK = "127.0.0.1"


def needed(vm: VPCSVM, nio: NIO) -> bool:
    """Whether vpcs needs the relay for this link (409 when the server's configuration is invalid)."""
    if not vm.server.mac_base.gns3:
        return True
    return isinstance(nio, NIOUDP) and not is_wildcard(vm.server.udp_host)


class VPCSRelay:
    """The loopback tunnel vpcs uses instead of its NIO: vpcs binds `vpcs_port` (a tunnel port of the server's range,
    held with its lport+9 companion) and sends to the relay's `relay_port`."""

    def __init__(self, vm: VPCSVM) -> None:
        self.vm = vm
        self.owner = vm.project.id
        self.vpcs_port = vm.server.ports.get_free_udp_port(self.owner)
        try:
            self.relay_port = _free_loopback_udp_port()
            self.inside_mac = vpcs_own_address(vm.mac_id)
            self.outside_mac = vm.manager.mac_address(vm.mac_id)
        except BaseException:
            self.release()
            raise

    @property
    def vpcs_nio(self) -> NIOUDP:
        """The link vpcs is started with."""
        return NIOUDP(lport=self.vpcs_port, rhost=LOOPBACK, rport=self.relay_port)

    def endpoint(self, adapter: int, port: int) -> MacMappedUDPEndpoint:
        """vpcs's side of the relay's bridge (LinkWiring's endpoint factory)."""
        return MacMappedUDPEndpoint(self.relay_port, LOOPBACK, self.vpcs_port, laddr=LOOPBACK,
                                    inside_mac=self.inside_mac, outside_mac=self.outside_mac)

    def release(self) -> None:
        self.vm.server.ports.release_udp_port(self.vpcs_port, self.owner)


def _free_loopback_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((LOOPBACK, 0))
        except OSError as exc:
            raise Conflict(f"Cannot open a UDP port on {LOOPBACK} for the vpcs relay: {exc.strerror}") from None
        return sock.getsockname()[1]
