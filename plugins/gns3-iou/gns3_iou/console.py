"""The console of a running IOU: a telnet server on the VM's console port, bridged to IOU's tty sockets.

IOU started with `-L` has no terminal of its own. It reads what is typed from the datagram socket
`/tmp/netio<uid>/ttyS<appid>` (its side) and writes its output to `ttyC<appid>` (ours). Every telnet client sees all
output and may type; `^^` (Ctrl-^) followed by `q` or `.` leaves, `^^ ^^` sends a literal Ctrl-^, `^^ ?` shows help.
A client that vanishes or stops reading is dropped without disturbing the others. What is typed before IOU has
opened its tty socket is kept (up to 4 KiB) and delivered once it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from pathlib import Path

from gns3core.dataplane.netio import bind_datagram_socket
from gns3core.errors import EmulatorError

log = logging.getLogger(__name__)

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SUPPRESS_GO_AHEAD = 1, 3
# IOU echoes and edits lines itself: character mode, no local echo.
NEGOTIATION = bytes([IAC, WILL, ECHO, IAC, WILL, SUPPRESS_GO_AHEAD, IAC, DO, SUPPRESS_GO_AHEAD])
ESCAPE = 0x1E  # ^^
WRITE_LIMIT = 256 * 1024  # a client this far behind is not reading: drop it rather than buffer without end
HELP = (b"\r\n[IOU console: '^^ q' or '^^ .' disconnects, '^^ ^^' sends ^^, '^^ ?' shows this help]\r\n")
TTY_DATAGRAM = 4096
PENDING_LIMIT = 4096  # input kept while IOU's tty socket is not there yet
PENDING_RETRY = 0.1


class TelnetReader:
    """Removes telnet commands from a client's input (state kept across reads); CR NUL and CR LF become CR."""

    def __init__(self) -> None:
        self._state = "data"
        self._after_cr = False

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            state = self._state
            if state == "data":
                if byte == IAC:
                    self._state = "iac"
                elif self._after_cr and byte in (0, 10):
                    self._after_cr = False
                else:
                    out.append(byte)
                    self._after_cr = byte == 13
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
            else:  # sub-iac
                self._state = "data" if byte == SE else "sub"
        return bytes(out)


class _Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.telnet = TelnetReader()
        self.escaped = False

    def send(self, data: bytes) -> bool:
        """Queue output; False when the client is gone or too far behind."""
        transport = self.writer.transport
        if transport.is_closing() or transport.get_write_buffer_size() > WRITE_LIMIT:
            return False
        self.writer.write(data.replace(b"\xff", b"\xff\xff"))
        return True


class IOUConsole:
    """Telnet on `host:port` <-> IOU's tty sockets in `directory`, for application id `appid`."""

    def __init__(self, name: str, host: str, port: int, directory: Path, appid: int) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.tty_ours = directory / f"ttyC{appid}"
        self.tty_iou = str(directory / f"ttyS{appid}")
        self._sock: socket.socket | None = None
        self._server: asyncio.base_events.Server | None = None
        self._clients: set[_Client] = set()
        self._tasks: set[asyncio.Task] = set()
        self._pending = bytearray()
        self._retry: asyncio.Task | None = None

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def start(self) -> None:
        """Bind our tty socket and listen for telnet clients; 409 when the port or the socket is taken."""
        loop = asyncio.get_running_loop()
        try:
            self._sock = await asyncio.to_thread(bind_datagram_socket, self.tty_ours)
        except Exception as exc:  # DataPlaneError: the message says what is in the way
            raise EmulatorError(f"Cannot open the console of IOU {self.name}: {exc}") from None
        self._sock.setblocking(False)
        loop.add_reader(self._sock.fileno(), self._from_iou)
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        except OSError as exc:
            self._close_socket()
            reason = "it is in use by another program" if exc.errno == errno.EADDRINUSE else (exc.strerror or exc)
            raise EmulatorError(f"Cannot listen on console port {self.port} of IOU {self.name}: {reason}") from None

    async def stop(self) -> None:
        """Close the listener and every client, and remove our tty socket."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for client in list(self._clients):
            with contextlib.suppress(Exception):
                client.writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=3)
        self._clients.clear()
        retry, self._retry = self._retry, None
        if retry is not None:
            retry.cancel()
            await asyncio.gather(retry, return_exceptions=True)
        self._pending.clear()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 3)
        self._close_socket()

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(sock.fileno())
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tty_ours)

    # -- IOU -> clients ---------------------------------------------------------------------------------------------

    def _from_iou(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                data = sock.recv(TTY_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("IOU %s console socket: %s", self.name, exc)
                return
            if data:
                self._broadcast(data)

    def _broadcast(self, data: bytes) -> None:
        for client in list(self._clients):
            if not client.send(data):
                self._drop(client)

    def _drop(self, client: _Client) -> None:
        self._clients.discard(client)
        with contextlib.suppress(Exception):
            client.writer.transport.abort()

    # -- clients -> IOU ---------------------------------------------------------------------------------------------

    def _to_iou(self, data: bytes) -> None:
        if not data or self._sock is None:
            return
        if self._pending:  # keep the order: IOU gets older input first
            self._hold(data)
            return
        try:
            self._sock.sendto(data, socket.MSG_DONTWAIT, self.tty_iou)
        except (FileNotFoundError, ConnectionRefusedError, BlockingIOError):
            self._hold(data)  # IOU is still booting (its tty socket is not there yet): keep what was typed
        except OSError as exc:
            log.debug("IOU %s console: %s", self.name, exc)

    def _hold(self, data: bytes) -> None:
        """Keep input until IOU's tty socket answers (bounded: a line typed while IOU boots is not lost)."""
        room = PENDING_LIMIT - len(self._pending)
        self._pending += data[:max(room, 0)]
        if self._retry is None or self._retry.done():
            self._retry = asyncio.get_running_loop().create_task(self._flush_pending())

    async def _flush_pending(self) -> None:
        while self._pending and self._sock is not None:
            try:
                self._sock.sendto(bytes(self._pending), socket.MSG_DONTWAIT, self.tty_iou)
                self._pending.clear()
                return
            except (FileNotFoundError, ConnectionRefusedError, BlockingIOError):
                await asyncio.sleep(PENDING_RETRY)
            except OSError as exc:
                log.debug("IOU %s console: %s", self.name, exc)
                self._pending.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        client = _Client(reader, writer)
        self._clients.add(client)
        try:
            writer.write(NEGOTIATION)
            writer.write(f"Connected to {self.name} (IOU). Escape character is '^^'.\r\n".encode())
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                typed, leave = self._escape(client, client.telnet.feed(data))
                self._to_iou(typed)
                if leave:
                    writer.write(b"\r\n[disconnected]\r\n")
                    break
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._clients.discard(client)
            with contextlib.suppress(Exception):
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 1)
            if task is not None:
                self._tasks.discard(task)

    @staticmethod
    def _escape(client: _Client, data: bytes) -> tuple[bytes, bool]:
        """Apply the `^^` escape: (what goes to IOU, whether the client leaves)."""
        out = bytearray()
        for byte in data:
            if client.escaped:
                client.escaped = False
                if byte in (ord("q"), ord("Q"), ord(".")):
                    return bytes(out), True
                if byte == ESCAPE:
                    out.append(ESCAPE)
                else:
                    client.send(HELP)
            elif byte == ESCAPE:
                client.escaped = True
            else:
                out.append(byte)
        return bytes(out), False
