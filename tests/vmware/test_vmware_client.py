"""What the released GNS3 1.5.4 desktop client does with a VMware node, against a real gns3server process with the
VMware and VPCS plugins and the stand-in VMware: list the host's VMs, create a node, link it to a VPCS, capture
(with `data_link_type`), start (204, as the seed says), ping through the link, stop and delete. Like the client, every
request carries a JSON body, GETs and DELETEs included."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from standin_host import StandinVMware

from gns3core.testing import require
from gns3core.testing.server import ServerProcess, write_config
from gns3core.testing.telnet import strip_telnet

pytestmark = pytest.mark.timeout(180)


class GuiClient:
    """Requests as the 1.5.4 client sends them: a JSON body always (`{}` by default), Content-Type JSON."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        async with self.session.request(method, path, data=json.dumps(body or {}),
                                        headers={"Content-Type": "application/json"}) as response:
            raw = await response.read()
            assert response.headers.get("Content-Type", "application/json") == "application/json"
            return response.status, (json.loads(raw) if raw else None)


async def vpcs_ping(port: int, address: str, count: int = 3) -> int:
    """Ping from a VPCS node's console; how many answers came back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        seen = b""
        writer.write(b"\n")
        async with asyncio.timeout(10):
            while b"> " not in strip_telnet(seen):
                seen += await reader.read(4096)
        await asyncio.sleep(0.3)  # let the startup script finish before typing
        writer.write(f"ping {address} -c {count}\n".encode())
        seen = b""
        async with asyncio.timeout(30):
            while len(re.findall(rb"icmp_seq=\d+ (?:ttl|timeout)", seen)) < count and \
                    not re.search(rb"not reachable|host \(\S+\) not", seen):
                chunk = await reader.read(4096)
                if not chunk:
                    break
                seen += chunk
        return len(re.findall(rb"icmp_seq=\d+ ttl=", seen))
    finally:
        writer.close()


@pytest_asyncio.fixture
async def gui(standin: StandinVMware, tmp_path: Path) -> AsyncIterator[GuiClient]:
    installed = {ep.name for ep in importlib.metadata.entry_points(group="gns3server.plugins")}
    require({"vmware", "vpcs"} <= installed, "gns3-vmware and gns3-vpcs must be installed (scripts/python-packages.sh)")
    require(shutil.which("vpcs") is not None, "vpcs is not installed (apt-get install vpcs)")
    require(os.geteuid() == 0 and os.path.exists("/dev/net/tun"), "vmnet interfaces need root and /dev/net/tun")
    config = write_config(tmp_path / "gns3_server.conf", tmp_path / "server", VMware=standin.config_section(),
                          Server=standin.server_section())
    server = ServerProcess(config, plugins="vmware,vpcs", args=("--local", "--quiet"),
                           env={**os.environ, "HOME": str(standin.home), "TMPDIR": str(standin.temp_dir)},
                           log=tmp_path / "server.log").start()
    session = aiohttp.ClientSession(base_url=server.url)
    try:
        yield GuiClient(session)
    finally:
        await session.close()
        server.stop()


async def test_the_released_client_flow(gui: GuiClient, standin: StandinVMware) -> None:
    vmx = standin.make_vm("Debian", ips={0: "10.70.0.2"})
    status, version = await gui.call("GET", "/v1/version")
    assert status == 200 and version["version"] == "1.5.4"
    status, vms = await gui.call("GET", "/v1/vmware/vms")
    assert status == 200 and vms == [{"vmname": "Debian", "vmx_path": str(vmx)}]
    status, project = await gui.call("POST", "/v1/projects", {"name": "lab", "temporary": False})
    assert status == 201
    base = f"/v1/projects/{project['project_id']}"
    status, vm = await gui.call("POST", f"{base}/vmware/vms", {
        "name": "Debian-1", "vmx_path": vms[0]["vmx_path"], "linked_clone": True, "adapters": 1,
        "adapter_type": "e1000", "headless": True, "acpi_shutdown": False, "use_any_adapter": False,
        "enable_remote_console": False, "use_ubridge": True})
    assert status == 201, vm
    status, pc = await gui.call("POST", f"{base}/vpcs/vms", {"name": "PC1",
                                                             "startup_script": "ip 10.70.0.1 24\n"})
    assert status == 201, pc
    ports = []
    for _ in range(2):
        status, port = await gui.call("POST", f"{base}/ports/udp")
        assert status == 201
        ports.append(port["udp_port"])
    vm_url, pc_url = f"{base}/vmware/vms/{vm['vm_id']}", f"{base}/vpcs/vms/{pc['vm_id']}"
    for url, lport, rport in ((vm_url, ports[0], ports[1]), (pc_url, ports[1], ports[0])):
        nio = {"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1", "rport": rport}
        status, answer = await gui.call("POST", f"{url}/adapters/0/ports/0/nio", nio)
        assert status == 201 and answer == nio
    status, capture = await gui.call("POST", f"{vm_url}/adapters/0/ports/0/start_capture",
                                     {"capture_file_name": "Debian-1_Ethernet0_to_PC1_Ethernet0.pcap",
                                      "data_link_type": "DLT_EN10MB"})
    assert status == 200 and capture["pcap_file_path"].endswith(".pcap")
    assert (await gui.call("POST", f"{vm_url}/start"))[0] == 204
    assert (await gui.call("POST", f"{pc_url}/start"))[0] in (200, 204)
    assert await vpcs_ping(pc["console"], "10.70.0.2") >= 2
    assert (await gui.call("POST", f"{vm_url}/adapters/0/ports/0/stop_capture"))[0] == 204
    assert Path(capture["pcap_file_path"]).stat().st_size > 24
    assert (await gui.call("POST", f"{vm_url}/stop"))[0] == 204
    assert (await gui.call("POST", f"{pc_url}/stop"))[0] == 204
    assert (await gui.call("DELETE", f"{vm_url}/adapters/0/ports/0/nio"))[0] == 204
    assert (await gui.call("DELETE", vm_url))[0] == 204
    assert (await gui.call("DELETE", pc_url))[0] == 204
    assert (await gui.call("POST", f"{base}/close"))[0] == 204
    assert standin.running() == {}
    inventory = (standin.home / ".vmware" / "inventory.vmls").read_text()
    assert "Debian-1.vmx" not in inventory  # the clone left VMware's inventory with the node
