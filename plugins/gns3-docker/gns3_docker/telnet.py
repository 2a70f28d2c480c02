"""The telnet side of the consoles: option negotiation, commands removed from what clients type, and the one
terminal query removed from what the container prints."""

from __future__ import annotations

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SUPPRESS_GO_AHEAD, BINARY = 1, 3, 0

# The container's TTY echoes and edits lines itself: the client is asked for character mode without local echo,
# eight-bit clean both ways.
NEGOTIATION = bytes([IAC, WILL, ECHO, IAC, WILL, SUPPRESS_GO_AHEAD, IAC, WILL, BINARY, IAC, DO, BINARY])

# busybox's shell asks the terminal where its cursor is (Device Status Report, ESC [ 6 n) after each prompt to
# place its line editor. Clients that are not full terminals (scripts, nc, some telnet clients) print it as
# "^[[6n" garbage, and a terminal's answer is optional: the shell edits lines just as well without it.
CURSOR_POSITION_QUERY = b"\x1b[6n"


class TelnetInput:
    """Removes telnet commands from what a client sends (state kept across reads) and maps CR NUL / CR LF to CR."""

    def __init__(self) -> None:
        self._state = "data"
        self._last_cr = False

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            state = self._state
            if state == "data":
                if byte == IAC:
                    self._state = "iac"
                elif self._last_cr and byte in (0, 10):
                    self._last_cr = False
                else:
                    out.append(byte)
                    self._last_cr = byte == 13
            elif state == "iac":
                if byte == IAC:
                    out.append(IAC)
                    self._state = "data"
                elif byte in (WILL, WONT, DO, DONT):
                    self._state = "option"
                elif byte == SB:
                    self._state = "sub"
                else:
                    self._state = "data"
            elif state == "option":
                self._state = "data"
            elif state == "sub":
                if byte == IAC:
                    self._state = "sub-iac"
            elif state == "sub-iac":
                self._state = "data" if byte == SE else "sub"
        return bytes(out)


class TerminalOutput:
    """What the container prints, made ready for a telnet client: the cursor-position query removed (also when
    split across reads) and IAC bytes doubled."""

    def __init__(self) -> None:
        self._held = b""  # the start of a possible query at the end of the last read

    def feed(self, data: bytes) -> bytes:
        data = self._held + data
        self._held = b""
        data = data.replace(CURSOR_POSITION_QUERY, b"")
        for size in range(len(CURSOR_POSITION_QUERY) - 1, 0, -1):
            if data.endswith(CURSOR_POSITION_QUERY[:size]):
                data, self._held = data[:-size], data[-size:]
                break
        return data.replace(bytes([IAC]), bytes([IAC, IAC]))

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def flush(self) -> bytes:
        """A held partial sequence that turned out not to be a query (the stream paused or ended)."""
        held, self._held = self._held, b""
        return held.replace(bytes([IAC]), bytes([IAC, IAC]))
