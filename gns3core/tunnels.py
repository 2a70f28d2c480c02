"""Where UDP tunnels bind: `[Server] udp_host`, independent of the API's `host`.

A tunnel must be reachable by the server at the other end of a link, which may be another machine: by default every
tunnel binds all addresses, IPv6 and IPv4 together on `::` where the host has IPv6 (a dual-stack socket that also
receives from IPv4 peers), else `0.0.0.0`. A specific address restricts tunnels to one interface.

Emulators that bind a socket of one family (Qemu, vpcs, the built-in switch) ask `local_address` for the address of
the family of their peer; the data plane binds `udp_host` itself and reaches IPv4 peers through IPv4-mapped addresses.
"""

from __future__ import annotations

import functools
import ipaddress
import socket

from gns3core.errors import Conflict

ANY_IPV4 = "0.0.0.0"
ANY_IPV6 = "::"


@functools.cache
def host_has_ipv6() -> bool:
    """True when this host can open a dual-stack IPv6 socket (IPv6 compiled in and not disabled in the kernel)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((ANY_IPV6, 0))
    except OSError:
        return False
    return True


def default_udp_host() -> str:
    """All addresses: `::` (dual-stack) where the host has IPv6, else `0.0.0.0`."""
    return ANY_IPV6 if host_has_ipv6() else ANY_IPV4


def parse_udp_host(value: str | None) -> str:
    """The configured `[Server] udp_host` as a normalised address; empty means the default. 409 for anything that is
    not an IP address (a host name could resolve differently from one start to the next)."""
    text = (value or "").strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not text:
        return default_udp_host()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise Conflict(f"Invalid [Server] udp_host {value!r} in the server configuration: give an IPv4 or IPv6 "
                       f"address of this host, or leave it empty for all addresses ({default_udp_host()})") from None


def is_wildcard(host: str) -> bool:
    return host in (ANY_IPV4, ANY_IPV6)


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def local_address(udp_host: str, remote_family: int, who: str = "This emulator") -> str:
    """The address a single-family tunnel socket binds, for a peer of `remote_family`.

    The dual-stack wildcard gives each family its own wildcard; a specific address must be of the peer's family (a
    UDP socket cannot send to an IPv6 peer from an IPv4 address), else 409 with what to change.
    """
    if udp_host == ANY_IPV6:
        return ANY_IPV6 if remote_family == socket.AF_INET6 else ANY_IPV4
    if family_of(udp_host) == remote_family:
        return udp_host
    if udp_host == ANY_IPV4:
        raise Conflict(f"{who} cannot reach an IPv6 peer: [Server] udp_host is {ANY_IPV4} (IPv4 only); set it to :: "
                       "or to an IPv6 address of this host")
    peer = "IPv6" if remote_family == socket.AF_INET6 else "IPv4"
    raise Conflict(f"{who} cannot reach an {peer} peer from [Server] udp_host {udp_host}: give the tunnel an rhost of "
                   f"the same family, or set udp_host to :: (all addresses)")


def resolve_peer(rhost: str, rport: int) -> tuple[int, str]:
    """(family, address) of a tunnel's remote host, IPv4 first like the rest of the server; 409 when unknown."""
    try:
        infos = socket.getaddrinfo(rhost, rport, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        raise Conflict(f"Could not resolve the tunnel's rhost {rhost}: {exc}") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _, _, _, address = infos[0]
    return family, str(address[0])
