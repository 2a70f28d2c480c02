"""A telnet console for an emulator whose serial port is a UNIX stream socket (VirtualBox, VMware, Qemu's chardev).

Emulators that expose a guest's serial port as a socket in server mode accept one connection at a time. The relay
holds that one connection and shares it among every telnet client of the node's console port: what the guest prints
goes to all of them, what any of them types goes to the guest. Clients come and go without touching the serial
connection. When the serial side closes (the emulator went away or reset its port) the relay says so through
`on_hangup`, so the VM can check whether its emulator is gone, and connects again while it is attached.

`start()` listens and joins the serial socket at once. A VM may instead listen for the node's whole life
(`start(attach=False)` ... `stop`), so no other program takes the port while the emulator is down, and join the
serial side only while the emulator runs (`attach` ... `detach`): telnet clients stay connected across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable
from pathlib import Path

from gns3core.errors import EmulatorError

log = logging.getLogger(__name__)

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SUPPRESS_GO_AHEAD = 1, 3
# The guest echoes and edits lines itself: ask the client for character mode without local echo.
NEGOTIATION = bytes([IAC, WILL, ECHO, IAC, WILL, SUPPRESS_GO_AHEAD, IAC, DO, SUPPRESS_GO_AHEAD])
RECONNECT_DELAY = 0.2
CLIENT_BACKLOG_LIMIT = 1024 * 1024  # a client that reads nothing is dropped rather than growing without bound


class TelnetFilter:
    """Removes telnet commands from what a client types (state kept across reads); CR LF and CR NUL become CR,
    the Enter key of a serial line."""

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
            elif state == "sub-iac":
                self._state = "data" if byte == SE else "sub"
        return bytes(out)


class SerialConsoleRelay:
    """Telnet on `host:port`, relayed to the serial socket at `socket_path`."""

    def __init__(self, socket_path: Path | str, host: str, port: int, name: str, *,
                 on_hangup: Callable[[], None] | None = None) -> None:
        self.socket_path = str(socket_path)
        self.host = host
        self.port = port
        self.name = name
        self.on_hangup = on_hangup
        self._server: asyncio.Server | None = None
        self._serial_task: asyncio.Task | None = None
        self._serial_writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._clients: dict[asyncio.StreamWriter, asyncio.Task] = {}

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def connected(self) -> bool:
        """Whether the serial socket is connected right now."""
        return self._connected.is_set()

    async def start(self, attach: bool = True) -> None:
        """Listen for telnet clients and, unless `attach` is false, join the serial socket as soon as it exists."""
        if self._server is not None:
            return
        try:
            self._server = await asyncio.start_server(self._serve_client, self.host, self.port, reuse_address=True)
        except OSError as exc:
            reason = "the port is in use by another program" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise EmulatorError(f"Cannot listen for the console of {self.name} on {self.host}:{self.port}: "
                                f"{reason or exc}") from None
        if attach:
            self.attach()

    def attach(self) -> None:
        """The emulator runs: connect to its serial socket as soon as it exists, and again after each hang-up."""
        if self._serial_task is None:
            self._serial_task = asyncio.get_running_loop().create_task(self._serial_loop())

    async def detach(self) -> None:
        """The emulator stopped: drop the serial connection; telnet clients stay."""
        task, self._serial_task = self._serial_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def wait_connected(self, timeout: float) -> bool:
        """True once the serial socket is connected, False when `timeout` passes first."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop listening, hang up every client and the serial connection."""
        await self.detach()
        server, self._server = self._server, None
        clients = list(self._clients.items())
        self._clients.clear()
        for writer, client_task in clients:
            client_task.cancel()
            writer.close()
        await asyncio.gather(*(t for _, t in clients), return_exceptions=True)
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    # -- the serial side -----------------------------------------------------------------------------------------------

    async def _serial_loop(self) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self.socket_path)
            except OSError:
                await asyncio.sleep(RECONNECT_DELAY)
                continue
            self._serial_writer = writer
            self._connected.set()
            try:
                while data := await reader.read(4096):
                    self._broadcast(data.replace(bytes([IAC]), bytes([IAC, IAC])))
            except OSError as exc:
                log.debug("console of %s: serial socket error: %s", self.name, exc)
            finally:
                self._connected.clear()
                self._serial_writer = None
                writer.close()
            log.info("console of %s: the serial socket %s closed", self.name, self.socket_path)
            if self.on_hangup is not None:
                try:
                    self.on_hangup()
                except Exception:
                    log.exception("console of %s: hang-up callback failed", self.name)
            await asyncio.sleep(RECONNECT_DELAY)

    def _broadcast(self, data: bytes) -> None:
        for writer in list(self._clients):
            transport = writer.transport
            if transport.is_closing() or transport.get_write_buffer_size() > CLIENT_BACKLOG_LIMIT:
                log.info("console of %s: dropping a client that does not read", self.name)
                self._clients.pop(writer).cancel()
                writer.close()
                continue
            writer.write(data)

    # -- the telnet side -------------------------------------------------------------------------------------------

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[writer] = task
        try:
            writer.write(NEGOTIATION)
            telnet = TelnetFilter()
            while data := await reader.read(4096):
                payload = telnet.feed(data)
                serial = self._serial_writer
                if payload and serial is not None and not serial.transport.is_closing():
                    serial.write(payload)
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # stop() ends clients; the stream callback must not see a cancelled task
        finally:
            self._clients.pop(writer, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
