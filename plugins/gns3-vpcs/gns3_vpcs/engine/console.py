"""A virtual PC's telnet console, served the way vpcs serves it.

One client at a time: a second connection waits (unanswered) until the first one leaves, then gets the console.
What the PC prints while nobody is connected (the banner, the startup script's output) is kept, up to a limit, for
the next client, as vpcs's terminal keeps it. On connect the server asks for character mode with the same four
telnet options vpcs sends (DO ECHO, WILL ECHO, DO SUPPRESS-GO-AHEAD, WILL SUPPRESS-GO-AHEAD).

Everything is driven by the event loop's readiness callbacks: an idle console costs a listening socket and nothing
else.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
NEGOTIATION = bytes([IAC, DO, 1, IAC, WILL, 1, IAC, DO, 3, IAC, WILL, 3])
KEPT_OUTPUT = 64 * 1024  # printed with no client connected
CLIENT_BACKLOG = 256 * 1024  # printed while the client does not read
_READ = 4096


class ConsoleError(Exception):
    """The console port cannot be opened."""


class TelnetFilter:
    """Strips telnet commands from what the client types; keeps its state across reads."""

    def __init__(self) -> None:
        self.state = 0  # 0 data, 1 after IAC, 2 option byte, 3 in subnegotiation, 4 IAC in subnegotiation

    def feed(self, data: bytes) -> bytes:
        if IAC not in data and self.state == 0:
            return data
        out = bytearray()
        for byte in data:
            state = self.state
            if state == 0:
                if byte == IAC:
                    self.state = 1
                else:
                    out.append(byte)
            elif state == 1:
                if byte == IAC:
                    out.append(IAC)
                    self.state = 0
                elif byte in (WILL, WONT, DO, DONT):
                    self.state = 2
                elif byte == SB:
                    self.state = 3
                else:
                    self.state = 0
            elif state == 2:
                self.state = 0
            elif state == 3:
                if byte == IAC:
                    self.state = 4
            else:
                self.state = 0 if byte == SE else 3
        return bytes(out)


class Console:
    """The TCP console server of one PC. `on_input(text)` receives what the client types (telnet removed)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int, on_input: Callable[[str], None]) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            listener.bind((host, port))
            listener.listen(8)
            listener.setblocking(False)
        except OSError as exc:
            listener.close()
            raise ConsoleError(f"cannot listen on console TCP port {port} ({host}): {exc.strerror or exc}") from exc
        self.loop = loop
        self.port = port
        self.listener = listener
        self.on_input = on_input
        self.client: socket.socket | None = None
        self.waiting: deque[socket.socket] = deque()
        self.kept = bytearray()  # output with no client
        self.unsent = bytearray()  # output the client has not taken yet
        self.telnet = TelnetFilter()
        self.closed = False
        loop.add_reader(listener.fileno(), self._accept)

    # -- clients -----------------------------------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors: stop accepting for a moment instead of spinning on the listener
                self.loop.remove_reader(self.listener.fileno())
                self.loop.call_later(0.5, self._resume_accepting)
                return
            conn.setblocking(False)
            if self.client is None:
                self._attach(conn)
            else:
                self.waiting.append(conn)

    def _resume_accepting(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.listener.fileno(), self._accept)

    def _attach(self, conn: socket.socket) -> None:
        self.client = conn
        self.telnet = TelnetFilter()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.unsent = bytearray(NEGOTIATION) + self.kept
        self.kept = bytearray()
        self.loop.add_reader(conn.fileno(), self._readable)
        self._flush()

    def _readable(self) -> None:
        conn = self.client
        if conn is None:
            return
        try:
            data = conn.recv(_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.disconnect()
            return
        text = self.telnet.feed(data)
        if text:
            self.on_input(text.decode("latin-1"))

    def disconnect(self) -> None:
        """Drop the current client (it left, or typed `disconnect`); the next waiting one gets the console."""
        conn, self.client = self.client, None
        if conn is not None:
            self.loop.remove_reader(conn.fileno())
            if self.unsent:
                self.loop.remove_writer(conn.fileno())
            conn.close()
        self.unsent = bytearray()
        while self.waiting and not self.closed:
            candidate = self.waiting.popleft()
            if _still_there(candidate):
                self._attach(candidate)
                return
            candidate.close()

    # -- output ------------------------------------------------------------------------------------------------------

    def write(self, text: str) -> None:
        """Print `text` (line breaks as "\\n"; the client receives CR LF, as from vpcs's terminal)."""
        data = text.replace("\n", "\r\n").encode("latin-1", "replace")
        if self.client is None:
            self.kept += data
            if len(self.kept) > KEPT_OUTPUT:
                del self.kept[:len(self.kept) - KEPT_OUTPUT]
            return
        pending = bool(self.unsent)
        self.unsent += data
        if len(self.unsent) > CLIENT_BACKLOG:
            del self.unsent[:len(self.unsent) - CLIENT_BACKLOG]
        if not pending:
            self._flush()

    def _flush(self) -> None:
        conn = self.client
        if conn is None:
            return
        try:
            sent = conn.send(self.unsent)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.disconnect()
            return
        del self.unsent[:sent]
        if self.unsent:
            self.loop.add_writer(conn.fileno(), self._writable)

    def _writable(self) -> None:
        conn = self.client
        if conn is None:
            return
        self.loop.remove_writer(conn.fileno())
        self._flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.disconnect()
        for conn in self.waiting:
            conn.close()
        self.waiting.clear()
        self.loop.remove_reader(self.listener.fileno())
        self.listener.close()


def _still_there(conn: socket.socket) -> bool:
    """False for a waiting client that already hung up."""
    try:
        return conn.recv(1, socket.MSG_PEEK) != b""
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        return False
