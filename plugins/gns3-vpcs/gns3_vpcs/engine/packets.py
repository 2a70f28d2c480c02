"""Ethernet, ARP, IPv4, ICMP, UDP and TCP: building frames and reading the headers a virtual PC cares about.

Addresses are kept as they travel: MACs as 6-byte `bytes`, IPv4 addresses as 32-bit integers (host order), so the
hot path (answering an ARP request or a ping) does no string work.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from gns3core.checksum import internet_checksum

BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
ETH_IPV6 = 0x86DD

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17

ICMP_ECHO_REPLY = 0
ICMP_UNREACHABLE = 3
ICMP_REDIRECT = 5
ICMP_ECHO = 8
ICMP_TIME_EXCEEDED = 11
UNREACHABLE_PORT = 3

ARP_REQUEST = 1
ARP_REPLY = 2

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10

_ETH = struct.Struct("!6s6sH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_ICMP_ECHO = struct.Struct("!BBHHH")
_UDP = struct.Struct("!HHHH")
_TCP = struct.Struct("!HHIIBBHHH")


# -- addresses -----------------------------------------------------------------------------------------------------


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def mac_bytes(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


def ip_text(address: int) -> str:
    return f"{address >> 24 & 255}.{address >> 16 & 255}.{address >> 8 & 255}.{address & 255}"


def inet_addr(text: str) -> int | None:
    """An IPv4 address as vpcs reads one (C's inet_addr: `10.1`, `0x0a000001` and octal parts are addresses too);
    None when it is not one, and for 255.255.255.255, which inet_addr cannot tell from its error value."""
    try:
        value = int.from_bytes(socket.inet_aton(text), "big")
    except (OSError, ValueError):
        return None
    return None if value == 0xFFFFFFFF else value


def mask_of(cidr: int) -> int:
    return (0xFFFFFFFF << (32 - cidr)) & 0xFFFFFFFF if cidr else 0


def same_net(a: int, b: int, cidr: int) -> bool:
    mask = mask_of(cidr)
    return a & mask == b & mask


def link_local6(mac: bytes) -> str:
    """The EUI-64 link-local IPv6 address vpcs shows next to each PC (fe80::250:79ff:fe66:68xx)."""
    eui = bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    groups = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return "fe80::" + ":".join(groups)


# -- checksums (gns3core.checksum) ---------------------------------------------------------------------------------


def _pseudo_header(src: int, dst: int, proto: int, length: int) -> bytes:
    return struct.pack("!IIBBH", src, dst, 0, proto, length)


# -- building ------------------------------------------------------------------------------------------------------


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return _ETH.pack(dst, src, ethertype) + payload


def arp(op: int, sender_mac: bytes, sender_ip: int, target_mac: bytes, target_ip: int) -> bytes:
    """An Ethernet frame carrying an ARP request (broadcast) or reply (to `target_mac`)."""
    body = _ARP.pack(1, ETH_IPV4, 6, 4, op, sender_mac, sender_ip.to_bytes(4, "big"), target_mac,
                     target_ip.to_bytes(4, "big"))
    dst = BROADCAST_MAC if op == ARP_REQUEST else target_mac
    return ethernet(dst, sender_mac, ETH_ARP, body)


def ipv4(src: int, dst: int, proto: int, payload: bytes, ttl: int = 64, ident: int = 0) -> bytes:
    """An IPv4 packet, Don't Fragment set, as vpcs sends them."""
    header = _IPV4.pack(0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, ttl & 0xFF, proto, 0,
                        src.to_bytes(4, "big"), dst.to_bytes(4, "big"))
    header = header[:10] + internet_checksum(header).to_bytes(2, "big") + header[12:]
    return header + payload


def icmp(icmp_type: int, code: int, rest: int, data: bytes) -> bytes:
    """An ICMP message; `rest` is the second 32-bit word (identifier and sequence for echoes)."""
    head = struct.pack("!BBHI", icmp_type, code, 0, rest)
    total = internet_checksum(head + data)
    return head[:2] + total.to_bytes(2, "big") + head[4:] + data


def udp(src: int, dst: int, sport: int, dport: int, payload: bytes) -> bytes:
    length = 8 + len(payload)
    head = _UDP.pack(sport, dport, length, 0)
    total = internet_checksum(_pseudo_header(src, dst, PROTO_UDP, length) + head + payload) or 0xFFFF
    return head[:6] + total.to_bytes(2, "big") + payload


def tcp(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"",
        options: bytes = b"", window: int = 0xB68) -> bytes:
    offset = (20 + len(options)) // 4
    head = _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, offset << 4, flags, window, 0, 0) + options
    total = internet_checksum(_pseudo_header(src, dst, PROTO_TCP, len(head) + len(payload)) + head + payload)
    return head[:16] + total.to_bytes(2, "big") + head[18:] + payload


# -- reading -------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class IPv4Packet:
    """The fields of a received IPv4 packet that the stack and the probes read."""

    src: int
    dst: int
    proto: int
    ttl: int
    header: bytes  # the IPv4 header as received (quoted in ICMP errors)
    payload: bytes


def read_ipv4(frame: bytes) -> IPv4Packet | None:
    """The IPv4 packet inside an Ethernet frame, or None when it is too short or not IPv4 version 4."""
    if len(frame) < 34:
        return None
    version_ihl, _tos, total, _ident, _frag, ttl, proto, _sum, src, dst = _IPV4.unpack_from(frame, 14)
    ihl = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or ihl < 20 or total < ihl or 14 + total > len(frame):
        return None
    return IPv4Packet(int.from_bytes(src, "big"), int.from_bytes(dst, "big"), proto, ttl,
                      frame[14:14 + ihl], frame[14 + ihl:14 + total])


@dataclass(slots=True)
class ArpPacket:
    op: int
    sender_mac: bytes
    sender_ip: int
    target_ip: int


def read_arp(frame: bytes) -> ArpPacket | None:
    if len(frame) < 42:
        return None
    hrd, pro, hln, pln, op, sha, spa, _tha, tpa = _ARP.unpack_from(frame, 14)
    if hrd != 1 or pro != ETH_IPV4 or hln != 6 or pln != 4:
        return None
    return ArpPacket(op, sha, int.from_bytes(spa, "big"), int.from_bytes(tpa, "big"))


@dataclass(slots=True)
class TcpSegment:
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    data: bytes


def read_tcp(payload: bytes) -> TcpSegment | None:
    if len(payload) < 20:
        return None
    sport, dport, seq, ack, offset, flags, _win, _sum, _urg = _TCP.unpack_from(payload)
    start = (offset >> 4) * 4
    if start < 20 or start > len(payload):
        return None
    return TcpSegment(sport, dport, seq, ack, flags, payload[start:])


def read_udp(payload: bytes) -> tuple[int, int, bytes] | None:
    """(source port, destination port, data) of a UDP datagram."""
    if len(payload) < 8:
        return None
    sport, dport, length, _sum = _UDP.unpack_from(payload)
    if length < 8 or length > len(payload):
        return None
    return sport, dport, payload[8:length]
