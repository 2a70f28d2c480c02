"""Console output as a person reads it: emulator consoles speak telnet, so tests drop its negotiation bytes."""

from __future__ import annotations

IAC, SB, SE = 255, 250, 240
WILL_WONT_DO_DONT = (251, 252, 253, 254)


def strip_telnet(data: bytes) -> bytes:
    """Drop telnet negotiation (IAC WILL/WONT/DO/DONT x, IAC SB ... IAC SE); an escaped IAC IAC stays one byte."""
    out = bytearray()
    i = 0
    while i < len(data):
        byte = data[i]
        if byte != IAC:
            out.append(byte)
            i += 1
            continue
        command = data[i + 1] if i + 1 < len(data) else None
        if command in WILL_WONT_DO_DONT:
            i += 3
        elif command == SB:
            end = data.find(bytes([IAC, SE]), i + 2)
            i = len(data) if end < 0 else end + 2
        elif command == IAC:
            out.append(IAC)
            i += 2
        else:
            i += 2
    return bytes(out)
