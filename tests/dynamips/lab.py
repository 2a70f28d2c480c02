"""Test helpers: real VPCS processes wired to switch ports over UDP, driven through their telnet console."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from gns3core.testing import require
from gns3core.testing.ports import free_tcp_port
from gns3core.testing.ports import free_vpcs_udp_port as free_udp_port
from gns3core.testing.vpcs import VPCSProcess


class VPC(VPCSProcess):
    """A VPCS with an address, to plug into a switch port (lport on its side, rport on the switch's side); keeps its
    console output for assertion messages. Planned first, started with launch(), so its link can be wired before."""

    def __init__(self, vpcs: str, tmp: Path, ip: str, mac_id: int) -> None:
        super().__init__(tmp / f"vpc-{mac_id}", free_tcp_port(), free_udp_port(), free_udp_port(), mac_id=mac_id,
                         startup=[f"ip {ip} 24"], program=vpcs)
        self.ip = ip
        self.log: list[str] = []

    def nio(self) -> dict:
        """The NIO of the switch port this VPC plugs into (the switch listens on rport, sends to lport)."""
        return {"type": "nio_udp", "lport": self.rport, "rhost": "127.0.0.1", "rport": self.lport}

    async def launch(self) -> VPC:
        self.start()
        await self.wait_console_async()
        return self

    async def command_async(self, line: str, timeout: float = 20.0) -> str:
        output = await super().command_async(line, timeout)
        self.log.append(output)
        return output

    async def ping(self, target: str, count: int = 3) -> int:
        """Number of echo replies received (0.5b2 prints `<ip> icmp_seq=N ttl=64 time=...`)."""
        text = await self.command_async(f"ping {target} -c {count}", timeout=10 + 3 * count)
        return len(re.findall(rf"{re.escape(target)} icmp_seq=\d+ ttl=\d+", text))


def require_program(name: str) -> str:
    """The program's path; skips when it is missing, except under CI where everything must be installed."""
    path = shutil.which(name)
    hint = "plugins/gns3-dynamips/install-dynamips.sh installs dynamips; apt-get install vpcs"
    require(path is not None, f"{name} is not installed ({hint})")
    return str(path)
