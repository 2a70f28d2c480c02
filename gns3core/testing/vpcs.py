"""A real vpcs started directly (no server), so tests have a live peer at the far end of a UDP link.

vpcs forks the virtual PC into a session of its own; it survives its parent, so `stop` ends it by pid.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from gns3core.testing.telnet import strip_telnet

PROMPT = "> "  # "VPCS> " or "<pcname>> "
QUIET = 0.3  # seconds without output that tell vpcs waits for input


def _after_prompt(data: bytes, line: str) -> str | None:
    """What the console said after echoing `line` (everything for ""), once a prompt ended it; None before that."""
    text = strip_telnet(data).decode(errors="replace")
    _, echoed, after = text.partition(line) if line else ("", "", text)
    return after if (echoed or not line) and PROMPT in after else None


def _wait(data: bytes, sent: str, remaining: float) -> float | None:
    """How long to read on; None once `sent` got its answer. After the empty line, a prompt only counts once the
    console stays quiet: the startup script's own prompt may come first, and input typed meanwhile can be lost."""
    if _after_prompt(data, sent) is None:
        return max(0.01, remaining)
    return QUIET if not sent else None


class VPCSProcess:
    """One vpcs 0.5b2 on a UDP tunnel to 127.0.0.1; planned (work directory and startup.vpc) first, started later."""

    def __init__(self, workdir: Path | str, console: int, lport: int, rport: int, mac_id: int = 1,
                 startup: Sequence[str] = (), program: str = "vpcs") -> None:
        self.workdir = Path(workdir)
        self.console = console
        self.lport = lport  # vpcs listens here (and on lport+9)
        self.rport = rport  # and sends here
        self.mac_id = mac_id
        self.program = program
        self.process: subprocess.Popen | None = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "startup.vpc").write_text("".join(f"{line}\n" for line in startup))

    def start(self) -> None:
        """Spawn vpcs in the foreground (-F) in its own session, so a test's signals never reach it by accident."""
        argv = [self.program, "-p", str(self.console), "-m", str(self.mac_id), "-i", "1", "-F",
                "-s", str(self.lport), "-c", str(self.rport), "-t", "127.0.0.1", "startup.vpc"]
        self.process = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)

    def _console_open(self) -> bool:
        """True once the console accepts connections; fails (after stopping vpcs) when vpcs has exited."""
        assert self.process is not None, "start() first"
        try:
            with socket.create_connection(("127.0.0.1", self.console), 0.2):
                return True
        except OSError:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"vpcs exited ({self.process.returncode}) before opening its console") from None
            return False

    def _no_console(self) -> RuntimeError:
        self.stop()
        return RuntimeError(f"vpcs did not open its console on {self.console}")

    def wait_console(self, timeout: float = 10.0) -> None:
        """Block until the console listens (vpcs is useless before)."""
        deadline = time.monotonic() + timeout
        while not self._console_open():
            if time.monotonic() > deadline:
                raise self._no_console()
            time.sleep(0.05)

    async def wait_console_async(self, timeout: float = 10.0) -> None:
        """Like wait_console, without blocking an event loop that may forward this VPC's frames."""
        deadline = time.monotonic() + timeout
        while not self._console_open():
            if time.monotonic() > deadline:
                raise self._no_console()
            await asyncio.sleep(0.05)

    def command(self, line: str, timeout: float = 15.0) -> str:
        """Run one console command on a fresh connection; its output up to the next prompt."""
        deadline = time.monotonic() + timeout
        with socket.create_connection(("127.0.0.1", self.console), 5) as sock:
            for sent in ("", line):  # an empty line first: vpcs prompts on input only, once the startup script ran
                sock.sendall(sent.encode() + b"\n")
                data = b""
                while (wait := _wait(data, sent, deadline - time.monotonic())) is not None:
                    sock.settimeout(wait)
                    try:
                        chunk = sock.recv(4096)
                    except TimeoutError:
                        if _after_prompt(data, sent) is not None:
                            break  # quiet after the prompt
                        raise self._console_failed(sent, data) from None
                    if not chunk:
                        raise self._console_failed(sent, data)
                    data += chunk
        return _after_prompt(data, line) or ""

    async def command_async(self, line: str, timeout: float = 20.0) -> str:
        """command() for code running in an event loop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.console), 5)
        try:
            for sent in ("", line):
                writer.write(sent.encode() + b"\n")
                await writer.drain()
                data = b""
                while (wait := _wait(data, sent, deadline - loop.time())) is not None:
                    try:
                        chunk = await asyncio.wait_for(reader.read(4096), wait)
                    except TimeoutError:
                        if _after_prompt(data, sent) is not None:
                            break
                        raise self._console_failed(sent, data) from None
                    if not chunk:
                        raise self._console_failed(sent, data)
                    data += chunk
        finally:
            writer.close()
        return _after_prompt(data, line) or ""

    def _console_failed(self, sent: str, data: bytes) -> AssertionError:
        said = strip_telnet(data).decode(errors="replace")
        return AssertionError(f"vpcs console {self.console}: no prompt after {sent!r} (timeout or closed): {said!r}")

    def stop(self) -> None:
        """End the forked virtual PC and vpcs itself, and reap both: no orphan, no zombie. Safe to call twice."""
        if self.process is None or self.process.returncode is not None:
            return  # never started, or already reaped (its pid may belong to someone else by now)
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        psutil.wait_procs(children, timeout=3)
