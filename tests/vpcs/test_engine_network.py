"""Built-in PCs on real networks: against a real vpcs on a UDP tunnel (both ways, every ping mode, trace, duplicate
addresses), and through an Ethernet switch (the real dynamips, and the Dynamips plugin's built-in switch)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import gns3_dynamips.plugin
import gns3_vpcs.plugin
import pytest
from vpcs_helpers import Console

from gns3core.testing import require
from gns3core.testing.client import ApiClient
from gns3core.testing.ports import free_tcp_port, free_vpcs_udp_port
from gns3core.testing.vpcs import VPCSProcess

pytestmark = pytest.mark.timeout(240)

REPLY = r"{ip} icmp_seq=\d+ ttl=64 time=\d+\.\d+ ms"


@pytest.fixture
def vpcs_backend() -> str:
    return "builtin"


async def builtin_pc(api: ApiClient, project: dict[str, Any], name: str, lport: int, rport: int,
                     script: str) -> tuple[str, dict[str, Any]]:
    """A started built-in PC on a tunnel lport -> rport; (url, vm)."""
    pid = project["project_id"]
    vm = (await api.post(f"/v1/projects/{pid}/vpcs/vms", {"name": name, "startup_script": script})).json
    url = f"/v1/projects/{pid}/vpcs/vms/{vm['vm_id']}"
    nio = {"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1", "rport": rport}
    assert (await api.post(f"{url}/adapters/0/ports/0/nio", nio)).status == 201
    assert (await api.post(f"{url}/start")).status == 200
    return url, vm


async def booted(port: int, name: str = "VPCS") -> Console:
    """A console once the startup script has run (its prompt shows)."""
    console = await Console.open(port)
    await console.read_until(re.compile(rf"{re.escape(name)}> $".encode()), 15)
    return console


class TestWithRealVpcs:
    async def test_ping_both_ways_in_every_mode(self, api: ApiClient, project: dict[str, Any], tmp_path: Path,
                                                vpcs_binary: str) -> None:
        real_port, engine_port = free_vpcs_udp_port(), free_vpcs_udp_port()
        real = VPCSProcess(tmp_path / "real", free_tcp_port(), real_port, engine_port, mac_id=1,
                           startup=["set pcname real", "ip 10.0.0.1 24"], program=vpcs_binary)
        real.start()
        try:
            await real.wait_console_async()
            _, vm = await builtin_pc(api, project, "engine", engine_port, real_port, "ip 10.0.0.2 24\n")
            console = await booted(vm["console"])
            try:
                # the built-in PC pings the real vpcs
                output = await console.command("ping 10.0.0.1 -c 3")
                assert len(re.findall(REPLY.format(ip=r"10\.0\.0\.1"), output)) >= 2, output
                output = await console.command("ping 10.0.0.1 -2 -c 2")
                assert len(re.findall(r"10\.0\.0\.1 udp_seq=\d+ ttl=64 time=", output)) >= 1, output
                output = await console.command("ping 10.0.0.1 -3 -c 1")
                for step in ("Connect", "SendData", "Close"):
                    assert re.search(rf"{step} +7@10\.0\.0\.1 seq=1 ttl=64 time=", output), output
                output = await console.command("trace 10.0.0.1")
                assert "*10.0.0.1" in output and "Destination port unreachable" in output, output
                # and the real vpcs pings the built-in PC
                output = await real.command_async("ping 10.0.0.2 -c 3")
                assert len(re.findall(REPLY.format(ip=r"10\.0\.0\.2"), output)) >= 2, output
                output = await real.command_async("ping 10.0.0.2 -2 -c 2")
                assert len(re.findall(r"10\.0\.0\.2 udp_seq=\d+ ttl=64 time=", output)) >= 1, output
                output = await real.command_async("ping 10.0.0.2 -3 -c 1")
                for step in ("Connect", "SendData", "Close"):
                    assert re.search(rf"{step} +7@10\.0\.0\.2 seq=1 ttl=64 time=", output), output
                output = await real.command_async("trace 10.0.0.2")
                assert "*10.0.0.2" in output and "Destination port unreachable" in output, output
                arp = await console.command("arp")
                assert re.search(r"00:50:79:66:68:01  10\.0\.0\.1 expires in \d+ seconds", arp), arp
            finally:
                await console.close()
        finally:
            real.stop()

    async def test_duplicate_address_is_refused_both_ways(self, api: ApiClient, project: dict[str, Any],
                                                          tmp_path: Path, vpcs_binary: str, gns3_server) -> None:
        real_port, engine_port = free_vpcs_udp_port(), free_vpcs_udp_port()
        real = VPCSProcess(tmp_path / "real", free_tcp_port(), real_port, engine_port, mac_id=1,
                           startup=["ip 10.0.0.1 24"], program=vpcs_binary)
        real.start()
        try:
            await real.wait_console_async()
            _, vm = await builtin_pc(api, project, "engine", engine_port, real_port, "ip 10.0.0.2 24\n")
            console = await booted(vm["console"])
            try:
                said_by_real = await real.command_async("ip 10.0.0.2 24")
                engine_mac = gns3_server.mac_base.vpcs(0)  # the server's own MAC base ([Server] mac_base)
                assert f"10.0.0.2 is being used by MAC {engine_mac}\nAddress not changed" in \
                    said_by_real.replace("\r", ""), said_by_real
                assert "PC1 : 10.0.0.1" in await real.command_async("ip 10.0.0.1 24")
                said_by_engine = await console.command("ip 10.0.0.1 24")
                assert "10.0.0.1 is being used by MAC 00:50:79:66:68:01\nAddress not changed" in said_by_engine
                assert "IP/MASK     : 0.0.0.0/0" in await console.command("show ip")
            finally:
                await console.close()
        finally:
            real.stop()


class TestThroughASwitch:
    @pytest.fixture(params=["builtin", "dynamips"])
    def switch_backend(self, request: pytest.FixtureRequest) -> str:
        if request.param == "dynamips":
            require(__import__("shutil").which("dynamips") is not None,
                    "dynamips is not installed (plugins/gns3-dynamips/install-dynamips.sh)")
        return request.param

    @pytest.fixture
    def gns3_plugins(self) -> list[Any]:
        return [gns3_vpcs.plugin, gns3_dynamips.plugin]

    @pytest.fixture
    def gns3_config_overrides(self, gns3_config_overrides: dict[str, dict[str, str]],
                              switch_backend: str) -> dict[str, dict[str, str]]:
        return {**gns3_config_overrides, "Dynamips": {"switch_backend": switch_backend}}

    async def test_vlans_of_built_in_pcs(self, api: ApiClient, project: dict[str, Any]) -> None:
        pid = project["project_id"]
        reply = await api.post(f"/v1/projects/{pid}/dynamips/devices", {"name": "SW", "device_type": "ethernet_switch"})
        assert reply.status == 201, reply
        switch = f"/v1/projects/{pid}/dynamips/devices/{reply.json['device_id']}"
        consoles = []
        try:
            for number, (address, vlan) in enumerate((("10.0.10.1", 10), ("10.0.10.2", 10), ("10.0.10.3", 20)), 1):
                pc_port, switch_port = [(await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
                                        for _ in range(2)]
                body = {"nio": {"type": "nio_udp", "lport": switch_port, "rhost": "127.0.0.1", "rport": pc_port},
                        "port_settings": {"type": "access", "vlan": vlan, "ethertype": ""}}
                assert (await api.post(f"{switch}/ports/{number}/nio", body)).status == 201
                _, vm = await builtin_pc(api, project, f"PC{number}", pc_port, switch_port, f"ip {address} 24\n")
                consoles.append(vm["console"])
            consoles = [await booted(port) for port in consoles]
            output = await consoles[0].command("ping 10.0.10.2 -c 3")
            assert len(re.findall(REPLY.format(ip=r"10\.0\.10\.2"), output)) >= 2, output
            output = await consoles[0].command("ping 10.0.10.3 -c 1")  # another VLAN: ARP never answered
            assert "host (10.0.10.3) not reachable" in output, output
        finally:
            for console in consoles:
                if isinstance(console, Console):
                    await console.close()
