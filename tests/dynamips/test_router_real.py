"""Routers against the real dynamips hypervisor: everything up to the point an IOS image is needed."""

from __future__ import annotations

from pathlib import Path

import pytest

PLATFORM_CASES = [
    ("c1700", "1751", {"slot0": "C1700-MB-1FE", "slot1": "C1700-MB-WIC1", "wic0": None, "wic1": None}),
    ("c2600", "2621XM", {"slot0": "C2600-MB-2FE", "slot1": None, "wic2": None}),
    ("c2691", None, {"slot0": "GT96100-FE", "slot1": None, "wic0": None}),
    ("c3600", "3660", {"slot0": "Leopard-2FE", "slot6": None}),
    ("c3725", None, {"slot0": "GT96100-FE", "slot2": None}),
    ("c3745", None, {"slot0": "GT96100-FE", "slot4": None}),
    ("c7200", None, {"slot0": "C7200-IO-FE", "slot6": None, "npe": "npe-400", "midplane": "vxr"}),
]


@pytest.fixture(autouse=True)
def _dynamips(dynamips_path):
    return dynamips_path


async def create(api, pid: str, **body):
    return await api.post(f"/v1/projects/{pid}/dynamips/vms", {"name": "R1", "image": "c-test.image", **body})


@pytest.mark.parametrize(("platform", "chassis", "expected"), PLATFORM_CASES)
async def test_every_platform(api, project, platform, chassis, expected) -> None:
    pid = project["project_id"]
    body = {"platform": platform, "ram": 128}
    if chassis:
        body["chassis"] = chassis
    reply = await create(api, pid, **body)
    assert reply.status == 201, reply
    router = reply.json
    for key, value in expected.items():
        assert router[key] == value, key
    assert router["dynamips_id"] == 1 and router["mac_addr"].count(".") == 2
    if chassis:
        assert router["chassis"] == chassis
    url = f"/v1/projects/{pid}/dynamips/vms/{router['vm_id']}"
    assert (await api.delete(url)).status == 204


