"""Classic pcap writer used by bridges; frames are flushed whenever the link goes idle so Wireshark can follow."""

from __future__ import annotations

import os
import struct
import threading
import time

from .errors import DataPlaneError

#: pcap link types for the DLT names used by the GNS3 API (plus the short Dynamips spellings).
DLT_TYPES: dict[str, int] = {
    "DLT_EN10MB": 1,
    "DLT_ATM_RFC1483": 11,
    "DLT_PPP_SERIAL": 50,
    "DLT_C_HDLC": 104,
    "DLT_FRELAY": 107,
}

PCAP_MAGIC = 0xA1B2C3D4
PCAP_SNAPLEN = 65535
_GLOBAL_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")


def link_type(dlt: str | int) -> int:
    """Map a DLT name (``DLT_EN10MB``, ``en10mb``...) or a number to the pcap link-type value."""
    if isinstance(dlt, int):
        return dlt
    key = str(dlt).strip().upper()
    if not key.startswith("DLT_"):
        key = "DLT_" + key
    try:
        return DLT_TYPES[key]
    except KeyError:
        known = ", ".join(sorted(DLT_TYPES))
        raise DataPlaneError(f"Unknown data link type {dlt!r}: use one of {known}") from None


class PcapWriter:
    """Append-only pcap file shared by the threads of one bridge.

    Opening truncates an existing file: a restarted capture starts a fresh file with its own header. ``append``
    continues a file that already has a header (used when a bridge's worker process is restarted).
    """

    def __init__(self, path: str, dlt: str | int = "DLT_EN10MB", append: bool = False) -> None:
        self.path = os.path.abspath(path)
        self.linktype = link_type(dlt)
        self.frames = 0
        self._lock = threading.Lock()
        self._dirty = False
        try:
            directory = os.path.dirname(self.path)
            os.makedirs(directory, exist_ok=True)
            append = append and os.path.exists(self.path) and os.path.getsize(self.path) >= _GLOBAL_HEADER.size
            self._file = open(self.path, "ab" if append else "wb", buffering=256 * 1024)  # noqa: SIM115
            if not append:
                self._file.write(_GLOBAL_HEADER.pack(PCAP_MAGIC, 2, 4, 0, 0, PCAP_SNAPLEN, self.linktype))
                self._file.flush()
            self._write = self._file.write
        except OSError as exc:
            raise DataPlaneError(f"Cannot write capture file {self.path}: {exc.strerror or exc}") from None

    def write(self, frame: bytes | memoryview) -> None:
        """Record one frame (timestamped now); buffered until :meth:`flush`.

        Header and data go out in one call: the buffered file's own lock then keeps records from the two
        directions whole, without a lock of ours on the per-frame path.
        """
        now = time.time()
        sec = int(now)
        length = len(frame)
        if length > PCAP_SNAPLEN:
            frame = frame[:PCAP_SNAPLEN]
        try:
            self._write(_RECORD_HEADER.pack(sec, int((now - sec) * 1000000), len(frame), length) + frame)
        except (OSError, ValueError, TypeError):
            return  # closed meanwhile (the write method is then None) or the disk refused: drop the record
        self.frames += 1
        self._dirty = True

    def flush(self) -> None:
        """Push buffered frames to the file so a live reader sees them."""
        if not self._dirty:
            return
        with self._lock:
            self._dirty = False
            if self._file is not None:
                try:
                    self._file.flush()
                except (OSError, ValueError):
                    pass

    def close(self) -> None:
        """Flush and close; later writes are ignored."""
        with self._lock:
            file, self._file = self._file, None
            self._write = None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass
