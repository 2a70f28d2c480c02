"""A virtual PC's network link: raw Ethernet frames over a UDP tunnel (vpcs `-s/-c/-t`) or a TAP device (`-e -d`).

Each link is one file descriptor watched by the event loop (no thread, no timer): a datagram arriving is handed to
the PC at once; a frame the kernel cannot take right now is dropped, as a busy wire would.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
_BURST = 64  # datagrams read per wake-up before other PCs get their turn
_MAX_FRAME = 65535

FrameHandler = Callable[[bytes], None]


class LinkError(Exception):
    """The link cannot be opened; the message says why, for the API client."""


class UdpLink:
    """A UDP tunnel: frames arrive on `lport` and leave for (rhost, rport)."""

    kind = "udp"

    def __init__(self, loop: asyncio.AbstractEventLoop, lport: int, rhost: str, rport: int,
                 on_frame: FrameHandler, laddr: str | None = None) -> None:
        """`laddr`: the address to bind ([Server] udp_host for the peer's family); all addresses when None."""
        family = socket.AF_INET6 if ":" in rhost else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((laddr or ("::" if family == socket.AF_INET6 else "0.0.0.0"), lport))
        except OSError as exc:
            sock.close()
            where = f" on {laddr}" if laddr else ""
            raise LinkError(f"cannot open UDP port {lport}{where}: {exc.strerror or exc}") from exc
        self.loop = loop
        self.sock = sock
        self.lport = lport
        self.rhost = rhost
        self.rport = rport
        self.remote: Any = (rhost, rport)
        self.on_frame = on_frame
        loop.add_reader(sock.fileno(), self._readable)

    def retarget(self, rhost: str, rport: int) -> None:
        """The far end of the tunnel moved (same address family)."""
        self.rhost, self.rport, self.remote = rhost, rport, (rhost, rport)

    def _readable(self) -> None:
        recv = self.sock.recv
        for _ in range(_BURST):
            try:
                frame = recv(_MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error from a peer that is not up yet: nothing to read
                continue
            self.on_frame(frame)

    def send(self, frame: bytes) -> None:
        try:
            self.sock.sendto(frame, self.remote)
        except OSError:
            pass  # the peer's port is closed or the queue is full: the frame is lost, as on a wire

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


class TapLink:
    """A TAP device opened through /dev/net/tun (created by the kernel if it does not exist yet)."""

    kind = "tap"

    def __init__(self, loop: asyncio.AbstractEventLoop, device: str, on_frame: FrameHandler) -> None:
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise LinkError(f"cannot open /dev/net/tun for TAP device {device}: {exc.strerror or exc}") from exc
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", device.encode()[:15], IFF_TAP | IFF_NO_PI))
        except OSError as exc:
            os.close(fd)
            raise LinkError(f"cannot attach to TAP device {device}: {exc.strerror or exc}") from exc
        self.loop = loop
        self.fd = fd
        self.device = device
        self.on_frame = on_frame
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        for _ in range(_BURST):
            try:
                frame = os.read(self.fd, _MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not frame:
                return
            self.on_frame(frame)

    def send(self, frame: bytes) -> None:
        try:
            os.write(self.fd, frame)
        except OSError:
            pass

    def close(self) -> None:
        self.loop.remove_reader(self.fd)
        os.close(self.fd)


def open_link(loop: asyncio.AbstractEventLoop, spec: dict[str, Any], on_frame: FrameHandler) -> UdpLink | TapLink:
    """The link a start or link message describes: {"kind": "udp", lport, rhost, rport[, laddr]} or
    {"kind": "tap", device}."""
    if spec.get("kind") == "tap":
        return TapLink(loop, str(spec["device"]), on_frame)
    return UdpLink(loop, int(spec["lport"]), str(spec["rhost"]), int(spec["rport"]), on_frame, spec.get("laddr"))
