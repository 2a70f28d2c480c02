"""MAC address translation for an emulator whose own address cannot be chosen (the real vpcs always uses
`00:50:79:66:68:<n>`): frames leaving the emulator carry the server's address instead, frames coming back carry the
emulator's again, so the rest of the lab only ever sees the server's address.

Rewritten wherever a sender's or target's hardware address travels in the protocols a virtual PC speaks: the Ethernet
header (behind up to two VLAN tags), ARP, the DHCP client hardware address and client identifier (the UDP checksum
is then cleared, which IPv4 allows), and the IPv6 neighbour discovery link-layer address options (the ICMPv6
checksum is recomputed). Addresses derived from the MAC inside the emulator (its IPv6 link-local address) are not
rewritten.
"""

from __future__ import annotations

import re

from gns3core.checksum import internet_checksum

_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
_ETH_ARP, _ETH_IPV4, _ETH_IPV6 = 0x0806, 0x0800, 0x86DD
_PROTO_UDP, _PROTO_ICMPV6 = 17, 58
_DHCP_PORTS = (67, 68)
_DHCP_MAGIC = b"\x63\x82\x53\x63"
_NDP_OPTIONS_AT = {133: 8, 134: 16, 135: 24, 136: 24, 137: 40}  # ICMPv6 type -> where its options start


def parse_mac(text: str) -> bytes:
    """`aa:bb:cc:dd:ee:ff` to 6 bytes; ValueError otherwise."""
    if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", text or ""):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes.fromhex(text.replace(":", ""))


def _swap(frame: bytearray, start: int, old: bytes, new: bytes) -> bool:
    if frame[start:start + 6] == old:
        frame[start:start + 6] = new
        return True
    return False


class MacMap:
    """Translates between `inside` (the emulator's own address) and `outside` (the address the lab sees)."""

    def __init__(self, inside: bytes, outside: bytes) -> None:
        if len(inside) != 6 or len(outside) != 6:
            raise ValueError("MAC addresses are 6 bytes")
        self.inside = bytes(inside)
        self.outside = bytes(outside)

    def leaving(self, frame: bytearray) -> None:
        """A frame the emulator sent, rewritten in place: its address becomes the outside one."""
        if self.inside != self.outside:
            _rewrite(frame, self.inside, self.outside)

    def arriving(self, frame: bytearray) -> None:
        """A frame for the emulator, rewritten in place: the outside address becomes its own again."""
        if self.inside != self.outside:
            _rewrite(frame, self.outside, self.inside)


def _rewrite(frame: bytearray, old: bytes, new: bytes) -> None:
    if len(frame) < 14:
        return
    _swap(frame, 0, old, new)
    _swap(frame, 6, old, new)
    offset = 12
    ethertype = int.from_bytes(frame[12:14], "big")
    for _ in range(2):
        if ethertype not in _VLAN_TPIDS or len(frame) < offset + 6:
            break
        offset += 4
        ethertype = int.from_bytes(frame[offset:offset + 2], "big")
    l3 = offset + 2
    if ethertype == _ETH_ARP:
        if len(frame) >= l3 + 28 and frame[l3 + 4] == 6:  # Ethernet hardware addresses
            _swap(frame, l3 + 8, old, new)
            _swap(frame, l3 + 18, old, new)
    elif ethertype == _ETH_IPV4:
        _rewrite_dhcp(frame, l3, old, new)
    elif ethertype == _ETH_IPV6:
        _rewrite_ndp(frame, l3, old, new)


def _rewrite_dhcp(frame: bytearray, l3: int, old: bytes, new: bytes) -> None:
    if len(frame) < l3 + 20 or frame[l3] >> 4 != 4 or frame[l3 + 9] != _PROTO_UDP:
        return
    if int.from_bytes(frame[l3 + 6:l3 + 8], "big") & 0x3FFF:  # a fragment
        return
    l4 = l3 + (frame[l3] & 0x0F) * 4
    if len(frame) < l4 + 8:
        return
    ports = (int.from_bytes(frame[l4:l4 + 2], "big"), int.from_bytes(frame[l4 + 2:l4 + 4], "big"))
    if ports[0] not in _DHCP_PORTS or ports[1] not in _DHCP_PORTS:
        return
    bootp = l4 + 8
    if len(frame) < bootp + 240 or frame[bootp + 1] != 1 or frame[bootp + 2] != 6:
        return
    changed = _swap(frame, bootp + 28, old, new)
    if frame[bootp + 236:bootp + 240] == _DHCP_MAGIC:
        at, end = bootp + 240, len(frame)
        while at < end and frame[at] != 255:
            if frame[at] == 0:
                at += 1
                continue
            if at + 2 > end:
                break
            length = frame[at + 1]
            if frame[at] == 61 and length == 7 and frame[at + 2] == 1 and at + 9 <= end:
                changed = _swap(frame, at + 3, old, new) or changed
            at += 2 + length
    if changed:
        frame[l4 + 6:l4 + 8] = b"\0\0"  # no UDP checksum (allowed over IPv4) rather than a wrong one


def _rewrite_ndp(frame: bytearray, l3: int, old: bytes, new: bytes) -> None:
    if len(frame) < l3 + 40 or frame[l3 + 6] != _PROTO_ICMPV6:
        return
    l4 = l3 + 40
    length = int.from_bytes(frame[l3 + 4:l3 + 6], "big")
    end = min(len(frame), l4 + length)
    if end < l4 + 8:
        return
    start = _NDP_OPTIONS_AT.get(frame[l4])
    if start is None:
        return
    at, changed = l4 + start, False
    while at + 8 <= end:
        units = frame[at + 1]
        if units == 0:
            return  # malformed: leave the frame alone
        if frame[at] in (1, 2) and units == 1:
            changed = _swap(frame, at + 2, old, new) or changed
        at += units * 8
    if changed:
        frame[l4 + 2:l4 + 4] = b"\0\0"
        pseudo = frame[l3 + 8:l3 + 40] + (end - l4).to_bytes(4, "big") + b"\0\0\0" + bytes((_PROTO_ICMPV6,))
        frame[l4 + 2:l4 + 4] = internet_checksum(pseudo + frame[l4:end]).to_bytes(2, "big")
