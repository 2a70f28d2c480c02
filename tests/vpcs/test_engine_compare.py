"""The built-in engine's console, line by line against the real vpcs 0.5b2, for the same command sequence.

A real vpcs and a built-in PC are linked to each other; each runs the same commands (written with {me} and {peer}
for the addresses) and what each console prints is compared line by line. Only what is not deterministic is
masked: round-trip times, ARP seconds left, and the addresses, MACs and ports that differ between the two PCs.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from gns3_vpcs.console_probe import ConsoleProbe

from gns3core.testing.client import ApiClient
from gns3core.testing.ports import free_tcp_port, free_vpcs_udp_port
from gns3core.testing.telnet import strip_telnet
from gns3core.testing.vpcs import VPCSProcess

pytestmark = [pytest.mark.usefixtures("vpcs_binary"), pytest.mark.timeout(300)]

REAL_IP, ENGINE_IP = "10.0.0.1", "10.0.0.2"

# (command, seconds it may take). Order matters: the state each command leaves is what the next one sees.
SEQUENCE: list[tuple[str, float]] = [
    ("", 5), ("help", 5), ("?", 5), ("version", 5), ("show ?", 5), ("ip ?", 5), ("ping ?", 5), ("trace ?", 5),
    ("set", 5), ("clear", 5), ("save ?", 5), ("load ?", 5), ("sleep ?", 5), ("arp ?", 5), ("dhcp ?", 5),
    ("show ip ?", 5), ("help ?", 5), ("set echo ?", 5), ("ip mtu ?", 5), ("ip dns ?", 5), ("show ipv6 ?", 5),
    ("show dump ?", 5), ("set dump ?", 5), ("ping", 5), ("ip", 5),
    ("show", 5), ("show ip", 5), ("show ip all", 5), ("show arp", 5), ("show arp all", 5), ("show echo", 5),
    ("show dump", 5), ("show ipv6", 5), ("show version", 5), ("show foo", 5), ("show ip 2", 5),
    ("ip foo", 5), ("ip 0.0.0.0", 5), ("ip {me} {me}", 5), ("ip {me} 24 extra junk", 5),
    ("ip 10.0.0.5 10.0.1.1 24", 5), ("ip {me} 24", 10), ("ip mtu 100", 5), ("ip mtu 1400", 5),
    ("ip dns 8.8.8.8", 5), ("show ip", 5), ("ip dns 0", 5), ("ip {me} 10.0.0.254 24", 10), ("show", 5),
    ("set pcname Alpha", 5), ("set pcname", 5), ("set foo", 5), ("set echo on", 5), ("show echo", 5),
    ("set echo off", 5), ("echo hello  world", 5), ("echo", 5), ("foo", 5), ("s", 5), ("h", 5), ("d", 5),
    ("r", 5), ("t", 5), ("ping {peer} -c 2", 10), ("ping {me} -c 2", 5), ("ping 10.0.0.99 -c 1", 10),
    ("ping 10.1.0.1 -c 1", 10), ("ping {peer} -2 -c 1", 10), ("ping {peer} -3 -c 1", 10), ("trace {peer}", 10),
    ("arp", 5), ("show arp", 5), ("show arp 1", 5), ("show arp 3", 5), ("show ip 0", 5), ("sh ip", 5),
    ("ping {peer} -c 1 -l 100", 10), ("ping {peer} -c 1 -T 5", 10), ("trace {peer} -P 1", 10),
    ("trace {peer} 3", 10), ("trace {peer} -m", 5), ("trace {peer} -P 9", 5), ("ping nosuchhost", 5),
    ("set pcname ABCDEFGHIJKLMNOPQRSTUVWXYZ", 5), ("set pcname Alpha", 5), ("clear ipv6", 5),
    ("clear arp", 5), ("arp", 5), ("ip {me}/24", 10), ("ip {me} /25 10.0.0.126", 10), ("show", 5),
    ("ip {me} 24", 10), ("save", 5), ("save ../x", 5), ("save x y", 5), ("load nofile", 5), ("load /etc/passwd", 5),
    ("load", 10), ("sleep 1", 5), ("sleep 1 waiting here", 5), ("clear foo", 5), ("clear ip", 5), ("show ip", 5),
    ("history", 5), ("clear hist", 5), ("history", 5),
]  # not `disconnect`: vpcs's console server prints Good-bye racing its PC's prompt (the session test checks it)


class RawConsole:
    """Reads a console as bytes (telnet negotiation removed, CR kept) until its prompt and then silence."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawConsole:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def run(self, line: str | None, timeout: float) -> bytes:
        if line is not None:
            self.writer.write(line.encode() + b"\n")
            await self.writer.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        data = b""
        while True:
            prompted = re.search(rb"\n\r[^\r\n]*> $", data) is not None or b"Good-bye" in data
            try:
                chunk = await asyncio.wait_for(self.reader.read(4096), 0.4 if prompted else deadline - loop.time())
            except TimeoutError:
                if prompted:
                    return data
                raise AssertionError(f"no prompt after {line!r}: {data!r}") from None
            if not chunk:
                return data
            data += strip_telnet(chunk)

    async def close(self) -> None:
        self.writer.close()


