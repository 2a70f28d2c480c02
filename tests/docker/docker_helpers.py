"""Helpers of the Docker tests: a telnet-ish console client, a real VPCS on a UDP tunnel, free UDP ports."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from gns3core.testing.ports import udp_port_is_free
from gns3core.testing.telnet import strip_telnet
from gns3core.testing.vpcs import VPCSProcess


def require(program: str, package: str) -> str:
    """The program's path; skip without it, fail under CI (CI installs everything)."""
    path = shutil.which(program)
    if path is None:
        message = f"{program} is not installed (apt-get install -y {package})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class Console:
    """A line-oriented client of a telnet console on 127.0.0.1."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.text = ""
        self.seen = b""  # every byte received, telnet commands removed, for checks on the raw output

    @classmethod
    async def connect(cls, port: int, timeout: float = 10.0) -> Console:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                return cls(reader, writer)
            except OSError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def send(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()

    async def expect(self, pattern: str, timeout: float = 15.0) -> re.Match:
        """Wait for `pattern` in the output after the last match; the match consumes what came before it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = re.search(pattern, self.text)
            if found:
                self.text = self.text[found.end():]
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{pattern!r} not seen within {timeout} s; console said:\n{self.text[-2000:]}")
            try:
                chunk = await asyncio.wait_for(self.reader.read(4096), remaining)
            except TimeoutError:
                continue
            if not chunk:
                raise AssertionError(f"console closed while waiting for {pattern!r}; it said:\n{self.text[-2000:]}")
            data = strip_telnet(chunk)
            self.seen += data
            self.text += data.decode(errors="replace").replace("\r", "")

    async def run(self, command: str, timeout: float = 20.0) -> str:
        """Run a shell command in the container and return its output (a marker tells where it ends)."""
        await self.send(f"{command}; echo END-$((6*7))")
        return (await self.expect(r"([\s\S]*?)END-42", timeout)).group(1)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


def free_udp_port(avoid: set[int] | None = None, also: tuple[int, ...] = ()) -> int:
    """A UDP port free now, together with port+offset for each offset in `also` (VPCS 0.5b2 binds lport+9)."""
    avoid = avoid or set()
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port in avoid or port + max(also, default=0) > 65535:
            continue
        if all(udp_port_is_free(port + offset) for offset in (0, *also)):
            return port
    raise RuntimeError("no free UDP port found")


class VPCS(VPCSProcess):
    """vpcs named PC-A with an address from startup.vpc, started at once (the test connects with its own Console)."""

    def __init__(self, workdir: Path, console: int, lport: int, rport: int, address: str = "10.0.0.1 24") -> None:
        super().__init__(workdir, console, lport, rport, startup=["set pcname PC-A", f"ip {address}"],
                         program=require("vpcs", "vpcs"))
        self.start()


def host_veths(prefix: str = "g3d") -> list[str]:
    """Host interfaces the plugin created (their names start with g3d)."""
    return [name for _, name in socket.if_nameindex() if name.startswith(prefix)]


async def read_notifications(response, wanted: set[str], timeout: float = 20) -> dict[str, Any]:
    """Collect notifications until every action in `wanted` was seen; returns the last event of each action."""
    seen: dict[str, Any] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not wanted <= seen.keys():
        line = await asyncio.wait_for(response.content.readline(), max(0.1, deadline - loop.time()))
        if line.strip():
            message = json.loads(line)
            seen[message["action"]] = message.get("event")
    return seen
