"""Telnet consoles of a container: the main console (the container's TTY, attached through the Engine API) and the
aux console (a shell started in the container for each client, through the Engine API's exec endpoints).

A console port is listened on from the node's creation to its deletion, so no other program can take it while the
container is stopped. Each telnet client gets its own channel into the container while it runs; what it types goes
in (telnet commands removed) and what comes out is sent back. Clients stay connected across stops and restarts and
get a new channel when the container runs again; on the aux console a client whose shell exits gets a new shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import aiohttp

from gns3_docker.engine import DockerEngine
from gns3_docker.telnet import NEGOTIATION, TelnetInput, TerminalOutput
from gns3core.errors import Conflict, EmulatorError

log = logging.getLogger(__name__)

REATTACH_DELAY = 0.3
PENDING_LIMIT = 64 * 1024
FLUSH_DELAY = 0.05  # how long a possible terminal query split across reads is held back


class ConsolePortBusy(EmulatorError):
    """The console port was taken by another program after it was allocated."""


class Channel(Protocol):
    """A byte pipe into the container: `read` returns b"" once it ended."""

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class AttachChannel:
    """The container's TTY through the Engine's attach websocket (`docker attach`)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        while True:
            message = await self.ws.receive()
            if message.type == aiohttp.WSMsgType.BINARY:
                data = message.data
            elif message.type == aiohttp.WSMsgType.TEXT:
                data = message.data.encode()
            else:
                return b""  # closed (the container stopped) or failed
            if data:
                return data

    async def write(self, data: bytes) -> None:
        if not self.ws.closed:
            await self.ws.send_bytes(data)

    async def close(self) -> None:
        await self.ws.close()


class ExecChannel:
    """A program run in the container through the Engine's exec endpoints (`docker exec -i[t]`)."""

    def __init__(self, stream) -> None:
        self.stream = stream

    async def read(self) -> bytes:
        try:
            message = await self.stream.read_out()
        except (AssertionError, AttributeError, aiohttp.ClientError):
            return b""  # aiodocker's stream after its connection went away
        return b"" if message is None else message.data

    async def write(self, data: bytes) -> None:
        try:
            await self.stream.write_in(data)
        except (AssertionError, AttributeError) as exc:  # the connection is gone (the program or container ended)
            raise ConnectionResetError(f"exec stream closed: {exc}") from None

    async def close(self) -> None:
        await self.stream.close()


ChannelOpener = Callable[[], Awaitable[Channel | None]]


def attach_opener(engine: DockerEngine, cid: Callable[[], str | None]) -> ChannelOpener:
    async def open_attach() -> Channel | None:
        container = cid()
        if container is None:
            return None
        return AttachChannel(await engine.attach_websocket(container))

    return open_attach


def exec_opener(engine: DockerEngine, cid: Callable[[], str | None], command: Callable[[], Sequence[str]],
                *, tty: bool, environment: Sequence[str] = ()) -> ChannelOpener:
    async def open_exec() -> Channel | None:
        container = cid()
        if container is None:
            return None
        return ExecChannel(await engine.exec_stream(container, command(), tty=tty, environment=environment))

    return open_exec


class ContainerListener:
    """A TCP listener on `host:port` held for the node's life; `set_available` says whether the container runs."""

    what = "console"

    def __init__(self, host: str, port: int, name: str) -> None:
        self.host = host
        self.port = port
        self.name = name
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task] = set()
        self._available = asyncio.Event()

    def set_available(self, running: bool) -> None:
        if running:
            self._available.set()
        else:
            self._available.clear()

    @property
    def available(self) -> bool:
        return self._available.is_set()

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
            raise error(f"Cannot listen for the {self.what} of {self.name} on {self.host}:{self.port}: "
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
            await self.session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # stop() ends sessions; asyncio's stream callback must not see a cancelled task
        except Exception:
            log.exception("%s of %s: session failed", self.what, self.name)
        finally:
            self._sessions.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class TelnetConsole(ContainerListener):
    """A telnet server whose clients each get a channel from `open_channel` while the container runs."""

    def __init__(self, open_channel: ChannelOpener, host: str, port: int, name: str, *, what: str = "console",
                 greeting: bool = True) -> None:
        super().__init__(host, port, name)
        self.open_channel = open_channel
        self.what = what
        self.greeting = greeting

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(NEGOTIATION)
        if self.greeting:
            writer.write(f"{self.name} console is now available... Press RETURN to get started.\r\n".encode())
        await writer.drain()
        current: list[Channel | None] = [None]
        pending = bytearray()  # typed while not attached (yet): delivered once attached
        typing = asyncio.ensure_future(self._client_to_container(reader, current, pending))
        try:
            while not typing.done():
                if not self.available:
                    available = asyncio.ensure_future(self._available.wait())
                    await asyncio.wait({typing, available}, return_when=asyncio.FIRST_COMPLETED)
                    available.cancel()
                    continue
                channel = await self._open()
                if channel is None:
                    await asyncio.wait({typing}, timeout=REATTACH_DELAY)
                    continue
                output = asyncio.ensure_future(self._container_to_client(channel, writer))
                if pending:
                    with contextlib.suppress(ConnectionError, RuntimeError, OSError):
                        await channel.write(bytes(pending))
                    pending.clear()
                current[0] = channel
                try:
                    await asyncio.wait({typing, output}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    current[0] = None
                    output.cancel()
                    await asyncio.gather(output, return_exceptions=True)
                    with contextlib.suppress(Exception):
                        await channel.close()
                if not typing.done():
                    await asyncio.wait({typing}, timeout=REATTACH_DELAY)
        finally:
            typing.cancel()
            await asyncio.gather(typing, return_exceptions=True)

    async def _open(self) -> Channel | None:
        try:
            return await self.open_channel()
        except Conflict as exc:
            log.debug("%s of %s: cannot attach yet: %s", self.what, self.name, exc)
            return None

    @staticmethod
    async def _client_to_container(reader: asyncio.StreamReader, current: list[Channel | None],
                                   pending: bytearray) -> None:
        telnet = TelnetInput()
        while True:
            data = await reader.read(4096)
            if not data:
                return  # the client hung up
            payload = telnet.feed(data)
            if not payload:
                continue
            channel = current[0]
            if channel is not None:
                with contextlib.suppress(ConnectionError, RuntimeError, OSError):
                    await channel.write(payload)
            elif len(pending) < PENDING_LIMIT:
                pending.extend(payload)

    @staticmethod
    async def _container_to_client(channel: Channel, writer: asyncio.StreamWriter) -> None:
        terminal = TerminalOutput()
        reading: asyncio.Future | None = None
        try:
            while True:
                reading = reading or asyncio.ensure_future(channel.read())
                done, _ = await asyncio.wait({reading}, timeout=FLUSH_DELAY if terminal.holding else None)
                if not done:
                    writer.write(terminal.flush())  # a lone ESC (a key, not a query): let it through
                    await writer.drain()
                    continue
                data, reading = reading.result(), None
                if not data:
                    break
                writer.write(terminal.feed(data))
                await writer.drain()
        finally:
            if reading is not None:
                reading.cancel()
            tail = terminal.flush()
            if tail:
                with contextlib.suppress(Exception):
                    writer.write(tail)
