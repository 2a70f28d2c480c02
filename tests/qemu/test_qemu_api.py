"""Qemu VM fields, binaries and disk-image creation through the API (qemu installed, no guest booted)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from gns3_qemu import kvm

from gns3core.files import md5_of_file

pytestmark = pytest.mark.usefixtures("qemu_binary")


def vms(project: dict) -> str:
    return f"/v1/projects/{project['project_id']}/qemu/vms"


async def create(api, project, **fields):
    return await api.post(vms(project), {"name": "vm1", "qemu_path": "qemu-system-x86_64", **fields})


async def test_defaults(api, project, gns3_server) -> None:
    reply = await create(api, project)
    assert reply.status == 201, reply
    vm = reply.json
    vm_id = vm["vm_id"]
    assert vm["qemu_path"] == "/usr/bin/qemu-system-x86_64" and vm["platform"] == "x86_64"
    # From the server's own MAC base ([Server] mac_base, docs/multi-host.md); GNS3's 00:00:ab:... only on request.
    assert vm["mac_address"] == gns3_server.mac_base.qemu(vm_id) and vm["mac_address"].endswith(":00")
    assert vm["mac_address"].startswith(f"{gns3_server.mac_base}:")
    assert (vm["ram"], vm["cpus"], vm["adapters"], vm["adapter_type"]) == (256, 1, 1, "e1000")
    assert (vm["console_type"], vm["boot_priority"], vm["process_priority"]) == ("telnet", "c", "low")
    assert vm["hda_disk_image"] == "" and vm["hda_disk_image_md5sum"] is None
    assert vm["hdb_disk_interface"] == "ide" and vm["legacy_networking"] is False
    assert vm["vm_directory"].endswith(f"project-files/qemu/{vm_id}")


async def test_platform_fallback_and_binary_errors(api, project) -> None:
    reply = await api.post(vms(project), {"name": "p", "platform": "i386"})
    assert reply.status == 201 and reply.json["qemu_path"].endswith("qemu-system-i386")
    reply = await api.post(vms(project), {"name": "p", "qemu_path": "qemu-system-nope", "platform": "x86_64"})
    assert reply.status == 201 and reply.json["platform"] == "x86_64"
    reply = await api.post(vms(project), {"name": "p", "qemu_path": "qemu-system-nope"})
    assert reply.status == 409 and "is not found in the path" in reply.json["message"]
    reply = await api.post(vms(project), {"name": "p"})
    assert reply.status == 400 and "qemu_path" in reply.json["message"] and "platform" in reply.json["message"]
    reply = await api.post(vms(project), {"name": "p", "platform": None})
    assert reply.status == 400


async def test_update_fields(api, project) -> None:
    vm = (await create(api, project, adapters=2)).json
    url = f"{vms(project)}/{vm['vm_id']}"
    nio = {"type": "nio_udp", "lport": 20001, "rhost": "127.0.0.1", "rport": 20002}
    assert (await api.post(f"{url}/adapters/1/ports/0/nio", nio)).status == 201
    reply = await api.put(url, {"mac_address": "00:11:22:33:44:55", "adapters": 3, "options": "  -rtc base=utc ",
                                "kernel_command_line": None, "console_type": "vnc", "platform": "i386"})
    assert reply.status == 200, reply
    assert reply.json["mac_address"] == "00:11:22:33:44:55" and reply.json["options"] == "-rtc base=utc"
    assert reply.json["adapters"] == 3 and reply.json["kernel_command_line"] == ""
    assert 5900 <= reply.json["console"] <= 6000 and reply.json["platform"] == "i386"
    vm_obj = (await api.get(url)).json
    assert vm_obj == reply.json
    reply = await api.put(url, {"mac_address": None})
    assert reply.json["mac_address"] == vm["mac_address"]
    reply = await api.put(url, {"console": 5000})
    assert reply.status == 409 and "5900" in reply.json["message"]
    # Released 1.5.x widened the update to every boot order the 1.5.4 client offers (the seed took c and d only, a
    # 400 that crashed the client: §15 #5, the release wins).
    for order in ("n", "cn", "cd", "d", "c"):
        reply = await api.put(url, {"boot_priority": order})
        assert reply.status == 200 and reply.json["boot_priority"] == order
    assert (await api.put(url, {"boot_priority": "x"})).status == 400


async def test_nio_rules(api, project, gns3_server) -> None:
    vm = (await create(api, project)).json
    url = f"{vms(project)}/{vm['vm_id']}"
    reply = await api.post(f"{url}/adapters/4/ports/0/nio", {"type": "nio_nat"})
    assert reply.status == 409 and reply.json["message"] == 'Adapter 4 does not exist on QEMU VM "vm1"'
    for nio in ({"type": "nio_nat"}, {"type": "nio_tap", "tap_device": "tap0"}):
        reply = await api.post(f"{url}/adapters/0/ports/7/nio", nio)  # the port number is ignored
        assert reply.status == 201 and reply.json == nio
    assert (await api.delete(f"{url}/adapters/0/ports/0/nio")).status == 204
    assert (await api.delete(f"{url}/adapters/0/ports/0/nio")).status == 204
    reply = await api.post(f"{url}/adapters/0/ports/0/nio", {"type": "nio_generic_ethernet", "ethernet_device": "lo"})
    assert reply.status == 409


async def test_image_paths_stay_inside(api, project, images_dir: Path, tmp_path: Path) -> None:
    (images_dir / "sub").mkdir()
    disk = images_dir / "sub" / "disk.img"
    disk.write_bytes(b"x" * 4096)
    (tmp_path / "images" / "old.img").write_bytes(b"y")  # pre-1.3 layout: images/<file>
    reply = await create(api, project, hda_disk_image="sub/disk.img", hdb_disk_image="old.img",
                         cdrom_image=str(disk))
    assert reply.status == 201, reply
    assert reply.json["hda_disk_image"] == "sub/disk.img"
    assert reply.json["hda_disk_image_md5sum"] == md5_of_file(disk)
    assert reply.json["hdb_disk_image"] == str(tmp_path / "images" / "old.img")
    assert reply.json["cdrom_image"] == "sub/disk.img"
    assert (images_dir / "sub" / "disk.img.md5sum").read_text() == md5_of_file(disk)
    url = f"{vms(project)}/{reply.json['vm_id']}"
    reply = await api.put(url, {"hda_disk_image": "../../../../etc/passwd"})
    assert reply.status == 403
    reply = await api.put(url, {"hda_disk_image": "/etc/passwd"})
    assert reply.status == 409 and "is not allowed on this remote server" in reply.json["message"]
    reply = await api.put(url, {"hdc_disk_image": "C:\\disk.img"})
    assert reply.status == 409
    os.symlink("/etc/passwd", images_dir / "escape.img")
    reply = await api.put(url, {"hda_disk_image": "escape.img"})
    assert reply.status == 403
    reply = await api.put(url, {"hda_disk_image": "missing.img", "hdc_disk_image": "sub/disk.img"})
    assert reply.status == 200 and reply.json["hda_disk_image_md5sum"] is None
    reply = await api.post(f"{url}/start")
    assert reply.status == 409 and "CDROM" in reply.json["message"]
    await api.put(url, {"cdrom_image": ""})
    reply = await api.post(f"{url}/start")
    assert reply.status == 409 and "hda disk image" in reply.json["message"] and "not accessible" in reply.json[
        "message"]


async def test_cpu_throttling_without_cpulimit_is_a_clear_409(api, project, tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("qemu-system-x86_64", "qemu-img", "nice"):
        os.symlink(subprocess.run(["which", program], capture_output=True, text=True).stdout.strip(),
                   bin_dir / program)
    monkeypatch.setenv("PATH", str(bin_dir))
    vm = (await create(api, project, cpu_throttling=50)).json
    reply = await api.post(f"{vms(project)}/{vm['vm_id']}/start")
    assert reply.status == 409 and "cpulimit could not be found" in reply.json["message"]


async def test_binaries(api) -> None:
    reply = await api.get("/v1/qemu/binaries")
    assert reply.status == 200
    paths = {item["path"]: item["version"] for item in reply.json}
    assert any(p.endswith("/qemu-system-x86_64") for p in paths)
    assert all(v.count(".") >= 1 for v in paths.values())
    reply = await api.get("/v1/qemu/img-binaries")
    assert reply.status == 200 and reply.json and reply.json[0]["path"].endswith("qemu-img")


async def test_create_disk_image(api, images_dir: Path, tmp_path: Path) -> None:
    body = {"qemu_img": "qemu-img", "path": "nested/../hda.qcow2", "format": "qcow2", "size": 32,
            "preallocation": "metadata", "cluster_size": 65536, "lazy_refcounts": "off", "refcount_bits": 16}
    reply = await api.post("/v1/qemu/img", body)
    assert reply.status == 201 and reply.body == b""
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(images_dir / "hda.qcow2")],
                                     capture_output=True, check=True).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == 32 * 1024 * 1024
    assert info["cluster-size"] == 65536
    reply = await api.post("/v1/qemu/img", body)
    assert reply.status == 409 and "already exist" in reply.json["message"]
    reply = await api.post("/v1/qemu/img", {**body, "path": str(tmp_path / "abs.qcow2")})
    assert reply.status == 403 and "--local" in reply.json["message"]  # absolute paths: local servers only
    reply = await api.post("/v1/qemu/img", {**body, "qemu_img": "/bin/sh", "path": "x.qcow2"})
    assert reply.status == 409 and not (images_dir / "x.qcow2").exists()
    reply = await api.post("/v1/qemu/img", {**body, "format": "bogus"})
    assert reply.status == 400


class TestLocalServer:
    @pytest.fixture
    def gns3_config_overrides(self):
        return {"Server": {"local": "true"}, "Qemu": {"monitor": "false"}}

    async def test_absolute_img_path_anywhere(self, api, tmp_path: Path) -> None:
        """A local server takes absolute paths where the user wants them (api-core §1.8)."""
        body = {"qemu_img": "qemu-img", "format": "raw", "size": 1}
        reply = await api.post("/v1/qemu/img", {**body, "path": str(tmp_path / "images" / "abs.raw")})
        assert reply.status == 201
        assert (tmp_path / "images" / "abs.raw").stat().st_size == 1024 * 1024
        reply = await api.post("/v1/qemu/img", {**body, "path": str(tmp_path / "elsewhere" / "abs.raw")})
        assert reply.status == 201 and (tmp_path / "elsewhere" / "abs.raw").is_file()

    async def test_without_monitor_suspend_is_refused(self, api, project) -> None:
        vm = (await create(api, project, ram=32)).json
        url = f"{vms(project)}/{vm['vm_id']}"
        assert (await api.post(f"{url}/start")).status == 200
        reply = await api.post(f"{url}/suspend")
        assert reply.status == 409 and reply.json["message"] == "Suspending a QEMU VM is not supported"
        assert (await api.post(f"{url}/stop")).status == 204


async def test_kvm_only_when_it_works_and_never_no_kvm(api, project) -> None:
    vm = (await create(api, project, ram=32, options="-no-kvm -enable-kvm")).json
    url = f"{vms(project)}/{vm['vm_id']}"
    assert (await api.post(f"{url}/start")).status == 200
    try:
        argv = shlex.split((Path(vm["vm_directory"]) / "qemu.command").read_text())
        assert "-no-kvm" not in argv
        if kvm.host_reason() is not None:  # this machine: /dev/kvm exists, but no vmx/svm, so KVM would hang
            assert "-enable-kvm" not in argv and argv[argv.index("-accel") + 1] == "tcg"
    finally:
        assert (await api.post(f"{url}/stop")).status == 204


async def test_kvm_probe_is_bounded(tmp_path: Path, monkeypatch) -> None:
    """A qemu that hangs under KVM makes the probe say no, within its time limit."""
    hanging = tmp_path / "qemu-system-x86_64"
    hanging.write_text("#!/bin/sh\nexec sleep 60\n")
    hanging.chmod(0o755)
    monkeypatch.setattr(kvm, "PROBE_TIMEOUT", 0.5)
    usable, reason = await kvm._probe(str(hanging))
    assert not usable and "did not answer" in reason
