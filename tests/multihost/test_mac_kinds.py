"""Each kind that hands out MAC addresses draws them from the server's base: Qemu's default MAC, Dynamips routers'
chassis address (checked against the real dynamips), and GNS3's own addresses when `mac_base = gns3`."""

from __future__ import annotations

import shutil

import pytest

from gns3core.testing import require


async def qemu_vm(api, project, name: str) -> dict:
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 is not installed")
    reply = await api.post(f"/v1/projects/{project['project_id']}/qemu/vms",
                           {"name": name, "qemu_path": "qemu-system-x86_64"})
    assert reply.status == 201, reply
    return reply.json


async def test_qemu_default_macs_come_from_the_server_base(api, project, gns3_server) -> None:
    base = str(gns3_server.mac_base)
    first, second = await qemu_vm(api, project, "vm1"), await qemu_vm(api, project, "vm2")
    for vm in (first, second):
        assert vm["mac_address"].startswith(f"{base}:") and vm["mac_address"].endswith(":00")
        assert 0x10 <= int(vm["mac_address"].split(":")[3], 16) <= 0xFF
    assert first["mac_address"] != second["mac_address"]
    url = f"/v1/projects/{project['project_id']}/qemu/vms/{first['vm_id']}"
    reply = await api.put(url, {"mac_address": "0e:00:00:00:00:01"})
    assert reply.json["mac_address"] == "0e:00:00:00:00:01"  # a client's own choice is kept
    reply = await api.put(url, {"mac_address": None})
    assert reply.json["mac_address"] == first["mac_address"]  # back to the default, stable for the VM id


async def test_dynamips_router_gets_the_server_chassis_address(api, project, gns3_server) -> None:
    require(shutil.which("dynamips") is not None, "dynamips is not installed (plugins/gns3-dynamips)")
    reply = await api.post(f"/v1/projects/{project['project_id']}/dynamips/vms",
                           {"name": "R1", "platform": "c7200", "image": "c7200-test.image", "ram": 128})
    assert reply.status == 201, reply
    router = reply.json
    expected = gns3_server.mac_base.dynamips(router["dynamips_id"])
    assert router["mac_addr"] == expected  # read back from dynamips after the server set it
    assert expected.replace(".", "")[:6] == str(gns3_server.mac_base).replace(":", "")


class TestGNS3Addresses:
    @pytest.fixture
    def gns3_config_overrides(self) -> dict[str, dict[str, str]]:
        return {"Server": {"mac_base": "gns3"}}

    async def test_gns3_addresses_on_request(self, api, project, gns3_server, tmp_path) -> None:
        vm = await qemu_vm(api, project, "vm1")
        vm_id = vm["vm_id"]
        assert vm["mac_address"] == f"00:00:ab:{vm_id[-4:-2]}:{vm_id[-2:]}:00"
        assert gns3_server.emulators["vpcs"].mac_address(3) == "00:50:79:66:68:03"
        assert not (tmp_path / "projects" / ".gns3server-id").exists()  # no identity needed for GNS3's addresses

    async def test_invalid_base_is_a_409_with_the_fix(self, api, project, gns3_server) -> None:
        gns3_server.config.set("Server", "mac_base", "01:02:03")
        reply = await api.post(f"/v1/projects/{project['project_id']}/qemu/vms",
                               {"name": "vm1", "qemu_path": "qemu-system-x86_64"})
        assert reply.status == 409 and "multicast" in reply.json["message"]
