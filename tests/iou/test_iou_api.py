"""Every IOU route and every 409 of the pre-start checks, in the spec's order, against the IOU stand-in image."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest
from gns3_iou import licence
from iou_helpers import create_iou, vm_url
from standin_image import build_image_needing_library, build_image_without_loader, build_standin_image

from gns3core.testing import require
from gns3core.testing.conformance import (
    CaptureSection,
    ConsoleSection,
    EmulatorConformance,
    LinkChangeSection,
    StartStopSection,
)


class TestIOUConformance(EmulatorConformance, StartStopSection, ConsoleSection, LinkChangeSection, CaptureSection):
    """The kit's generic tests and its optional sections, on the IOU stand-in image."""

    emulator = "iou"
    create_body = {"name": "conformance", "path": "iou-standin.bin"}
    update_body = {"name": "renamed", "ram": 512, "nvram": 256, "l1_keepalives": True}
    console_expect = b"Router#"

    @pytest.fixture(autouse=True)
    def _image(self, standin_image: str) -> None:
        assert standin_image == self.create_body["path"]


def images_dir(gns3_config) -> Path:
    folder = Path(gns3_config.server.get("images_path")) / "IOU"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def start_error(api, pid: str, vm: dict, body: dict | None = None) -> str:
    reply = await api.post(vm_url(pid, vm["vm_id"]) + "/start", body or {})
    assert reply.status == 409, reply
    assert (await api.get(vm_url(pid, vm["vm_id"]))).json["status"] == "stopped"
    return reply.json["message"]


async def test_create_defaults_and_configs(api, project):
    pid = project["project_id"]
    vm = await create_iou(api, pid, "i86bi.bin", name="Edge 1", startup_config_content="hostname %h\n",
                          private_config_content="secret\n", startup_config="/client/side/file.cfg")
    assert (vm["path"], vm["md5sum"], vm["command_line"], vm["status"]) == ("i86bi.bin", None, "", "stopped")
    assert (vm["ethernet_adapters"], vm["serial_adapters"], vm["ram"], vm["nvram"]) == (2, 2, 256, 128)
    assert vm["l1_keepalives"] is False and vm["use_default_iou_values"] is True
    assert (vm["startup_config"], vm["private_config"]) == ("startup-config.cfg", "private-config.cfg")
    directory = Path(vm["vm_directory"])
    assert (directory / "startup-config.cfg").read_text() == "hostname Edge 1\n"
    configs = (await api.get(vm_url(pid, vm["vm_id"]) + "/configs")).json
    assert configs == {"startup_config_content": "hostname Edge 1\n", "private_config_content": "secret\n"}
    # Empty never erases; a create with the known id does not replace what is there (a reopened project).
    reply = await api.put(vm_url(pid, vm["vm_id"]), {"startup_config_content": "", "private_config_content": None})
    assert reply.status == 200
    again = await api.post(f"/v1/projects/{pid}/iou/vms", {"name": "Edge 1", "path": "i86bi.bin",
                                                            "vm_id": vm["vm_id"], "startup_config_content": "new"})
    assert again.status == 201 and again.json["vm_id"] == vm["vm_id"]
    assert (directory / "startup-config.cfg").read_text() == "hostname Edge 1\n"
    reply = await api.put(vm_url(pid, vm["vm_id"]), {"startup_config_content": "hostname changed\n"})
    assert (directory / "startup-config.cfg").read_text() == "hostname changed\n"
    assert (await api.post(vm_url(pid, vm["vm_id"]) + "/configs/save")).status == 200


async def test_adapters_ports_and_nio_types(api, project):
    pid = project["project_id"]
    vm = await create_iou(api, pid, "i86bi.bin", name="R1")
    url = vm_url(pid, vm["vm_id"])
    udp = {"type": "nio_udp", "lport": 28500, "rhost": "127.0.0.1", "rport": 28501}
    assert (await api.post(url + "/adapters/3/ports/3/nio", udp)).status == 201  # bays 0-3: 2 Ethernet, 2 serial
    reply = await api.post(url + "/adapters/4/ports/0/nio", udp)
    assert reply.status == 409 and reply.json["message"] == 'Adapter 4 does not exist for IOU "R1"'
    reply = await api.post(url + "/adapters/0/ports/4/nio", udp)
    assert reply.status == 409 and reply.json["message"] == "Port 4 does not exist in adapter 0"
    assert (await api.post(url + "/adapters/0/ports/1/nio", {"type": "nio_tap", "tap_device": "tap-iou0"})).status \
        == 201
    reply = await api.post(url + "/adapters/0/ports/2/nio", {"type": "nio_generic_ethernet", "ethernet_device": "lo"})
    assert reply.status == 201
    reply = await api.post(url + "/adapters/0/ports/3/nio", {"type": "nio_generic_ethernet",
                                                             "ethernet_device": "gns3-absent0"})
    assert reply.status == 409 and "does not exist or is down" in reply.json["message"]
    assert (await api.delete(url + "/adapters/1/ports/0/nio")).status == 204  # a port without NIO is fine
    reply = await api.put(url, {"ethernet_adapters": 4, "serial_adapters": 0})
    assert reply.status == 200 and (reply.json["ethernet_adapters"], reply.json["serial_adapters"]) == (4, 0)
    reply = await api.put(url, {"serial_adapters": 13})
    assert reply.status == 409 and "cannot have more than 16 adapters" in reply.json["message"]
    assert (await api.put(url, {"serial_adapters": 17})).status == 400


