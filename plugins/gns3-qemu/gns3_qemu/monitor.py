"""The Qemu human monitor over TCP: one connection per command, as API v1 servers drive it.

The monitor greets with a banner and a `(qemu) ` prompt, echoes what it is sent (with terminal escapes), prints the
reply, then prompts again. The reply is what lies between the echoed command line and the next prompt.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable

PROMPT = b"(qemu) "
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[@-Z\\-_]")


class MonitorError(Exception):
    """The monitor could not be reached or did not answer in time."""


def clean_reply(raw: bytes, command: str) -> str:
    """Strip terminal escapes and the echo of `command` from the text the monitor sent before its prompt."""
    text = _ESCAPES.sub("", raw.decode(errors="replace")).replace("\r", "")
    lines = [line for line in text.split("\n") if line.strip()]
    while lines and lines[0].strip().endswith(command.strip()):
        lines.pop(0)
    return "\n".join(lines)


def status_word(reply: str) -> str | None:
    """`VM status: paused (suspended)` -> `paused`: the last word of the status line, without parentheses."""
    for line in reply.splitlines():
        if line.startswith("VM status"):
            words = re.sub(r"\(.*?\)", "", line).split()
            return words[-1] if words else None
    return None


class Monitor:
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._lock = asyncio.Lock()

    async def _open(self, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), timeout)
            await asyncio.wait_for(reader.readuntil(PROMPT), timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            reason = str(exc) or type(exc).__name__
            raise MonitorError(f"Qemu monitor {self.host}:{self.port} did not answer: {reason}") from exc
        return reader, writer

    async def command(self, command: str, timeout: float | None = None) -> str:
        """Run one monitor command and return its reply (an empty string for silent commands)."""
        timeout = timeout or self.timeout
        async with self._lock:
            reader, writer = await self._open(timeout)
            try:
                writer.write(command.encode() + b"\n")
                await writer.drain()
                try:
                    raw = await asyncio.wait_for(reader.readuntil(PROMPT), timeout)
                except asyncio.IncompleteReadError as exc:  # `quit` and `system_powerdown` may close first
                    raw = exc.partial
                except (OSError, TimeoutError, asyncio.LimitOverrunError) as exc:
                    raise MonitorError(f"Qemu monitor gave no answer to {command!r}: {exc}") from exc
            finally:
                writer.close()
                try:
                    await writer.wait_closed()
                except OSError:
                    pass
        return clean_reply(raw[: -len(PROMPT)] if raw.endswith(PROMPT) else raw, command)

    async def wait_ready(self, deadline: float, alive: Callable[[], bool]) -> None:
        """Poll until the monitor greets us, or `alive()` turns false, or the loop time passes `deadline`."""
        loop = asyncio.get_running_loop()
        delay = 0.002
        while True:
            try:
                async with self._lock:
                    _reader, writer = await self._open(max(0.05, deadline - loop.time()))
                    writer.close()
                return
            except MonitorError:
                if not alive() or loop.time() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)


def free_tcp_port(host: str) -> int:
    """A port the OS has free right now on host (bound to port 0 and closed again) for the monitor."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
