"""The serial console relay: one serial connection shared by several telnet clients, surviving both sides' hang-ups."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gns3core.emulator.serial_relay import IAC, SerialConsoleRelay, TelnetFilter
from gns3core.errors import EmulatorError
from gns3core.testing.ports import free_tcp_port
from gns3core.testing.telnet import strip_telnet


class SerialPort:
    """A guest serial port in server mode: one client at a time, echoes what it gets, upper-cased."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server: asyncio.Server | None = None
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._serve, str(self.path))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        writer.write(b"login: ")
        while data := await reader.read(1024):
            writer.write(data.upper())
        writer.close()

    async def hang_up(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    async def stop(self) -> None:
        await self.hang_up()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def read_until(reader: asyncio.StreamReader, wanted: bytes, timeout: float = 5.0) -> bytes:
    data = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while wanted not in strip_telnet(data):
        chunk = await asyncio.wait_for(reader.read(1024), max(0.01, deadline - loop.time()))
        assert chunk, f"connection closed before {wanted!r}: {data!r}"
        data += chunk
    return strip_telnet(data)


def test_telnet_filter_drops_commands_and_maps_enter() -> None:
    telnet = TelnetFilter()
    assert telnet.feed(bytes([IAC, 251, 1]) + b"ls\r\n") == b"ls\r"
    assert telnet.feed(b"a\r\x00b" + bytes([IAC, IAC])) == b"a\rb" + bytes([IAC])
    assert telnet.feed(bytes([IAC, 250, 24, 0]) + b"xterm" + bytes([IAC, 240]) + b"ok") == b"ok"
    assert telnet.feed(bytes([IAC])) == b"" and telnet.feed(bytes([253, 3]) + b"z") == b"z"  # split across reads


async def test_clients_share_one_serial_connection_and_survive_hangups(tmp_path: Path) -> None:
    serial = SerialPort(tmp_path / "serial.sock")
    hangups: list[int] = []
    port = free_tcp_port()
    relay = SerialConsoleRelay(serial.path, "127.0.0.1", port, "vm1", on_hangup=lambda: hangups.append(1))
    await relay.start()  # before the serial socket exists: the relay waits for it
    try:
        assert not await relay.wait_connected(0.3)
        await serial.start()
        assert await relay.wait_connected(5)
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        w1.write(b"hello\r\n")
        assert b"HELLO\r" in await read_until(r1, b"HELLO\r")
        assert b"HELLO\r" in await read_until(r2, b"HELLO\r")  # every client sees the guest's output
        w1.close()  # one client leaves; the other and the serial connection stay
        w2.write(b"again\r")
        assert b"AGAIN" in await read_until(r2, b"AGAIN")
        assert serial.connections == 1

        await serial.hang_up()  # the emulator closes its side: reported, then connected again
        for _ in range(100):
            if hangups and serial.connections == 2 and relay.connected:
                break
            await asyncio.sleep(0.05)
        assert hangups and serial.connections == 2
        w2.write(b"back\r")
        assert b"BACK" in await read_until(r2, b"BACK")
        await relay.detach()  # the emulator stops: the client stays connected, the serial side goes
        assert not relay.connected and relay.listening
        relay.attach()
        assert await relay.wait_connected(5) and serial.connections == 3
        w2.write(b"third\r")
        assert b"THIRD" in await read_until(r2, b"THIRD")
        w2.close()
    finally:
        await relay.stop()
        await serial.stop()
    assert not relay.listening
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    blocker = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    relay = SerialConsoleRelay(tmp_path / "none.sock", "127.0.0.1", port, "vm1")
    try:
        with pytest.raises(EmulatorError, match="in use"):
            await relay.start()
    finally:
        blocker.close()
        await blocker.wait_closed()
        await relay.stop()
