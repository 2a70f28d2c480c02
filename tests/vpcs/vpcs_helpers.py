"""Helpers of the VPCS tests: a telnet-ish console client, notification readers and process checks."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import psutil
import pytest

from gns3core.testing.telnet import strip_telnet

PROMPT = re.compile(rb"[\w.\-\[\]]+> ?$")


class Console:
    """One TCP connection to a vpcs console."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.seen = b""

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> Console:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_connection(host, port)
                return cls(reader, writer)
            except OSError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.02)

    async def read_until(self, pattern: re.Pattern[bytes], timeout: float, quiet: float = 0.15) -> bytes:
        """Read until the text received matches `pattern` and then nothing more comes for `quiet` seconds.

        vpcs flushes what was typed ahead when it prints a prompt, so a command must wait for the last prompt.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        buffer = b""
        while True:
            matched = pattern.search(buffer) is not None
            remaining = deadline - loop.time()
            if remaining <= 0 and not matched:
                raise TimeoutError(f"console never showed {pattern.pattern!r}; got {buffer!r}")
            try:
                chunk = await asyncio.wait_for(self.reader.read(4096), quiet if matched else remaining)
            except TimeoutError as exc:
                if matched:
                    break
                raise TimeoutError(f"console never showed {pattern.pattern!r}; got {buffer!r}") from exc
            if not chunk:
                raise ConnectionError(f"console closed; got {buffer!r}")
            buffer += strip_telnet(chunk).replace(b"\r", b"")
        self.seen += buffer
        return buffer

    async def prompt(self, timeout: float = 10.0) -> bytes:
        """Press Enter and wait for the prompt (the first connection also gets the banner and its prompt)."""
        self.writer.write(b"\n")
        await self.writer.drain()
        return await self.read_until(PROMPT, timeout)

    async def command(self, line: str, timeout: float = 15.0) -> str:
        """Send a command, return its echo and output once the prompt is back after them."""
        self.writer.write(line.encode() + b"\n")
        await self.writer.drain()
        done = re.compile(re.escape(line.encode()) + rb".*\n[\w.\-\[\]]+> ?$", re.DOTALL)
        output = await self.read_until(done, timeout)
        return output.decode(errors="replace")

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


async def next_event(response: Any, action: str, timeout: float = 10.0) -> dict[str, Any]:
    """Read notification lines until one with `action` arrives."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"no {action} notification")
        line = await asyncio.wait_for(response.content.readline(), remaining)
        if not line:
            raise ConnectionError("notification stream ended")
        message = json.loads(line)
        if message.get("action") == action:
            return message


def vpcs_tree(root_pid: int) -> list[psutil.Process]:
    """Every vpcs process below `root_pid` (the started vpcs and the VPC it forked)."""
    try:
        children = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in children if _name(p) == "vpcs"]


def leftovers(pids: list[int]) -> list[str]:
    """Which of these vpcs pids still exist in any form (a zombie counts: it is a process nobody reaped)."""
    found = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if _name(process) == "vpcs":
                found.append(f"{pid} ({process.status()})")
        except psutil.NoSuchProcess:
            continue
    return found


def running(pids: list[int]) -> list[int]:
    """Which of these pids still run (zombies excluded)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.Error:
        return ""


# The two ways a VPCS VM runs ([VPCS] backend); modules whose tests must pass on both parametrize with this.
BOTH_BACKENDS = pytest.mark.parametrize("vpcs_backend", ["vpcs", "builtin"], indirect=True)

# Port ranges of their own, so these tests never meet another server's ports on the same machine; tunnel ports in a
# window per test session (by pid), so two sessions running these tests at once rarely pick the same ones. (Console
# ports stay one range: a test creates 255 VMs in one project.)
_WINDOW = os.getpid() % 4
CONSOLE_RANGE = ("24100", "24999")
UDP_RANGE = (str(25000 + 500 * _WINDOW), str(25499 + 500 * _WINDOW))


def fake_vpcs(directory: Path, version_line: str, name: str = "vpcs") -> Path:
    """An executable that answers `-v` like vpcs would (and counts how often it was asked)."""
    path = directory / name
    path.write_text(
        "#!/bin/sh\n"
        f'echo asked >> "{directory}/{name}.asked"\n'
        f"printf '\\n{version_line}\\nBuild time: today\\n'\n"
    )
    path.chmod(0o755)
    return path
