"""The shared telnet console relay (gns3core.emulator.telnet_relay) in front of a UNIX socket that plays a VM's
serial port: several clients, telnet commands taken out, a serial port that goes away and comes back."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from gns3core.emulator.telnet_relay import NEGOTIATION, TelnetInput, TelnetRelay, unix_socket
from gns3core.errors import EmulatorError
from gns3core.testing.ports import free_tcp_port


class SerialPort:
    """A UNIX stream server standing for a VM's serial port: records what it receives, sends what it is told."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received = bytearray()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.got_data = asyncio.Event()

    async def open(self) -> None:
        self.server = await asyncio.start_unix_server(self._serve, str(self.path))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        while data := await reader.read(1024):
            self.received.extend(data)
            self.got_data.set()

    async def say(self, data: bytes) -> None:
        for writer in self.writers:
            writer.write(data)
            await writer.drain()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in self.writers:
                writer.close()
            self.writers.clear()
            await self.server.wait_closed()
            self.server = None
        self.path.unlink(missing_ok=True)

    async def wait_for(self, expected: bytes, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while expected not in self.received:
                self.got_data.clear()
                await self.got_data.wait()


async def read_until(reader: asyncio.StreamReader, expected: bytes, timeout: float = 5.0) -> bytes:
    data = b""
    async with asyncio.timeout(timeout):
        while expected not in data:
            chunk = await reader.read(1024)
            assert chunk, f"connection closed, got {data!r}"
            data += chunk
    return data


@pytest.fixture
async def serial(tmp_path: Path):
    port = SerialPort(tmp_path / "serial0")
    yield port
    await port.close()


async def connected_relay(serial: SerialPort) -> TelnetRelay:
    relay = TelnetRelay("vm1", "127.0.0.1", free_tcp_port(), unix_socket(serial.path), retry_delay=0.05)
    await relay.start()
    return relay


async def test_clients_share_the_serial_port(serial: SerialPort) -> None:
    await serial.open()
    relay = await connected_relay(serial)
    try:
        assert await relay.wait_connected(5)
        first = await asyncio.open_connection("127.0.0.1", relay.port)
        second = await asyncio.open_connection("127.0.0.1", relay.port)
        for reader, _ in (first, second):
            assert (await read_until(reader, NEGOTIATION)).startswith(NEGOTIATION)
        await serial.say(b"login: \xff")
        for reader, _ in (first, second):
            assert b"login: \xff\xff" in await read_until(reader, b"\xff\xff")  # 0xFF data is escaped for telnet
        first[1].write(bytes([255, 253, 1]) + b"root\r\n")  # IAC DO ECHO, then a line with telnet's CR LF
        second[1].write(b"x\r\x00")
        await serial.wait_for(b"root\rx\r")
        assert bytes(serial.received) == b"root\rx\r"
        first[1].close()  # one client leaves; the other keeps the console
        await serial.say(b"still here")
        assert b"still here" in await read_until(second[0], b"still here")
        second[1].close()
    finally:
        await relay.stop()
    assert not relay.running


async def test_clients_stay_while_the_serial_port_goes_and_comes_back(serial: SerialPort) -> None:
    relay = await connected_relay(serial)  # the VM has not opened its serial port yet
    try:
        assert not await relay.wait_connected(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        await read_until(reader, NEGOTIATION)
        await serial.open()
        assert await relay.wait_connected(5)
        await serial.say(b"boot 1\r\n")
        await read_until(reader, b"boot 1")
        await serial.close()  # a reset: the port closes and is opened again
        await serial.open()
        assert await relay.wait_connected(5)
        await asyncio.sleep(0.1)
        await serial.say(b"boot 2\r\n")
        await read_until(reader, b"boot 2")
        writer.write(b"ok\r")
        await serial.wait_for(b"ok\r")
        writer.close()
    finally:
        await relay.stop()


async def test_stop_closes_clients(serial: SerialPort) -> None:
    await serial.open()
    relay = await connected_relay(serial)
    reader, _writer = await asyncio.open_connection("127.0.0.1", relay.port)
    await read_until(reader, NEGOTIATION)
    await relay.stop()
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", relay.port), 1).close()


async def test_port_in_use_is_a_conflict(serial: SerialPort) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        relay = TelnetRelay("vm1", "127.0.0.1", taken.getsockname()[1], unix_socket(serial.path))
        with pytest.raises(EmulatorError, match="Cannot listen for the console of vm1 on .*: the port is in use"):
            await relay.start()
        assert not relay.running


def test_telnet_input_keeps_state_across_reads() -> None:
    telnet = TelnetInput()
    assert telnet.feed(b"a\xff") == b"a"
    assert telnet.feed(b"\xfb\x01b\xff\xfa\x18\x00xterm\xff") == b"b"
    assert telnet.feed(b"\xf0c\r") == b"c\r"
    assert telnet.feed(b"\nd\xff\xff") == b"d\xff"
