"""MAC translation for emulators whose own address cannot be chosen: every field that carries the address is rewritten
both ways, checksums stay valid, and frames about other stations pass untouched."""

from __future__ import annotations

import socket
import struct

import pytest

from gns3core.checksum import internet_checksum
from gns3core.dataplane import DataPlane, DataPlaneError, MacMap, MacMappedUDPEndpoint, UDPEndpoint
from gns3core.dataplane.macmap import parse_mac

INSIDE = bytes.fromhex("005079666800")
OUTSIDE = bytes.fromhex("0a1b2c000000")
PEER = bytes.fromhex("0e0000000007")
BROADCAST = b"\xff" * 6


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytearray:
    return bytearray(dst + src + struct.pack("!H", ethertype) + payload)


def arp(op: int, sha: bytes, spa: str, tha: bytes, tpa: str) -> bytes:
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + socket.inet_aton(spa) + tha + socket.inet_aton(tpa)


def dhcp_discover(chaddr: bytes) -> bytes:
    bootp = bytearray(240)
    bootp[0:4] = bytes((1, 1, 6, 0))
    bootp[28:34] = chaddr
    bootp[236:240] = b"\x63\x82\x53\x63"
    options = bytes((53, 1, 1, 61, 7, 1)) + chaddr + bytes((255,))
    payload = bytes(bootp) + options
    udp = struct.pack("!HHHH", 68, 67, 8 + len(payload), 0x1234) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, b"\0" * 4, b"\xff" * 4)
    return ip + udp


def neighbour_solicitation(source_ll: bytes) -> bytes:
    src = socket.inet_pton(socket.AF_INET6, "fe80::250:79ff:fe66:6800")
    dst = socket.inet_pton(socket.AF_INET6, "ff02::1:ff00:7")
    target = socket.inet_pton(socket.AF_INET6, "fe80::7")
    body = bytearray(struct.pack("!BBHI", 135, 0, 0, 0) + target + bytes((1, 1)) + source_ll)
    pseudo = src + dst + len(body).to_bytes(4, "big") + b"\0\0\0" + bytes((58,))
    body[2:4] = internet_checksum(pseudo + body).to_bytes(2, "big")
    return struct.pack("!IHBB", 0x60000000, len(body), 58, 255) + src + dst + bytes(body)


def icmpv6_checksum_ok(frame: bytes) -> bool:
    l3 = 14
    length = int.from_bytes(frame[l3 + 4:l3 + 6], "big")
    pseudo = frame[l3 + 8:l3 + 40] + length.to_bytes(4, "big") + b"\0\0\0" + bytes((58,))
    return internet_checksum(pseudo + frame[l3 + 40:l3 + 40 + length]) == 0


def test_ethernet_and_arp_both_ways() -> None:
    mapping = MacMap(INSIDE, OUTSIDE)
    request = ethernet(BROADCAST, INSIDE, 0x0806, arp(1, INSIDE, "10.0.0.1", b"\0" * 6, "10.0.0.2"))
    mapping.leaving(request)
    assert request[6:12] == OUTSIDE and request[22:28] == OUTSIDE and request[0:6] == BROADCAST
    reply = ethernet(OUTSIDE, PEER, 0x0806, arp(2, PEER, "10.0.0.2", OUTSIDE, "10.0.0.1"))
    mapping.arriving(reply)
    assert reply[0:6] == INSIDE and reply[32:38] == INSIDE and reply[6:12] == PEER and reply[22:28] == PEER


def test_vlan_tagged_arp() -> None:
    mapping = MacMap(INSIDE, OUTSIDE)
    frame = bytearray(BROADCAST + INSIDE + struct.pack("!HH", 0x8100, 10)
                      + struct.pack("!H", 0x0806) + arp(1, INSIDE, "10.0.0.1", b"\0" * 6, "10.0.0.2"))
    mapping.leaving(frame)
    assert frame[6:12] == OUTSIDE and frame[18 + 8:18 + 14] == OUTSIDE


