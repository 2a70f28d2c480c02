"""The console of a container: its TTY, attached through the Engine API, served to telnet clients on a TCP port.

The port is listened on from the node's creation to its deletion, so no other program can take it while the
container is stopped. Every telnet client gets its own attach websocket while the container runs; what it types
goes to the container's stdin (telnet commands removed) and the TTY's output comes back. Clients stay connected
across stops and restarts and are attached again when the container runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable

import aiohttp

from gns3_docker.engine import DockerEngine, EngineError, EngineUnreachable
from gns3core.errors import EmulatorError

log = logging.getLogger(__name__)

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SUPPRESS_GO_AHEAD = 1, 3
# The container's TTY echoes and edits lines itself: ask the client for character mode without local echo.
NEGOTIATION = bytes([IAC, WILL, ECHO, IAC, WILL, SUPPRESS_GO_AHEAD, IAC, DO, SUPPRESS_GO_AHEAD])
REATTACH_DELAY = 0.3
PENDING_LIMIT = 64 * 1024


class ConsolePortBusy(EmulatorError):
    """The console port was taken by another program after it was allocated."""


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


class TelnetConsole:
    """A telnet server on `host:port` for the container whose id `cid()` returns."""

    def __init__(self, engine: DockerEngine, cid: Callable[[], str | None], host: str, port: int, name: str) -> None:
        self.engine = engine
        self.cid = cid
        self.host = host
        self.port = port
        self.name = name
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task] = set()
        self._available = asyncio.Event()  # set while the container runs

    def set_available(self, running: bool) -> None:
        """The VM tells whether its container runs (clients attach only then)."""
        if running:
            self._available.set()
        else:
            self._available.clear()

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            return
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        except OSError as exc:
            error = ConsolePortBusy if exc.errno == errno.EADDRINUSE else EmulatorError
            raise error(f"Cannot listen for the console of {self.name} on {self.host}:{self.port}: "
                        f"{exc.strerror or exc}") from None

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        sessions = list(self._sessions)
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # stop() ends sessions; asyncio's stream callback must not see a cancelled task
        finally:
            self._sessions.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(NEGOTIATION)
        await writer.drain()
        current: list[aiohttp.ClientWebSocketResponse | None] = [None]
        pending = bytearray()  # typed while not attached (yet): delivered once attached
        typing = asyncio.ensure_future(self._client_to_container(reader, current, pending))
        try:
            while not typing.done():
                if not self._available.is_set():
                    available = asyncio.ensure_future(self._available.wait())
                    await asyncio.wait({typing, available}, return_when=asyncio.FIRST_COMPLETED)
                    available.cancel()
                    continue
                ws = await self._attach()
                if ws is None:
                    await asyncio.wait({typing}, timeout=REATTACH_DELAY)
                    continue
                output = asyncio.ensure_future(self._container_to_client(ws, writer))
                if pending:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.send_bytes(bytes(pending))
                    pending.clear()
                current[0] = ws
                try:
                    await asyncio.wait({typing, output}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    current[0] = None
                    output.cancel()
                    await asyncio.gather(output, return_exceptions=True)
                    await ws.close()
                if not typing.done():
                    await asyncio.wait({typing}, timeout=REATTACH_DELAY)
        finally:
            typing.cancel()
            await asyncio.gather(typing, return_exceptions=True)

    async def _attach(self) -> aiohttp.ClientWebSocketResponse | None:
        cid = self.cid()
        if cid is None:
            return None
        try:
            return await self.engine.attach_websocket(cid)
        except (EngineError, EngineUnreachable) as exc:
            log.debug("console of %s: cannot attach yet: %s", self.name, exc)
            return None

    @staticmethod
    async def _client_to_container(reader: asyncio.StreamReader,
                                   current: list[aiohttp.ClientWebSocketResponse | None], pending: bytearray) -> None:
        telnet = TelnetInput()
        while True:
            data = await reader.read(4096)
            if not data:
                return  # the client hung up
            payload = telnet.feed(data)
            ws = current[0]
            if not payload:
                continue
            if ws is not None and not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_bytes(payload)
            elif len(pending) < PENDING_LIMIT:
                pending.extend(payload)

    @staticmethod
    async def _container_to_client(ws: aiohttp.ClientWebSocketResponse, writer: asyncio.StreamWriter) -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                data = message.data
            elif message.type == aiohttp.WSMsgType.TEXT:
                data = message.data.encode()
            else:
                break
            writer.write(data.replace(bytes([IAC]), bytes([IAC, IAC])))
            await writer.drain()
