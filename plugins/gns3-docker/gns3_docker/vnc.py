"""The vnc console: an X virtual framebuffer (Xvfb) for the container's graphical programs and a VNC server
(x11vnc) showing it on the console port. Both run on the server, for as long as the container exists; the container
gets `DISPLAY` and the display's socket.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
from pathlib import Path

from gns3core.emulator.process import ManagedProcess
from gns3core.errors import Conflict, EmulatorError

log = logging.getLogger(__name__)

X11_SOCKETS = Path("/tmp/.X11-unix")
FIRST_DISPLAY = 100
LAST_DISPLAY = 999
READY_TIMEOUT = 15.0
MISSING_TOOLS = "Please install Xvfb and x11vnc before using the VNC support"


def vnc_programs() -> tuple[str, str]:
    """The paths of Xvfb and x11vnc; 409 naming the Debian packages when either is missing."""
    xvfb, x11vnc = shutil.which("Xvfb"), shutil.which("x11vnc")
    if xvfb is None or x11vnc is None:
        raise Conflict(f"{MISSING_TOOLS} (Debian: apt-get install -y xvfb x11vnc)")
    return xvfb, x11vnc


def display_is_free(number: int) -> bool:
    return not (X11_SOCKETS / f"X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists()


def pick_display(taken: set[int]) -> int:
    """The first display number from 100 on that no X server uses and this server has not handed out."""
    for number in range(FIRST_DISPLAY, LAST_DISPLAY + 1):
        if number not in taken and display_is_free(number):
            return number
    raise Conflict(f"No free X display between :{FIRST_DISPLAY} and :{LAST_DISPLAY}")


def _listening(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        return False


class VNCDisplay:
    """Xvfb on display `:number` with a `resolution`x16 screen, x11vnc serving it on `host:port` (shared, no
    password, for any number of successive viewers)."""

    def __init__(self, number: int, resolution: str, host: str, port: int, workdir: Path) -> None:
        self.number = number
        self.resolution = resolution
        self.host = host
        self.port = port
        self.workdir = workdir
        self._xvfb: ManagedProcess | None = None
        self._vnc: ManagedProcess | None = None

    @property
    def socket_path(self) -> Path:
        return X11_SOCKETS / f"X{self.number}"

    async def start(self) -> None:
        """Both programs up and answering, or neither running and 409 with what they said."""
        xvfb, x11vnc = vnc_programs()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._xvfb = ManagedProcess("Xvfb", [xvfb, f":{self.number}", "-nolisten", "tcp", "-screen", "0",
                                             f"{self.resolution}x16"],
                                    cwd=self.workdir, log_path=self.workdir / "xvfb.log")
        self._vnc = ManagedProcess("x11vnc", [x11vnc, "-display", f":{self.number}", "-rfbport", str(self.port),
                                              "-listen", self.host, "-forever", "-shared", "-nopw", "-quiet"],
                                   cwd=self.workdir, log_path=self.workdir / "x11vnc.log")
        try:
            await self._xvfb.start()
            await self._wait(self._xvfb, lambda: self.socket_path.exists(), "Xvfb")
            await self._vnc.start()
            await self._wait(self._vnc, lambda: _listening(self.host, self.port), "x11vnc")
        except BaseException:
            await self.stop()
            raise

    @staticmethod
    async def _wait(process: ManagedProcess, ready, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while not await asyncio.to_thread(ready):
            if not process.running:
                raise EmulatorError(f"{what} exited at once: {process.last_output().strip()[-1000:]}")
            if loop.time() > deadline:
                raise EmulatorError(f"{what} did not get ready within {READY_TIMEOUT:.0f} s: "
                                    f"{process.last_output().strip()[-1000:]}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for process in (self._vnc, self._xvfb):
            if process is not None:
                await process.stop()
        self._vnc = self._xvfb = None
