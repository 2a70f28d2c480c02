"""Helpers of the Qemu tests: the guest's shell over qemu's telnet serial console."""

from __future__ import annotations

import asyncio

from gns3_qemu import guest as guest_builder

from gns3core.testing.telnet import strip_telnet


class SerialConsole:
    """The guest's shell over qemu's telnet serial console."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.text = ""

    @classmethod
    async def open(cls, port: int) -> SerialConsole:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def read_until(self, marker: str, timeout: float) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while marker not in self.text:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{marker!r} not seen within {timeout} s; console said: {self.text[-1500:]!r}")
            try:
                data = await asyncio.wait_for(self.reader.read(4096), remaining)
            except TimeoutError:
                continue
            if not data:
                raise AssertionError(f"console closed before {marker!r}; it said: {self.text[-1500:]!r}")
            self.text += strip_telnet(data).decode(errors="replace")
        before, _, after = self.text.partition(marker)
        self.text = after
        return before

    async def wait_prompt(self, timeout: float = 60) -> None:
        await self.read_until(guest_builder.PROMPT, timeout)

    async def run(self, command: str, timeout: float = 30) -> str:
        """Run a shell command and return its output (the end marker is computed, so the echo never matches)."""
        self.writer.write(f"{command}; echo END-$((6*7))\n".encode())
        await self.writer.drain()
        return await self.read_until("END-42", timeout)

    async def close(self) -> None:
        self.writer.close()
