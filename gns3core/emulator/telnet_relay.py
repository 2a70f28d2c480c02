"""A telnet console in front of one byte stream: how a VM's serial port (a UNIX socket served by VMware or
VirtualBox) becomes a console that several telnet clients share.

The relay keeps one connection to the serial port while it runs. Whatever the VM prints goes to every client; what
any client types goes to the VM, with telnet's own commands taken out. A client that leaves, or reads so slowly that
its backlog grows past a limit, is dropped without disturbing the others. When the VM side closes (the VM was reset
or has not opened its port yet), the relay connects again and the clients stay connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from gns3core.errors import EmulatorError

log = logging.getLogger(__name__)

StreamOpener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SUPPRESS_GO_AHEAD = 1, 3
# The guest echoes and edits lines itself: the client goes to character mode without a local echo.
NEGOTIATION = bytes([IAC, WILL, ECHO, IAC, WILL, SUPPRESS_GO_AHEAD, IAC, DO, SUPPRESS_GO_AHEAD])
CLIENT_BACKLOG_LIMIT = 256 * 1024  # bytes waiting for one client before it counts as gone
READ_SIZE = 4096


def unix_socket(path: Path | str) -> StreamOpener:
    """An opener for a stream UNIX socket, e.g. a VM's serial port in "pipe server" mode."""

    async def open_stream() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_unix_connection(str(path))

    return open_stream


class TelnetInput:
    """Takes telnet commands out of what a client sends (state is kept across reads) and turns the Enter key, which
    telnet sends as CR NUL or CR LF, into the single CR a serial console expects."""

    def __init__(self) -> None:
        self._state = "data"
        self._after_cr = False

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            state = self._state
            if state == "data":
                if byte == IAC:
                    self._state = "command"
                elif self._after_cr and byte in (0, 10):
                    self._after_cr = False
                else:
                    out.append(byte)
                    self._after_cr = byte == 13
            elif state == "command":
                if byte == IAC:  # an escaped 0xFF data byte
                    out.append(IAC)
                    self._state = "data"
                elif byte in (WILL, WONT, DO, DONT):
                    self._state = "option"
                elif byte == SB:
                    self._state = "subnegotiation"
                else:
                    self._state = "data"
            elif state == "option":
                self._state = "data"
            elif state == "subnegotiation":
                if byte == IAC:
                    self._state = "subnegotiation-iac"
            else:  # subnegotiation-iac
                self._state = "data" if byte == SE else "subnegotiation"
        return bytes(out)


class TelnetRelay:
    """A telnet server on `host:port` sharing the stream that `open_stream()` connects to among its clients."""

    def __init__(self, name: str, host: str, port: int, open_stream: StreamOpener, *,
                 retry_delay: float = 0.2, max_retry_delay: float = 2.0) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.open_stream = open_stream
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self._server: asyncio.Server | None = None
        self._backend_task: asyncio.Task | None = None
        self._backend: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._clients: set[asyncio.StreamWriter] = set()
        self._sessions: set[asyncio.Task] = set()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def start(self) -> None:
        """Listen for telnet clients and start connecting to the stream; 409 when the port cannot be bound."""
        if self._server is not None:
            return
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        except OSError as exc:
            reason = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise EmulatorError(f"Cannot listen for the console of {self.name} on {self.host}:{self.port}: "
                                f"{reason}") from None
        self._backend_task = asyncio.create_task(self._follow_backend(), name=f"console-{self.name}")

    async def wait_connected(self, timeout: float) -> bool:
        """Whether the stream was reached within `timeout` seconds (clients are served either way)."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Close the listener, every client and the stream."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        task, self._backend_task = self._backend_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        sessions = list(self._sessions)
        for session in sessions:
            session.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)

    # -- the stream ------------------------------------------------------------------------------------------------

    async def _follow_backend(self) -> None:
        delay = self.retry_delay
        while True:
            try:
                reader, writer = await self.open_stream()
            except OSError as exc:
                log.debug("console of %s: stream not reachable yet: %s", self.name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
                continue
            delay = self.retry_delay
            self._backend = writer
            self._connected.set()
            try:
                while chunk := await reader.read(READ_SIZE):
                    self._broadcast(chunk.replace(bytes([IAC]), bytes([IAC, IAC])))
            except OSError as exc:
                log.debug("console of %s: stream lost: %s", self.name, exc)
            finally:
                self._backend = None
                self._connected.clear()
                writer.close()
            await asyncio.sleep(self.retry_delay)

    def _broadcast(self, data: bytes) -> None:
        for client in list(self._clients):
            transport = client.transport
            if transport.is_closing() or transport.get_write_buffer_size() > CLIENT_BACKLOG_LIMIT:
                self._clients.discard(client)
                transport.abort()  # gone, or too slow to keep up: the others are not held back
                continue
            client.write(data)

    # -- clients ---------------------------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        self._clients.add(writer)
        try:
            writer.write(NEGOTIATION)
            telnet = TelnetInput()
            while data := await reader.read(READ_SIZE):
                typed = telnet.feed(data)
                backend = self._backend
                if typed and backend is not None and not backend.is_closing():
                    backend.write(typed)
                    with contextlib.suppress(ConnectionError):
                        await backend.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # stop() ends sessions; asyncio's stream callback must not see a cancelled task
        finally:
            self._clients.discard(writer)
            self._sessions.discard(task)
            writer.close()
