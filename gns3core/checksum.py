"""The 16-bit one's-complement checksum (RFC 1071), one implementation for every place that needs it.

IP, ICMP, UDP and TCP headers use it (the data plane's MAC translation, the built-in VPCS engine), and so does the
header of an IOS NVRAM (the IOU plugin).
"""

from __future__ import annotations

import struct


def internet_checksum(data: bytes | bytearray) -> int:
    """The checksum of `data`, its own checksum field counted as zero; an odd length is padded with a zero byte."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