def normalize(output: bytes, me: dict[str, Any], peer: dict[str, Any]) -> list[str]:
    """The output as lines, with what legitimately differs between the two PCs masked."""
    text = output.decode("latin-1")
    for key in ("mac", "ip"):
        for side, name in ((me, "my"), (peer, "peer")):
            text = re.sub(rf"(?<![\d.]){re.escape(side[key])}(?!\d)", f"<{name} {key}>", text)
    text = text.replace(me["link_local"], "<my link-local>")
    text = re.sub(r"\d+\.\d{3} ms", "<t> ms", text)
    text = re.sub(r"expires in \d+ seconds", "expires in <n> seconds", text)
    for port in (me["lport"], me["rport"]):
        text = re.sub(rf"\b{port}\b", "<port>", text)
    text = re.sub(r"\bMTU:        : 0\b", "MTU:        : 0", text)
    return text.split("\n")


async def listening(real: VPCSProcess, timeout: float = 10.0) -> None:
    """Wait until vpcs listens, asking the kernel: a test connection would take the banner meant for the test."""
    probe = ConsoleProbe()
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while not probe.listens(real.console, real.process.pid):  # type: ignore[union-attr]
            assert asyncio.get_running_loop().time() < deadline, "vpcs did not open its console"
            await asyncio.sleep(0.05)
    finally:
        probe.close()


@pytest.fixture
def vpcs_backend() -> str:
    return "builtin"


@pytest.fixture
def gns3_config_overrides(gns3_config_overrides: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """GNS3's MAC addresses, like the standalone vpcs it is compared with (the default base is the server's own)."""
    return {**gns3_config_overrides, "Server": {**gns3_config_overrides["Server"], "mac_base": "gns3"}}


async def test_same_output_as_vpcs(api: ApiClient, project: dict[str, Any], tmp_path: Path, vpcs_binary: str) -> None:
    real_port, engine_port = free_vpcs_udp_port(), free_vpcs_udp_port()
    real = VPCSProcess(tmp_path / "real", free_tcp_port(), real_port, engine_port, mac_id=1, program=vpcs_binary)
    pid = project["project_id"]
    vm = (await api.post(f"/v1/projects/{pid}/vpcs/vms", {"name": "PC", "startup_script": ""})).json
    url = f"/v1/projects/{pid}/vpcs/vms/{vm['vm_id']}"
    nio = {"type": "nio_udp", "lport": engine_port, "rhost": "127.0.0.1", "rport": real_port}
    assert (await api.post(f"{url}/adapters/0/ports/0/nio", nio)).status == 201
    sides = {
        "real": {"ip": REAL_IP, "mac": "00:50:79:66:68:01", "link_local": "fe80::250:79ff:fe66:6801",
                 "lport": real_port, "rport": engine_port},
        "engine": {"ip": ENGINE_IP, "mac": "00:50:79:66:68:00", "link_local": "fe80::250:79ff:fe66:6800",
                   "lport": engine_port, "rport": real_port},
    }
    real.start()
    try:
        await listening(real)
        assert (await api.post(f"{url}/start")).status == 200
        consoles = {"real": await RawConsole.open(real.console), "engine": await RawConsole.open(vm["console"])}
        try:
            for command, timeout in SEQUENCE:

                async def run(side: str, command: str = command, timeout: float = timeout) -> list[str]:
                    me, other = sides[side], sides["engine" if side == "real" else "real"]
                    line = command.format(me=me["ip"], peer=other["ip"]) if command else None
                    return normalize(await consoles[side].run(line, timeout), me, other)

                real_lines, engine_lines = await asyncio.gather(run("real"), run("engine"))
                assert engine_lines == real_lines, f"after {command!r}"
        finally:
            for console in consoles.values():
                await console.close()
    finally:
        real.stop()