async def test_capture_rules(api, project):
    pid = project["project_id"]
    vm = await create_iou(api, pid, "i86bi.bin")
    url = vm_url(pid, vm["vm_id"]) + "/adapters/0/ports/0"
    body = {"capture_file_name": "x.pcap", "data_link_type": "DLT_EN10MB"}
    for action, payload in (("start_capture", body), ("stop_capture", {})):
        reply = await api.post(f"{url}/{action}", payload)
        assert reply.status == 409 and reply.json["message"] == "Cannot capture traffic on a non started VM"
    reply = await api.post(url + "/start_capture", {"capture_file_name": "x.pcap", "data_link_type": "x" * 300})
    assert reply.status == 400
    reply = await api.post(url + "/start_capture", {"capture_file_name": "../x.pcap"})
    assert reply.status == 403


async def test_capture_while_running(api, project, standin_image):
    pid = project["project_id"]
    vm = await create_iou(api, pid, standin_image)
    url = vm_url(pid, vm["vm_id"])
    await api.post(url + "/start", {})
    body = {"capture_file_name": "y.pcap"}  # a seed-era client may leave data_link_type out
    reply = await api.post(url + "/adapters/0/ports/0/start_capture", body)
    assert reply.status == 409 and "has no link to capture" in reply.json["message"]
    lport = (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
    await api.post(url + "/adapters/0/ports/0/nio", {"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1",
                                                     "rport": lport + 1})
    assert (await api.post(url + "/adapters/0/ports/0/start_capture", body)).status == 200
    reply = await api.post(url + "/adapters/0/ports/0/start_capture", body)
    assert reply.status == 409 and reply.json["message"] == "Packet capture is already activated on 0/0"
    assert (await api.post(url + "/stop")).status == 204


async def test_start_answers_the_object_and_builds_the_command_line(api, project, standin_image, gns3_server,
                                                                   gns3_config):
    pid = project["project_id"]
    vm = await create_iou(api, pid, standin_image, ethernet_adapters=3, serial_adapters=1,
                          use_default_iou_values=False, ram=384, nvram=64, l1_keepalives=True)
    url = vm_url(pid, vm["vm_id"])
    reply = await api.post(url + "/start", {"iourc_content": None, "something_else": "the start body is open"})
    assert reply.status == 200, reply
    appid = gns3_server.emulators["iou"].vms[vm["vm_id"]].application_id
    image = images_dir(gns3_config) / standin_image
    assert reply.json["command_line"] == f"{image} -e 3 -s 1 -n 64 -m 384 -L -l {appid}"
    assert (await api.get(url)).json["command_line"] == reply.json["command_line"]
    netmap = (Path(vm["vm_directory"]) / "NETMAP").read_text().splitlines()
    assert netmap[0] == f"{appid + 512}:0/0{appid:>5}:0/0" and len(netmap) == 64
    log = (Path(vm["vm_directory"]) / "iou.log").read_text()
    assert "'-e', '3', '-s', '1', '-n', '64', '-m', '384', '-L', '-l'" in log
    assert (await api.post(url + "/start", {})).status == 200  # already running: nothing happens
    assert (await api.post(url + "/reload")).status == 204
    assert (await api.get(url)).json["status"] == "started"
    assert (await api.post(url + "/stop")).status == 204
    assert (await api.post(url + "/stop")).status == 204
    reply = await api.post(url + "/start", {"iourc_content": "x" * (1024 * 1024 + 1)})
    assert reply.status == 400


async def test_image_checks_in_order(api, project, gns3_config, tmp_path, standin_image_file):
    pid = project["project_id"]
    folder = images_dir(gns3_config)
    vm = await create_iou(api, pid, "")
    assert "No IOU image is set" in await start_error(api, pid, vm)
    await api.put(vm_url(pid, vm["vm_id"]), {"path": "absent.bin"})
    assert "does not exist" in await start_error(api, pid, vm)
    (folder / "text.bin").write_text("not a program")
    (folder / "text.bin").chmod(0o644)  # fails two checks: the first in the spec's order is reported
    await api.put(vm_url(pid, vm["vm_id"]), {"path": "text.bin"})
    assert "is not a valid IOU image: it must be a 32-bit little-endian ELF" in await start_error(api, pid, vm)
    shutil.copy(shutil.which("true"), folder / "elf64.bin")  # a 64-bit program
    await api.put(vm_url(pid, vm["vm_id"]), {"path": "elf64.bin"})
    assert "is not a valid IOU image" in await start_error(api, pid, vm)
    shutil.copy(standin_image_file, folder / "noexec.bin")
    (folder / "noexec.bin").chmod(0o644)
    await api.put(vm_url(pid, vm["vm_id"]), {"path": "noexec.bin"})
    assert "is not executable" in await start_error(api, pid, vm)
    require(os.path.exists("/lib/ld-linux.so.2"), "ldd needs the 32-bit loader to inspect IOU images "
                                                  "(apt-get install libc6-i386)")
    build_image_needing_library(folder / "needs-lib.bin")
    await api.put(vm_url(pid, vm["vm_id"]), {"path": "needs-lib.bin"})
    message = await start_error(api, pid, vm)
    assert "needs shared libraries that are not installed: libiou-standin-missing.so.1" in message
    build_image_without_loader(folder / "no-loader.bin")
    await api.put(vm_url(pid, vm["vm_id"]), {"path": "no-loader.bin"})
    assert "32-bit binary support is probably not installed" in await start_error(api, pid, vm)


@pytest.fixture
def no_home_iourc(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.mark.parametrize("iou_config", [{"iourc_path": ""}])
async def test_licence_checks(api, project, standin_image, no_home_iourc, iou_config, tmp_path):
    pid = project["project_id"]
    vm = await create_iou(api, pid, standin_image)
    assert (await api.get(vm_url(pid, vm["vm_id"]))).json["iourc_path"] is None
    assert "Could not find an iourc file (IOU license)" in await start_error(api, pid, vm)
    host = licence.host_name()
    key = licence.licence_key(host, licence.host_id())
    cases = [
        ("[license]\nsome-other-host = 0123456789abcdef;\n", f'Hostname "{host}" not found in iourc file'),
        (f"[license]\n{host} = {key}\n", "IOU key not ending with ; in iourc file"),
        (f"[license]\n{host} = {key[:10]};\n", "IOU key length is not 16 characters in iourc file"),
        (f"[license]\n{host} = 0123456789abcdef;\n", "Invalid IOU license key 0123456789abcdef detected in "
                                                     "iourc file"),
    ]
    for text, message in cases:
        assert message in await start_error(api, pid, vm, {"iourc_content": text})
    # The iourc in the VM directory comes before iourc_content.
    (Path(vm["vm_directory"]) / "iourc").write_text(cases[0][0])
    reply = await api.post(vm_url(pid, vm["vm_id"]) + "/start", {"iourc_content": licence.iourc_text(host, key)})
    assert reply.status == 409 and "not found in iourc file" in reply.json["message"]
    assert reply.json["message"].endswith(str(Path(vm["vm_directory"]) / "iourc"))
    (Path(vm["vm_directory"]) / "iourc").unlink()
    reply = await api.post(vm_url(pid, vm["vm_id"]) + "/start", {"iourc_content": licence.iourc_text(host, key)})
    assert reply.status == 200, reply
    assert reply.json["iourc_path"].endswith("/iourc")
    await api.post(vm_url(pid, vm["vm_id"]) + "/stop")


@pytest.mark.parametrize("iou_config", [{"license_check": "false", "iourc_path": ""}])
async def test_licence_check_off_leaves_it_to_the_image(api, project, standin_image, no_home_iourc, iou_config):
    """With the check off the server starts the image; the stand-in, like IOU, refuses a wrong key itself."""
    pid = project["project_id"]
    vm = await create_iou(api, pid, standin_image)
    bad = f"[license]\n{licence.host_name()} = 0123456789abcdef;\n"
    message = await start_error(api, pid, vm, {"iourc_content": bad})
    assert "IOU License Error: invalid license key" in message and "return code: 1" in message


async def test_l1_keepalives_need_the_image_to_offer_them(api, project, gns3_config):
    require(shutil.which("as") is not None, "binutils is not installed")
    build_standin_image(images_dir(gns3_config) / "no-l1.bin", profile="no-l1")
    pid = project["project_id"]
    vm = await create_iou(api, pid, "no-l1.bin", l1_keepalives=True)
    message = await start_error(api, pid, vm)
    assert message.startswith("layer 1 keepalive messages are not supported by ") and "no-l1.bin" in message
    await api.put(vm_url(pid, vm["vm_id"]), {"l1_keepalives": False})
    assert (await api.post(vm_url(pid, vm["vm_id"]) + "/start", {})).status == 200
    assert (await api.post(vm_url(pid, vm["vm_id"]) + "/stop")).status == 204


async def test_image_paths_stay_in_the_images_directory(api, project, gns3_config):
    pid = project["project_id"]
    for path in ("/bin/sh", "../../etc/passwd", "C:\\iou.bin"):
        reply = await api.post(f"/v1/projects/{pid}/iou/vms", {"name": "R", "path": path})
        assert reply.status == 409, (path, reply)
        assert "is not allowed" in reply.json["message"] and "Please use only a filename in" in reply.json["message"]
    inside = images_dir(gns3_config) / "inside.bin"
    inside.write_bytes(b"\x7fELF")
    vm = await create_iou(api, pid, str(inside))
    assert vm["path"] == "inside.bin" and vm["md5sum"] == hashlib.md5(b"\x7fELF").hexdigest()
    # A path outside the IOU folder whose file is in the IOU folder beside it means that file (as IOU servers did).
    vm = await create_iou(api, pid, str(inside.parent.parent / "inside.bin"))
    assert vm["path"] == "inside.bin"


@pytest.mark.parametrize("gns3_config_overrides", [{"Server": {"local": "true"}}])
async def test_a_local_server_takes_absolute_image_paths(api, project, tmp_path, standin_image_file,
                                                         gns3_config_overrides):
    elsewhere = tmp_path / "my-images" / "i86bi.bin"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(standin_image_file.read_bytes())
    vm = await create_iou(api, project["project_id"], str(elsewhere))
    assert vm["path"] == str(elsewhere)


async def test_upload_and_list_images(api, gns3_config):
    data = os.urandom(300_000)
    async with api.client.post("/v1/iou/vms/i86bi-linux-l3.bin", data=data) as response:
        assert response.status == 204
    target = images_dir(gns3_config) / "i86bi-linux-l3.bin"
    assert target.read_bytes() == data
    assert stat.S_IMODE(target.stat().st_mode) == 0o700  # IOU images are programs: the one executable upload
    assert (target.parent / "i86bi-linux-l3.bin.md5sum").read_text() == hashlib.md5(data).hexdigest()
    (target.parent / "sub").mkdir()
    (target.parent / "sub" / "old.bin").write_bytes(b"x")
    (target.parent / ".hidden").write_bytes(b"x")
    listing = (await api.get("/v1/iou/vms")).json
    assert listing == [{"filename": "i86bi-linux-l3.bin", "path": "i86bi-linux-l3.bin"},
                       {"filename": "old.bin", "path": "sub/old.bin"}]
    async with api.client.post("/v1/iou/vms/.sneaky", data=b"x") as response:
        assert response.status == 403
    async with api.client.post("/v1/iou/vms/..%2F..%2Fescape", data=b"x") as response:
        assert response.status in (403, 404)
    assert not (target.parent.parent.parent / "escape").exists()


async def test_application_ids_are_unique_across_projects(api, gns3_server):
    manager = gns3_server.emulators["iou"]
    projects = [(await api.post("/v1/projects", {"name": f"p{n}"})).json["project_id"] for n in range(3)]
    vms = [await create_iou(api, pid, "i86bi.bin", name=f"R{n}") for pid in projects for n in range(3)]
    ids = [manager.vms[vm["vm_id"]].application_id for vm in vms]
    assert len(set(ids)) == 9 and all(1 <= i <= 511 for i in ids)
    closed = {manager.vms[vm["vm_id"]].application_id for vm in vms[:3]}
    assert (await api.post(f"/v1/projects/{projects[0]}/close")).status == 204
    again = await create_iou(api, projects[1], "i86bi.bin", name="R9")
    assert manager.vms[again["vm_id"]].application_id in closed  # freed ids are used again, lowest first
    manager.application_ids.update(range(1, 512))
    reply = await api.post(f"/v1/projects/{projects[1]}/iou/vms", {"name": "full", "path": "i86bi.bin"})
    assert reply.status == 409
    assert reply.json["message"] == "Cannot create a new IOU VM (limit of 512 VMs reached on this host)"
