"""The engine's worker process: `python -m gns3_vpcs.engine.worker --control PATH`.

It connects to the server's control socket, then serves requests until that socket closes (the server stopped or
died: the worker ends too, and asks the kernel to kill it if the server dies first). All PCs share one event loop
that sleeps in epoll while nothing happens: no timers, no polling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import resource
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from gns3_vpcs.engine import packets, protocol
from gns3_vpcs.engine.console import Console, ConsoleError
from gns3_vpcs.engine.nic import LinkError, UdpLink, open_link
from gns3_vpcs.engine.pc import VirtualPC
from gns3_vpcs.engine.shell import SCRIPT_NAME, Shell

log = logging.getLogger("gns3_vpcs.engine")

PR_SET_PDEATHSIG = 1


class Worker:
    """The PCs of this process, and the control socket that creates and ends them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, control: socket.socket) -> None:
        self.loop = loop
        self.control = control
        self.pcs: dict[str, VirtualPC] = {}
        self.stop_requested = False  # the server asked us to end (else it died, or closed the socket dying)
        control.setblocking(False)
        loop.add_reader(control.fileno(), self._readable)
        self.send({"event": "ready", "pid": os.getpid()})

    # -- control socket ----------------------------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.control.send(protocol.encode(message))
        except BlockingIOError:
            self.control.setblocking(True)  # the server is behind: wait for it rather than lose a reply
            try:
                self.control.send(protocol.encode(message))
            finally:
                self.control.setblocking(False)
        except OSError:
            self.shutdown()

    def _readable(self) -> None:
        while True:
            try:
                data = self.control.recv(protocol.MESSAGE_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self.shutdown()
                return
            try:
                request = protocol.decode(data)
            except ValueError:
                log.error("unreadable control message: %r", data[:200])
                continue
            try:
                reply = self.handle(request)
            except Exception as exc:  # a bug must not take the other PCs down
                log.exception("request %s failed", request.get("op"))
                reply = {"error": f"internal error of the built-in VPCS engine: {exc}"}
            if "id" in request:
                reply["id"] = request["id"]
                self.send(reply)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "start":
            return self.start(request)
        if op == "stop":
            self.stop(str(request["pc"]))
            return {"ok": True}
        if op == "link":
            return self.relink(str(request["pc"]), request.get("link"))
        if op == "status":
            return self.status()
        if op == "shutdown":
            self.stop_requested = True
            self.shutdown()
            return {"ok": True}
        return {"error": f"unknown operation {op!r}"}

    def status(self) -> dict[str, Any]:
        """What the worker holds: PCs, timers scheduled right now (none while every PC idles), CPU and memory."""
        times = os.times()
        with open("/proc/self/statm", "rb") as handle:
            rss_pages = int(handle.read().split()[1])
        busy = sum(1 for pc in self.pcs.values() if pc.shell is not None and pc.shell.task is not None)
        return {"ok": True, "pid": os.getpid(), "pcs": len(self.pcs), "commands_running": busy,
                "timers": sum(1 for timer in getattr(self.loop, "_scheduled", ()) if not timer.cancelled()),
                "cpu_seconds": times.user + times.system,
                "rss_bytes": rss_pages * os.sysconf("SC_PAGE_SIZE")}

    # -- PCs -----------------------------------------------------------------------------------------------------------

    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        """Open the link and the console, then boot (banner, startup.vpc); the reply comes once the console listens."""
        pc_id = str(request["pc"])
        if pc_id in self.pcs:
            return {"ok": True}
        directory = Path(request["directory"])
        pc = VirtualPC(self.loop, pc_id, packets.mac_bytes(request["mac"]), directory)
        link = request.get("link")
        try:
            if link:
                pc.link = open_link(self.loop, link, pc.receive)
                pc.link_spec = link
            pc.console = Console(self.loop, request["console_host"], int(request["console"]), self._typed(pc))
        except (LinkError, ConsoleError) as exc:
            pc.close()
            return {"error": str(exc)}
        pc.shell = Shell(pc, pc.console.write, pc.console.disconnect, lambda: self._quit(pc))
        self.pcs[pc_id] = pc
        pc.shell.boot(run_script=(directory / SCRIPT_NAME).is_file())
        return {"ok": True}

    @staticmethod
    def _typed(pc: VirtualPC):
        def typed(text: str) -> None:
            if pc.shell is not None:
                pc.shell.feed(text)

        return typed

    def stop(self, pc_id: str) -> None:
        pc = self.pcs.pop(pc_id, None)
        if pc is not None:
            pc.close()

    def relink(self, pc_id: str, link: dict[str, Any] | None) -> dict[str, Any]:
        """A NIO added, replaced or removed while the PC runs: the new link takes over at once. The new one is
        opened before the old one closes, so a refused link leaves the PC as it was."""
        pc = self.pcs.get(pc_id)
        if pc is None:
            return {"ok": True}
        old = pc.link
        if link and isinstance(old, UdpLink) and link.get("kind") == "udp" and int(link["lport"]) == old.lport:
            old.retarget(str(link["rhost"]), int(link["rport"]))  # same local port: only the far end moves
            pc.link_spec = link
            return {"ok": True}
        new = None
        if link:
            try:
                new = open_link(self.loop, link, pc.receive)
            except LinkError as exc:
                return {"error": str(exc)}
        if old is not None:
            old.close()
        pc.link = new
        pc.link_spec = link or {}
        return {"ok": True}

    def _quit(self, pc: VirtualPC) -> None:
        """`quit` typed on a console: the PC ends as a vpcs would, and the server is told (return code 0)."""
        def finish() -> None:
            if self.pcs.get(pc.id) is pc:
                self.stop(pc.id)
                self.send({"event": "exited", "pc": pc.id, "code": 0, "output": "quit typed on the console\n"})

        self.loop.call_soon(finish)

    def shutdown(self) -> None:
        for pc_id in list(self.pcs):
            self.stop(pc_id)
        self.loop.stop()


def _die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the server process goes, so a killed server leaves no engine behind (the
    worker then removes the server's engine directory too, which nobody else will)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _orphaned_cleanup(control: str, parent: int) -> None:
    """The server died without stopping us: remove its engine directory (control socket, worker logs).

    A dying process closes its sockets before its children are handed to a new parent, so the control socket's end
    can come a moment before getppid() changes: wait for that (briefly) before deciding."""
    directory = Path(control).parent
    if not parent or not directory.name.startswith(protocol.DIRECTORY_PREFIX):
        return
    deadline = time.monotonic() + 2.0
    while os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(0.01)
    if os.getppid() != parent:
        shutil.rmtree(directory, ignore_errors=True)


def _more_descriptors() -> None:
    """Each PC holds a tunnel socket, a console listener and maybe a console client: raise the soft limit on open
    files to the hard one, so a thousand PCs fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gns3_vpcs.engine.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--control", required=True, help="path of the server's control socket")
    parser.add_argument("--parent", type=int, default=0, help="pid of the server (the worker ends if it is gone)")
    args = parser.parse_args(argv)
    _die_with_parent()
    _more_descriptors()
    if args.parent and os.getppid() != args.parent:
        return 1  # the server died before we could ask to follow it
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s vpcs-engine[%(process)d] %(message)s")
    control = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    control.connect(args.control)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = Worker(loop, control)
    loop.add_signal_handler(signal.SIGTERM, worker.shutdown)
    loop.add_signal_handler(signal.SIGINT, worker.shutdown)
    try:
        loop.run_forever()
    finally:
        for pc_id in list(worker.pcs):
            worker.stop(pc_id)
        control.close()
        if not worker.stop_requested:
            _orphaned_cleanup(args.control, args.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
