"""A project with a real Qemu guest and a real VPCS, exported then imported as a GNS3 1.5.4 client does it: the
imported copy starts, its guest finds what it wrote to its disk before the export, and it pings the VPCS."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import gns3_qemu.plugin
import gns3_vpcs.plugin
import pytest
from qemu_helpers import SerialConsole

from gns3core.testing import require

pytestmark = [pytest.mark.timeout(600), pytest.mark.usefixtures("vpcs_binary")]

KERNEL_LINE = "console=ttyS0 quiet panic=-1 guestip=10.0.0.3/24"


@pytest.fixture
def gns3_plugins() -> list[Any]:
    return [gns3_qemu.plugin, gns3_vpcs.plugin]


@pytest.fixture
def vpcs_binary() -> None:
    import shutil

    require(shutil.which("vpcs") is not None, "vpcs is not installed (apt-get install vpcs)")


def topology(name: str, project_id: str, qemu: dict, vpcs: dict, base_image: Path) -> dict:
    """The topology file a 1.5.4 client keeps in the project directory (`<name>.gns3`)."""
    return {
        "name": name, "project_id": project_id, "revision": 4, "type": "topology", "version": "1.5.4",
        "topology": {
            "servers": [{"id": 1, "local": True, "host": "127.0.0.1", "port": 3080, "protocol": "http"}],
            "nodes": [
                {"id": 1, "server_id": 1, "type": "QemuVM", "vm_id": qemu["vm_id"],
                 "properties": {"name": qemu["name"], "hda_disk_image": str(base_image), "ram": 128,
                                "hda_disk_interface": "virtio",
                                "kernel_image": qemu["kernel_image"], "initrd": qemu["initrd"],
                                "kernel_command_line": KERNEL_LINE}},
                {"id": 2, "server_id": 1, "type": "VPCSDevice", "vm_id": vpcs["vm_id"],
                 "properties": {"name": vpcs["name"]}},
            ],
        },
    }


async def wire(api, base: str, qemu_id: str, vpcs_id: str) -> None:
    ports = [(await api.post(f"{base}/ports/udp")).json["udp_port"] for _ in range(2)]
    qemu_nio = {"type": "nio_udp", "lport": ports[0], "rhost": "127.0.0.1", "rport": ports[1]}
    vpcs_nio = {"type": "nio_udp", "lport": ports[1], "rhost": "127.0.0.1", "rport": ports[0]}
    assert (await api.post(f"{base}/qemu/vms/{qemu_id}/adapters/0/ports/0/nio", qemu_nio)).status == 201
    assert (await api.post(f"{base}/vpcs/vms/{vpcs_id}/adapters/0/ports/0/nio", vpcs_nio)).status == 201


async def test_export_then_import_starts_and_pings(api, guest, images_dir: Path) -> None:
    # -- the original project, as a client builds it ------------------------------------------------------------
    reply = await api.post("/v1/qemu/img", {"qemu_img": "qemu-img", "path": "base.qcow2", "format": "qcow2",
                                            "size": 16})
    assert reply.status == 201
    original = (await api.post("/v1/projects", {"name": "lab"})).json
    base = f"/v1/projects/{original['project_id']}"
    qemu = (await api.post(f"{base}/qemu/vms", {"name": "guest", "qemu_path": "qemu-system-x86_64", "ram": 128,
                                                "hda_disk_image": "base.qcow2", "hda_disk_interface": "virtio",
                                                "kernel_command_line": KERNEL_LINE,
                                                **guest})).json
    vpcs = (await api.post(f"{base}/vpcs/vms", {"name": "PC1", "startup_script": "ip 10.0.0.1 24\n"})).json
    await wire(api, base, qemu["vm_id"], vpcs["vm_id"])
    reply = await api.post(f"{base}/qemu/vms/{qemu['vm_id']}/start")
    assert reply.status == 200, reply
    console = await SerialConsole.open(qemu["console"])
    try:
        await console.wait_prompt(180)
        await console.run("echo written-before-export | dd of=/dev/vda bs=512 count=1 conv=fsync")
    finally:
        await console.close()
    assert (await api.post(f"{base}/qemu/vms/{qemu['vm_id']}/stop")).status == 204
    Path(original["path"], "lab.gns3").write_text(json.dumps(
        topology("lab", original["project_id"], qemu, vpcs, images_dir / "base.qcow2")))

    # -- export (the client's "Export portable project", images included) -------------------------------------
    async with api.client.get(f"{base}/export?include_images=1") as response:
        assert response.status == 200
        archive = await response.read()
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        names = set(zipped.namelist())
        exported = json.loads(zipped.read("project.gns3"))
    assert {"project.gns3", "images/QEMU/base.qcow2", f"project-files/vpcs/{vpcs['vm_id']}/startup.vpc",
            f"project-files/qemu/{qemu['vm_id']}/hda_disk.qcow2"} <= names
    assert exported["topology"]["nodes"][0]["properties"]["hda_disk_image"] == "base.qcow2"
    assert (await api.post(f"{base}/close")).status == 204  # the client closes it before opening the copy

    # -- import (the client's "Import portable project" on a Linux machine without a GNS3 VM) ------------------
    copy_id = str(uuid.uuid4())
    copy = (await api.post("/v1/projects", {"project_id": copy_id, "name": "lab-copy"})).json
    reply = await api.post(f"/v1/projects/{copy_id}/import?gns3vm=0", raw=archive,
                           headers={"Content-Type": "application/octet-stream"})
    assert reply.status == 201, reply
    imported = json.loads(Path(copy["path"], "lab-copy.gns3").read_text())
    assert imported["project_id"] == copy_id and imported["name"] == "lab-copy"

    # -- the client opens the copy: every node created again from the topology, with its own id ----------------
    copy_base = f"/v1/projects/{copy_id}"
    nodes = {node["type"]: node for node in imported["topology"]["nodes"]}
    qemu_node, vpcs_node = nodes["QemuVM"], nodes["VPCSDevice"]
    properties = qemu_node["properties"]
    reply = await api.post(f"{copy_base}/qemu/vms", {"vm_id": qemu_node["vm_id"], "qemu_path": "qemu-system-x86_64",
                                                     **properties})
    assert reply.status == 201, reply
    assert reply.json["hda_disk_image"] == "base.qcow2"
    reply = await api.post(f"{copy_base}/vpcs/vms", {"vm_id": vpcs_node["vm_id"], **vpcs_node["properties"]})
    assert reply.status == 201, reply
    assert reply.json["startup_script"] == "ip 10.0.0.1 24\n"  # from the archive
    await wire(api, copy_base, qemu_node["vm_id"], vpcs_node["vm_id"])
    assert (await api.post(f"{copy_base}/vpcs/vms/{vpcs_node['vm_id']}/start")).status == 200
    reply = await api.post(f"{copy_base}/qemu/vms/{qemu_node['vm_id']}/start")
    assert reply.status == 200, reply
    assert f"{copy['path']}/project-files/qemu/{qemu_node['vm_id']}/hda_disk.qcow2" in reply.json["command_line"]
    console = await SerialConsole.open(reply.json["console"])
    try:
        await console.wait_prompt(180)
        disk = await console.run("dd if=/dev/vda bs=512 count=1 2>/dev/null | head -c 21")
        assert "written-before-export" in disk, disk
        ping = await console.run("ping -c 3 -W 2 10.0.0.1", timeout=60)
        assert " 0 packets received" not in ping and "packets received" in ping, ping
    finally:
        await console.close()
    assert (await api.delete(copy_base)).status == 204
