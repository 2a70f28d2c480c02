"""A VPCS VM run by the built-in engine: the same API object, files and notifications as a VM run by vpcs.

Only the lifecycle differs from VPCSVM: start asks a worker to boot a virtual PC (it answers once the console
listens), stop asks it to end the PC, a NIO changed while running is re-linked at once, and a worker that dies is
reported for this VM the way a vpcs crash is.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import TYPE_CHECKING, Any

from gns3_vpcs.vm import VPCSVM
from gns3core.emulator import BaseVM
from gns3core.emulator.nio import NIO, NIOTAP, NIOUDP
from gns3core.errors import EmulatorError
from gns3core.tunnels import local_address

if TYPE_CHECKING:
    from gns3_vpcs.engine.supervisor import EngineWorker


class EngineVPCSVM(VPCSVM):
    """A VPCS VM whose PC lives in a worker of the built-in engine."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker: EngineWorker | None = None

    async def start(self) -> None:
        if self.running:
            return
        nio = self.nio
        if nio is None:
            raise EmulatorError("This VPCS instance must be connected in order to start")
        link = await link_spec(nio, self.server.udp_host)
        spec = {"mac": self.manager.mac_address(self.mac_id), "directory": str(self.vm_directory),
                "console_host": self.server.console_host, "console": self.console, "link": link}
        try:
            worker = await self.manager.engine.start_pc(self, spec)
        except EmulatorError as exc:
            hint = ""
            if "console TCP port" in exc.message and "in use" in exc.message:
                hint = f"\nAnother program holds TCP port {self.console}: give this VM another console port"
            raise EmulatorError(f"VPCS {self.name} could not start: {exc.message}{hint}") from None
        self.worker = worker
        self.command_line = describe(worker.pid, self.console, self.mac_id, link)
        self.set_started()

    async def stop(self) -> None:
        """Ends the PC (its console and tunnel ports are free when this returns); `vm.stopped` either way."""
        worker, self.worker = self.worker, None
        if worker is not None:
            await self.manager.engine.stop_pc(self, worker)
        self.set_stopped()

    def engine_exited(self, returncode: int, output: str) -> None:
        """The PC ended without a stop request: its worker died (a crash) or `quit` was typed (return code 0)."""
        if self.worker is None:
            return
        self.worker = None
        BaseVM.process_exited(self, returncode, output)

    def process_exited(self, returncode: int, output: str) -> None:
        self.engine_exited(returncode, output)

    # -- links while running -------------------------------------------------------------------------------------

    async def add_nio(self, adapter_number: int, port_number: int, nio: NIO) -> None:
        """A running PC takes a new link at once (vpcs itself would wait for the next start). A stopped one is
        about to be started: a worker is made ready in the background."""
        worker = self.worker
        if worker is None:
            self.manager.engine.warm_up()
        if self.running and worker is not None:
            await self.manager.engine.relink(self, worker, await link_spec(nio, self.server.udp_host))
        await super().add_nio(adapter_number, port_number, nio)

    async def remove_nio(self, adapter_number: int, port_number: int) -> NIO | None:
        self.check_port(adapter_number, port_number)
        worker = self.worker
        if self.running and worker is not None and self.nio is not None:
            await self.manager.engine.relink(self, worker, None)
        return await super().remove_nio(adapter_number, port_number)


async def link_spec(nio: NIO, udp_host: str | None = None) -> dict[str, Any]:
    """What the worker opens for a NIO: a UDP tunnel (remote host resolved here, IPv4 or IPv6, bound on `udp_host`
    for that family) or a TAP device."""
    if isinstance(nio, NIOTAP):
        return {"kind": "tap", "device": nio.tap_device}
    if not isinstance(nio, NIOUDP):
        raise EmulatorError(f"NIO of type {nio.type} is not supported")
    try:
        rhost = str(ipaddress.ip_address(nio.rhost))
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(nio.rhost, nio.rport, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise EmulatorError(f"Could not resolve the tunnel's rhost {nio.rhost}: {exc}") from exc
        rhost = str(infos[0][4][0])
    link: dict[str, Any] = {"kind": "udp", "lport": nio.lport, "rhost": rhost, "rport": nio.rport}
    if udp_host is not None:
        link["laddr"] = local_address(udp_host, socket.AF_INET6 if ":" in rhost else socket.AF_INET, "VPCS")
    return link


def describe(pid: int | None, console: int | None, mac_id: int, link: dict[str, Any]) -> str:
    """The `command_line` a 1.5.4 client shows: which engine process runs the PC, in vpcs's option words."""
    words = [f"built-in VPCS engine (worker pid {pid}):", "-p", str(console), "-m", str(mac_id), "-i", "1"]
    if link.get("kind") == "tap":
        words += ["-e", "-d", str(link["device"])]
    else:
        words += ["-s", str(link["lport"]), "-c", str(link["rport"]), "-t", str(link["rhost"])]
    return " ".join(words)