async def test_adapters_wics_nios_and_errors(api, project, gns3_server) -> None:
    pid = project["project_id"]
    reply = await create(api, pid, platform="c3745", ram=128, slot1="NM-4T", wic0="WIC-2T", idlepc="0x60606060",
                         startup_config_content="hostname %h\n", exec_area=32, mac_addr="c401.1111.0000")
    assert reply.status == 201, reply
    router = reply.json
    assert (router["slot1"], router["wic0"], router["idlepc"]) == ("NM-4T", "WIC-2T", "0x60606060")
    assert router["mac_addr"] == "c401.1111.0000" and router["exec_area"] == 32
    assert router["startup_config"] == "configs/i1_startup-config.cfg"
    config = Path(router["vm_directory"]) / router["startup_config"]
    assert config.read_text() == "!\nhostname R1\n"
    url = f"/v1/projects/{pid}/dynamips/vms/{router['vm_id']}"

    # NIOs on a network module port and on a WIC port (slot 0, ports 16/17)
    for adapter, port in ((1, 3), (0, 17), (0, 1)):
        lport = (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
        nio = {"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1", "rport": lport + 1000}
        reply = await api.post(f"{url}/adapters/{adapter}/ports/{port}/nio", nio)
        assert reply.status == 201, reply
    reply = await api.post(f"{url}/adapters/1/ports/4/nio", {"type": "nio_null"})
    assert reply.status == 409 and "Port 4 doesn't exist" in reply.json["message"]
    reply = await api.post(f"{url}/adapters/0/ports/0/nio", {"type": "nio_vmnet", "vmnet": "vmnet1"})
    assert reply.status == 409 and reply.json["message"] == "NIO of type nio_vmnet is not supported"
    reply = await api.post(f"{url}/adapters/0/ports/17/start_capture",
                           {"capture_file_name": "serial.pcap", "data_link_type": "DLT_PPP_SERIAL"})
    assert reply.status == 200
    assert (await api.post(f"{url}/adapters/0/ports/17/stop_capture")).status == 204
    assert (await api.delete(f"{url}/adapters/0/ports/17/nio")).status == 204

    # the real hypervisor refuses what dynamips refuses (e.g. a PA in a c3745): its text comes back as a 409
    reply = await api.put(url, {"slot2": "PA-FE-TX"})
    assert reply.status == 409 and "slot 2" in reply.json["message"]
    reply = await api.put(url, {"slot7": "NM-1E"})
    assert reply.status == 400  # no such key in the schema
    reply = await api.put(url, {"slot2": "NM-16ESW", "wic1": "WIC-1T", "name": "R9", "ram": 256, "slot1": None})
    assert reply.status == 409 and "has links" in reply.json["message"]
    reply = await api.delete(f"{url}/adapters/1/ports/3/nio")
    assert reply.status == 204
    reply = await api.put(url, {"slot2": "NM-16ESW", "wic1": "WIC-1T", "name": "R9", "ram": 256, "slot1": None})
    assert reply.status == 200, reply
    assert (reply.json["slot1"], reply.json["slot2"], reply.json["wic1"], reply.json["ram"]) == (
        None, "NM-16ESW", "WIC-1T", 256)
    assert config.read_text() == "!\nhostname R9\n"
    reply = await create(api, pid, platform="c3745", ram=128, dynamips_id=1, name="R2")
    assert reply.status == 409 and reply.json["message"] == "Dynamips identifier 1 is already used by another router"
    reply = await create(api, pid, platform="c7200", ram=128, chassis="7206", name="R3")
    assert reply.status == 409 and reply.json["message"] == "c7200 routers do not have chassis"
    reply = await create(api, pid, platform="c9999", ram=128, name="R4")
    assert reply.status == 409 and reply.json["message"] == "Unknown router platform: c9999"
    assert (await api.delete(url)).status == 204
    assert not gns3_server.emulators["dynamips"].vms


@pytest.fixture
def gns3_config_overrides() -> dict:
    # With ghost IOS on, dynamips boots the ghost RAM image it made from the fake file and reports success;
    # without it, dynamips loads the image itself and refuses the fake one, which is what this module checks.
    return {"Dynamips": {"ghost_ios_support": "false"}}


async def test_start_without_image(api, project, gns3_config) -> None:
    pid = project["project_id"]
    reply = await create(api, pid, platform="c3725", ram=128)
    url = f"/v1/projects/{pid}/dynamips/vms/{reply.json['vm_id']}"
    reply = await api.post(f"{url}/start")
    assert reply.status == 409 and reply.json["message"] == 'IOS image "c-test.image" is not accessible'

    # A file that looks like an IOS image (32-bit big-endian ELF header) but is not one: dynamips itself refuses.
    upload = await api.post("/v1/dynamips/vms/fake.image", raw=b"\x7fELF\x01\x02\x01" + b"\x00" * 9)
    assert upload.status == 204
    assert (await api.get("/v1/dynamips/vms")).json == [{"filename": "fake.image", "path": "fake.image"}]
    images = Path(gns3_config.server.get("images_path")) / "IOS"
    assert (images / "fake.image.md5sum").read_text() == reply_md5(images / "fake.image")
    reply = await api.put(url, {"image": "fake.image"})
    assert reply.status == 200 and reply.json["image"] == "fake.image"
    assert reply.json["image_md5sum"] == reply_md5(images / "fake.image")
    reply = await api.post(f"{url}/start")
    assert reply.status == 409
    assert "unable to start VM instance 'R1'" in reply.json["message"]  # the hypervisor's reply
    assert "failed to load Cisco IOS image" in reply.json["message"]  # and what dynamips printed about it
    assert (await api.post(f"{url}/stop")).status == 204
    reply = await api.get(f"{url}/idlepc_proposals")
    assert reply.status == 409 and reply.json["message"] == 'Router "R1" is not running'
    reply = await api.get(f"{url}/configs")
    assert reply.status == 200 and reply.json == {"startup_config_content": None, "private_config_content": None}

    (images / "notios.bin").write_bytes(b"hello")
    assert (await api.get("/v1/dynamips/vms")).json == [{"filename": "fake.image", "path": "fake.image"}]
    reply = await api.put(url, {"image": "notios.bin"})
    reply = await api.post(f"{url}/start")
    assert reply.status == 409 and reply.json["message"].endswith("is not a valid IOS image")
    reply = await api.post("/v1/dynamips/vms/..", raw=b"x")
    assert reply.status in (403, 404)


def reply_md5(path: Path) -> str:
    import hashlib

    return hashlib.md5(path.read_bytes()).hexdigest()


async def test_project_close_cleans_up(api, gns3_server) -> None:
    pid = (await api.post("/v1/projects", {"name": "closing"})).json["project_id"]
    reply = await create(api, pid, platform="c7200", ram=256)
    router = gns3_server.emulators["dynamips"].vms[reply.json["vm_id"]]
    process = router.hypervisor.process
    directory = Path(reply.json["vm_directory"])
    assert (await api.post(f"/v1/projects/{pid}/close")).status == 204
    assert not process.running
    assert not list(directory.glob("c7200_i1_log.txt")) and not list(directory.glob("ilt_*"))
