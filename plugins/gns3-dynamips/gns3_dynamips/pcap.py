"""A classic pcap writer (libpcap 2.4 format), for captures taken by the built-in switch."""

from __future__ import annotations

import struct
import time
from pathlib import Path

LINK_TYPES = {"en10mb": 1, "ppp_serial": 50, "c_hdlc": 104, "frelay": 107, "atm_rfc1483": 11}
MAGIC = 0xA1B2C3D4
SNAPLEN = 65535


def link_type(data_link_type: str) -> int:
    value = data_link_type.lower()
    value = value[4:] if value.startswith("dlt_") else value
    return LINK_TYPES.get(value, 1)


class PcapFile:
    """Appends frames with their arrival time; flushed after each frame so a reader sees them at once."""

    def __init__(self, path: Path | str, data_link_type: str = "DLT_EN10MB") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "wb")  # noqa: SIM115 - kept open for the whole capture
        self._handle.write(struct.pack("<IHHiIII", MAGIC, 2, 4, 0, 0, SNAPLEN, link_type(data_link_type)))
        self._handle.flush()

    def write(self, frame: bytes) -> None:
        if self._handle.closed:
            return
        now = time.time()
        seconds = int(now)
        data = frame[:SNAPLEN]
        self._handle.write(struct.pack("<IIII", seconds, int((now - seconds) * 1_000_000), len(data), len(frame)))
        self._handle.write(data)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
