"""Helpers shared by the IOU test modules: port ranges, VM creation, the stand-in's console."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from gns3core.testing.client import ApiClient
from gns3core.testing.telnet import strip_telnet

# Ranges of their own, away from other suites' servers on this machine, and a window of them per test session (by
# pid), so two sessions running these tests at once rarely pick the same ports.
_WINDOW = os.getpid() % 8
CONSOLE_RANGE = (str(27100 + 100 * _WINDOW), str(27199 + 100 * _WINDOW))
UDP_RANGE = (str(28000 + 250 * _WINDOW), str(28249 + 250 * _WINDOW))

ROUTER_CONFIG = """hostname %h
!
interface Ethernet0/0
 ip address {address} 255.255.255.0
!
end
"""


async def create_iou(api: ApiClient, project_id: str, image: str, **fields: Any) -> dict[str, Any]:
    body = {"name": fields.pop("name", "R1"), "path": image, **fields}
    reply = await api.post(f"/v1/projects/{project_id}/iou/vms", body)
    assert reply.status == 201, reply
    return reply.json


def vm_url(project_id: str, vm_id: str) -> str:
    return f"/v1/projects/{project_id}/iou/vms/{vm_id}"


class Console:
    """A telnet client on an IOU console (the stand-in's CLI behind the server's bridge)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = ""

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> Console:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def read_until(self, text: str, timeout: float = 15.0) -> str:
        """Everything up to and including `text`; what came after stays for the next read."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while text not in self.buffer:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"console never showed {text!r}; it showed {self.buffer!r}")
            try:
                chunk = await asyncio.wait_for(self.reader.read(4096), remaining)
            except TimeoutError:
                continue
            if not chunk:
                raise AssertionError(f"console closed before {text!r}; it showed {self.buffer!r}")
            self.buffer += strip_telnet(chunk).decode(errors="replace")
        end = self.buffer.index(text) + len(text)
        output, self.buffer = self.buffer[:end], self.buffer[end:]
        return output

    async def command(self, line: str, until: str = "#", timeout: float = 15.0) -> str:
        self.writer.write(line.encode() + b"\r")
        await self.writer.drain()
        await self.read_until(line, timeout)
        return await self.read_until(until, timeout)

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except (TimeoutError, ConnectionError):
            pass