def test_dhcp_client_address_and_identifier() -> None:
    mapping = MacMap(INSIDE, OUTSIDE)
    frame = ethernet(BROADCAST, INSIDE, 0x0800, dhcp_discover(INSIDE))
    mapping.leaving(frame)
    bootp = 14 + 20 + 8
    assert frame[bootp + 28:bootp + 34] == OUTSIDE
    assert frame[bootp + 240 + 3 + 3:bootp + 240 + 3 + 9] == OUTSIDE  # option 61 after option 53
    assert frame[14 + 20 + 6:14 + 20 + 8] == b"\0\0"  # no UDP checksum rather than a wrong one
    assert INSIDE not in bytes(frame)


def test_neighbour_discovery_option_and_checksum() -> None:
    mapping = MacMap(INSIDE, OUTSIDE)
    frame = ethernet(bytes.fromhex("3333ff000007"), INSIDE, 0x86DD, neighbour_solicitation(INSIDE))
    assert icmpv6_checksum_ok(frame)
    mapping.leaving(frame)
    assert INSIDE not in bytes(frame) and frame[-6:] == OUTSIDE
    assert icmpv6_checksum_ok(frame)
    mapping.arriving(frame)
    assert frame[-6:] == INSIDE and icmpv6_checksum_ok(frame)


def test_other_stations_and_short_frames_pass_untouched() -> None:
    mapping = MacMap(INSIDE, OUTSIDE)
    frame = ethernet(PEER, bytes.fromhex("0e0000000008"), 0x0806, arp(1, PEER, "10.0.0.9", b"\0" * 6, "10.0.0.2"))
    before = bytes(frame)
    mapping.leaving(frame)
    mapping.arriving(frame)
    assert bytes(frame) == before
    for short in (bytearray(b"\x01\x02"), bytearray(INSIDE + INSIDE), ethernet(INSIDE, PEER, 0x86DD, b"\x60")):
        mapping.arriving(short)  # no exception, nothing outside the frame


def test_parse_mac() -> None:
    assert parse_mac("00:50:79:66:68:0A") == bytes.fromhex("00507966680a")
    with pytest.raises(ValueError):
        parse_mac("00:50:79:66:68")
    with pytest.raises(DataPlaneError, match="Cannot translate MAC addresses"):
        MacMappedUDPEndpoint(0, "127.0.0.1", 9, inside_mac="nope", outside_mac="0a:1b:2c:00:00:00")


@pytest.mark.parametrize("process", [False, True])
async def test_a_bridge_translates_between_the_emulator_and_the_link(process: bool) -> None:
    """Frames from the emulator's socket leave the link with the outside address, and come back with its own; the
    translating endpoint works in a worker process as well."""
    emulator, peer = socket.socket(type=socket.SOCK_DGRAM), socket.socket(type=socket.SOCK_DGRAM)
    for sock in (emulator, peer):
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
    dataplane = DataPlane()
    try:
        near = MacMappedUDPEndpoint(0, "127.0.0.1", emulator.getsockname()[1], laddr="127.0.0.1",
                                    inside_mac="00:50:79:66:68:00", outside_mac="0a:1b:2c:00:00:00")
        far = UDPEndpoint(0, "127.0.0.1", peer.getsockname()[1], laddr="127.0.0.1")
        await dataplane.create_bridge("mapped", near, far, process=process)
        emulator.sendto(bytes(ethernet(BROADCAST, INSIDE, 0x0806, arp(1, INSIDE, "10.0.0.1", b"\0" * 6, "10.0.0.2"))),
                        ("127.0.0.1", near.lport))
        seen = peer.recv(200)
        assert seen[6:12] == OUTSIDE and seen[22:28] == OUTSIDE
        peer.sendto(bytes(ethernet(OUTSIDE, PEER, 0x0806, arp(2, PEER, "10.0.0.2", OUTSIDE, "10.0.0.1"))),
                    ("127.0.0.1", far.lport))
        back = emulator.recv(200)
        assert back[0:6] == INSIDE and back[32:38] == INSIDE
    finally:
        await dataplane.close()
        emulator.close()
        peer.close()
