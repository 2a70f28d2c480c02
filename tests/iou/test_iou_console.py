"""The console bridge alone (no IOU): telnet on one side, IOU's tty datagram sockets on the other."""

from __future__ import annotations

import asyncio
import socket

from gns3_iou.console import IOUConsole

from gns3core.dataplane.netio import prepare_directory
from gns3core.testing.ports import free_tcp_port
from gns3core.testing.telnet import strip_telnet


async def read_until(reader: asyncio.StreamReader, text: bytes, timeout: float = 10) -> bytes:
    data = b""
    while text not in strip_telnet(data):
        data += await asyncio.wait_for(reader.read(4096), timeout)
    return strip_telnet(data)


async def test_input_typed_while_iou_boots_is_delivered_in_order(tmp_path):
    directory = tmp_path / "netio"
    prepare_directory(directory)
    port = free_tcp_port()
    console = IOUConsole("R1", "127.0.0.1", port, directory, 7)
    await console.start()
    iou = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await read_until(reader, b"Escape character is '^^'")
        writer.write(b"enable\r\xff\xff")  # an escaped IAC is one 0xff byte for IOU
        await writer.drain()
        await asyncio.sleep(0.3)
        iou.bind(str(directory / "ttyS7"))  # IOU opens its tty socket only now
        iou.settimeout(5)
        writer.write(b"show version\r")
        await writer.drain()
        received = b""
        while b"show version\r" not in received:
            received += await asyncio.to_thread(iou.recv, 4096)
        assert received == b"enable\r\xffshow version\r"
        iou.sendto(b"IOU says \xff hello\r\n", str(directory / "ttyC7"))
        assert b"IOU says \xff hello" in await read_until(reader, b"hello")
        writer.close()
    finally:
        await console.stop()
        iou.close()
    assert not (directory / "ttyC7").exists()
