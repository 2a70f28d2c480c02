"""Router start, idle-PC and config extraction, against hypervisor_standin.py (no IOS image can be had here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

STANDIN = Path(__file__).with_name("hypervisor_standin.py")


@pytest.fixture
def gns3_config_overrides(tmp_path: Path) -> dict:
    wrapper = tmp_path / "dynamips-standin"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" "$@"\n')
    wrapper.chmod(0o755)
    return {"Dynamips": {"dynamips_path": str(wrapper)}}


@pytest.fixture
async def router(api, project, gns3_config):
    images = Path(gns3_config.server.get("images_path")) / "IOS"
    images.mkdir(parents=True)
    (images / "c3725-standin.image").write_bytes(b"\x7fELF\x01\x02\x01" + b"\x00" * 64)
    pid = project["project_id"]
    reply = await api.post(f"/v1/projects/{pid}/dynamips/vms", {
        "name": "R1", "platform": "c3725", "image": "c3725-standin.image", "ram": 128,
        "startup_config_content": "hostname %h\r\ninterface f0/0\n", "private_config_content": "secret\n",
    })
    assert reply.status == 201, reply
    return f"/v1/projects/{pid}/dynamips/vms/{reply.json['vm_id']}", reply.json


async def test_start_stop_suspend_and_events(api, router, gns3_server) -> None:
    url, data = router
    vm = gns3_server.emulators["dynamips"].vms[data["vm_id"]]
    assert (await api.post(f"{url}/start")).status == 204
    assert vm.status == "started" and vm.dynamips_status == 2
    assert (await api.post(f"{url}/suspend")).status == 204
    assert await vm.get_status() == 3
    assert (await api.post(f"{url}/start")).status == 204  # start on suspended = resume
    assert await vm.get_status() == 2
    assert (await api.post(f"{url}/reload")).status == 204
    assert (await api.post(f"{url}/stop")).status == 204
    assert vm.status == "stopped" and await vm.get_status() == 0


async def test_configs_from_nvram_and_save(api, router) -> None:
    url, data = router
    reply = await api.get(f"{url}/configs")
    assert reply.json == {"startup_config_content": "!\nhostname R1\ninterface f0/0\n",
                          "private_config_content": "!\nsecret\n"}  # from the files: never started
    assert (await api.post(f"{url}/start")).status == 204
    reply = await api.get(f"{url}/configs")  # now from NVRAM through `vm extract_config`
    assert reply.json["startup_config_content"] == "!\nhostname R1\ninterface f0/0\n"
    reply = await api.post(f"{url}/configs/save")
    assert reply.status == 200
    path = Path(data["vm_directory"]) / "configs" / "i1_startup-config.cfg"
    assert path.read_text() == "!\nhostname R1\ninterface f0/0\n"


async def test_idlepc(api, router, gns3_server) -> None:
    url, _ = router
    reply = await api.get(f"{url}/idlepc_proposals")
    assert reply.status == 409
    assert (await api.post(f"{url}/start")).status == 204
    reply = await api.get(f"{url}/idlepc_proposals")
    assert reply.status == 200
    assert reply.json == ["0x60606060 [70]", "0x6080f6c4 [44]", "0x60bb2f10 [31]"]
    await api.post(f"{url}/stop")
    manager = gns3_server.emulators["dynamips"]
    manager.auto_idlepc_boot_wait, manager.auto_idlepc_sample_wait = 0.1, 1.0
    reply = await api.get(f"{url}/auto_idlepc")
    assert reply.status == 200, reply
    assert reply.json == {"idlepc": "0x6080f6c4"}  # the first proposal keeps the stand-in's CPU busy
    vm = next(iter(manager.vms.values()))
    assert await vm.get_status() == 0  # auto-started for the measurement, stopped again
    reply = await api.put(url, {"idlepc": "0x6080f6c4"})
    assert reply.status == 200 and reply.json["idlepc"] == "0x6080f6c4"
