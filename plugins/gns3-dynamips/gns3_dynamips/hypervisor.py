"""The dynamips hypervisor: one process per router or device, spoken to over its TCP text protocol.

Why a class of its own: every router and device owns one hypervisor, and all of them share the same framing rules
(one command per line; `1xx ` intermediate lines, `100-` success, `2xx-` error) and the same start/stop dance.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import signal
import socket
import tempfile
from pathlib import Path

from gns3core.emulator import ManagedProcess
from gns3core.errors import EmulatorError

log = logging.getLogger(__name__)

MIN_VERSION = (0, 2, 11)
REPLY_TIMEOUT = 60.0  # a router start or config extraction can take a while; a hang must not
_ERROR_LINE = re.compile(r"^2\d\d-")
_counter = itertools.count(1)  # server-wide hypervisor number, used in the log file name


class HypervisorError(EmulatorError):
    """A `2xx-` reply: the text dynamips gave, shown to the client as a 409."""


class HypervisorTimeout(EmulatorError):
    """No reply in time. The connection is closed then: a late reply would be read as the answer to the next
    command, and a hypervisor that stopped answering (a dynamips deadlock) would make every later request wait too."""

    def __init__(self, message: str, command: str) -> None:
        super().__init__(message)
        self.command = command


def quote(value: str) -> str:
    """Quote a name or path for the hypervisor; quotes and line breaks would break the line protocol."""
    if any(c in value for c in '"\r\n\x00'):
        raise EmulatorError(f"{value[:100]!r} cannot be used with dynamips: double quotes, NUL characters and line "
                            "breaks are not allowed")
    return f'"{value}"'


def parse_version(text: str) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", text.split("-")[0])
    return tuple(int(n) for n in numbers)


def parse_reply(data: bytes) -> list[str]:
    """Turn a complete reply into its lines without codes; raise HypervisorError on a `2xx-` line."""
    lines = data.decode("utf-8", errors="replace").splitlines()
    last = lines[-1] if lines else ""
    if _ERROR_LINE.match(last):
        raise HypervisorError(last[4:])
    result = [line[4:] for line in lines]
    if result and result[-1] == "OK":
        result.pop()
    return result


def reply_complete(data: bytes) -> bool:
    if not data.endswith(b"\n"):
        return False
    last = data.rstrip(b"\r\n").rsplit(b"\n", 1)[-1].lstrip(b"\r")
    return last.startswith(b"100-") or bool(_ERROR_LINE.match(last[:4].decode("ascii", errors="replace")))


class HypervisorConnection:
    """One TCP connection; commands are serialised by a lock so replies never interleave."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def connect(self, timeout: float = 10.0, alive=lambda: True) -> None:
        """Retry every ~10 ms (1 s per attempt) until the hypervisor listens, or give up after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: Exception | None = None
        while loop.time() < deadline:
            if not alive():
                break
            try:
                self._reader, self._writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), 1.0)
                return
            except (OSError, TimeoutError) as exc:
                last = exc
                await asyncio.sleep(0.01)
        raise EmulatorError(f"Could not connect to the dynamips hypervisor on {self.host}:{self.port}: {last}")

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def send(self, command: str, timeout: float = REPLY_TIMEOUT) -> list[str]:
        """Send one command and return the reply lines (codes stripped, final `OK` dropped)."""
        async with self._lock:
            if not self.connected:
                raise EmulatorError(f"Not connected to the dynamips hypervisor ({command.split(' ')[:2]})")
            assert self._reader is not None and self._writer is not None
            if any(c in command for c in "\r\n\x00"):  # one more line would desynchronise the protocol for good
                raise EmulatorError(f"Refused to send {command[:100]!r} to dynamips: line breaks and NUL characters "
                                    "are not allowed")
            log.debug("dynamips %s:%s <- %s", self.host, self.port, command)
            try:
                self._writer.write(command.encode("utf-8") + b"\n")
                await self._writer.drain()
                data = b""
                while not reply_complete(data):
                    try:
                        chunk = await asyncio.wait_for(self._reader.read(65536), timeout)
                    except TimeoutError as exc:
                        self._writer.close()
                        raise HypervisorTimeout(f"The dynamips hypervisor did not answer within {timeout:.0f} s: "
                                                f"{command}", command) from exc
                    if not chunk:
                        raise EmulatorError(
                            f"The dynamips hypervisor closed the connection while running: {command}")
                    data += chunk
            except OSError as exc:
                raise EmulatorError(f"Lost the connection to the dynamips hypervisor: {exc}") from exc
            log.debug("dynamips %s:%s -> %r", self.host, self.port, data)
            return parse_reply(data)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
        self._writer = None
        self._reader = None


def free_tcp_port(host: str) -> int:
    """A port the OS considers free right now (bind port 0), as the reference did for hypervisors."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Hypervisor:
    """A dynamips process started with `-H`, and the connection to it."""

    def __init__(self, path: str, working_dir: Path, host: str = "127.0.0.1") -> None:
        self.path = path
        self.working_dir = Path(working_dir)
        self.host = host
        self.number = next(_counter)
        self.port = 0
        self.version = ""
        self.uuid = ""
        self.process: ManagedProcess | None = None
        self.connection: HypervisorConnection | None = None
        self._stdout_path: str | None = None

    @property
    def connect_host(self) -> str:
        if self.host == "0.0.0.0":
            return "127.0.0.1"
        if self.host == "::":
            return "::1"
        return self.host

    async def start(self, on_exit=None) -> None:
        """Start the process, connect, check the version and set the working directory."""
        self.working_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_tcp_port(self.connect_host)
        bind = str(self.port) if self.host in ("0.0.0.0", "::") else f"{self.host}:{self.port}"
        fd, self._stdout_path = tempfile.mkstemp(prefix=f"dynamips_i{self.number}_", suffix=".stdout")
        os.close(fd)
        argv = [self.path, "-N1", "-l", f"dynamips_i{self.number}_log.txt", "-H", bind]
        self.process = ManagedProcess("Dynamips", argv, cwd=self.working_dir, log_path=self._stdout_path,
                                      on_exit=on_exit)
        await self.process.start()
        self.connection = HypervisorConnection(self.connect_host, self.port)
        try:
            await self.connection.connect(alive=lambda: self.process is not None and self.process.running)
            reply = await self.connection.send("hypervisor version")
            self.version = reply[0].split("-")[0] if reply else ""
            if parse_version(self.version) < MIN_VERSION:
                raise EmulatorError(f"Dynamips version must be >= 0.2.11, detected version is {self.version}")
            self.uuid = (await self.connection.send("hypervisor uuid"))[0]
            await self.connection.send(f"hypervisor working_dir {quote(str(self.working_dir))}")
        except EmulatorError as exc:
            output = self.output()
            await self.stop()
            raise EmulatorError(f"{exc.message}\n{output}".strip()) from exc
        log.info("Dynamips hypervisor %s (version %s) listening on %s:%s", self.number, self.version,
                 self.connect_host, self.port)

    def output_size(self) -> int:
        try:
            return os.path.getsize(self._stdout_path) if self._stdout_path else 0
        except OSError:
            return 0

    def output(self, since: int = 0) -> str:
        """What dynamips printed (from byte `since`): its own explanation of a failure is often only there."""
        if not self._stdout_path:
            return ""
        try:
            with open(self._stdout_path, "rb") as handle:
                handle.seek(since)
                return handle.read(8000).decode("utf-8", errors="replace").strip()
        except OSError:
            return ""

    async def send(self, command: str, timeout: float = REPLY_TIMEOUT) -> list[str]:
        if self.connection is None:
            raise EmulatorError("The dynamips hypervisor is not running")
        return await self.connection.send(command, timeout)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    async def stop(self) -> None:
        """`hypervisor stop`, close the socket, give it 3 s to exit, then kill; remove the stdout file. One that
        stopped answering (its connection was closed on a timeout) is killed at once."""
        process, self.process = self.process, None
        if process is not None:
            process.expect_exit()  # an exit we ask for is not a crash
        asked = False
        if self.connection is not None:
            if self.connection.connected and process is not None and process.running:
                try:
                    await self.connection.send("hypervisor stop", 3)
                    asked = True
                except EmulatorError:
                    pass
            await self.connection.close()
            self.connection = None
        if process is not None:
            if asked:
                try:
                    await asyncio.wait_for(asyncio.shield(process.wait()), 3)
                except TimeoutError:
                    pass
            await process.stop(sig=signal.SIGTERM if asked else signal.SIGKILL)
        if self._stdout_path:
            try:
                os.unlink(self._stdout_path)
            except OSError:
                pass
            self._stdout_path = None
