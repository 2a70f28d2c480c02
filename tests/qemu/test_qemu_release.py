"""What the released GNS3 1.5.x line added to Qemu (api-1.5-release §9), with the real qemu: capabilities, the
binary filter, command_line and start's answer, hdb's own interface, linked clones re-pointed, and the small items."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from gns3_qemu import binaries, kvm
from gns3_qemu.vm import qcow2_backing_file

pytestmark = pytest.mark.usefixtures("qemu_binary")


def vms(project: dict) -> str:
    return f"/v1/projects/{project['project_id']}/qemu/vms"


def qcow2(path: Path, size: str = "16M", backing: Path | None = None) -> Path:
    command = ["qemu-img", "create", "-f", "qcow2"]
    if backing is not None:
        command += ["-F", "qcow2", "-b", str(backing)]
    subprocess.run([*command, str(path), *([] if backing is not None else [size])], check=True, capture_output=True)
    return path


# -- capabilities ---------------------------------------------------------------------------------------------------


async def test_capabilities_report_only_what_kvm_really_runs(api) -> None:
    reply = await api.get("/v1/qemu/capabilities")
    assert reply.status == 200 and set(reply.json) == {"kvm"}
    if kvm.host_reason() is not None:
        # This machine: /dev/kvm exists but the CPU has no vmx/svm and KVM guests hang, so nothing is accelerated
        # (GNS3 1.5.x would have said ["x86_64", "i386"] from /dev/kvm alone).
        assert reply.json == {"kvm": []}
    else:
        for arch in reply.json["kvm"]:
            assert (await kvm.kvm_usable(binaries.which(f"qemu-system-{arch}"), arch))[0]


async def test_capabilities_follow_the_probe(monkeypatch) -> None:
    probed: list[tuple[str, str]] = []

    async def usable(path: str, arch: str) -> tuple[bool, str]:
        probed.append((os.path.basename(path), arch))
        return arch == "x86_64", ""

    monkeypatch.setattr(kvm, "kvm_usable", usable)
    monkeypatch.setattr(kvm.platform, "machine", lambda: "x86_64")
    assert await kvm.accelerated_platforms() == ["x86_64"]
    assert probed == [("qemu-system-x86_64", "x86_64"), ("qemu-system-i386", "i386")]
    monkeypatch.setattr(kvm.platform, "machine", lambda: "aarch64")  # no qemu-system-aarch64 here: nothing
    assert await kvm.accelerated_platforms() == []
    assert kvm.host_kvm_platforms("i686") == ["i386"]


class TestKVMDisabled:
    @pytest.fixture
    def gns3_config_overrides(self):
        return {"Qemu": {"enable_kvm": "false"}}

    async def test_nothing_is_accelerated(self, api, monkeypatch) -> None:
        async def usable(path: str, arch: str) -> tuple[bool, str]:
            return True, ""

        monkeypatch.setattr(kvm, "kvm_usable", usable)
        assert (await api.get("/v1/qemu/capabilities")).json == {"kvm": []}


# -- binaries -------------------------------------------------------------------------------------------------------


async def test_binaries_filtered_by_architecture(api, tmp_path, monkeypatch) -> None:
    spice = tmp_path / "bin" / "qemu-system-x86_64-spice"
    spice.parent.mkdir()
    spice.write_text("#!/bin/sh\necho 'QEMU emulator version 2.5.0'\n")
    spice.chmod(0o755)
    monkeypatch.setenv("PATH", f"{spice.parent}{os.pathsep}{os.environ['PATH']}")
    everything = [item["path"] for item in (await api.get("/v1/qemu/binaries")).json]
    assert "/usr/bin/qemu-system-x86_64" in everything and str(spice) not in everything  # -spice: never listed
    reply = await api.get("/v1/qemu/binaries", {"archs": ["x86_64"]})
    assert reply.status == 200
    assert [os.path.basename(item["path"]) for item in reply.json] == ["qemu-system-x86_64"]
    assert reply.json[0]["version"].startswith("7.")
    reply = await api.get("/v1/qemu/binaries", {"archs": ["i386", "x86_64"]})
    assert sorted(os.path.basename(item["path"]) for item in reply.json) == ["qemu-system-i386", "qemu-system-x86_64"]
    assert (await api.get("/v1/qemu/binaries", {"archs": ["mips"]})).json == []
    twice = (await api.get("/v1/qemu/binaries", {"archs": ["x86_64", "x86_64"]})).json  # once per matching arch
    assert [os.path.basename(item["path"]) for item in twice] == ["qemu-system-x86_64"] * 2
    for body in ({"archs": ["null"]}, {"archs": "x86_64"}, {"arch": ["x86_64"]}):
        assert (await api.get("/v1/qemu/binaries", body)).status == 400, body


def test_platform_of_old_names() -> None:
    assert binaries.platform_of("/usr/bin/qemu") == "i386"
    assert binaries.platform_of("C:\\qemu\\qemu.exe".replace("\\", "/")) == "i386"
    assert binaries.platform_of("/usr/bin/qemu-system-x86_64w.exe") == "x86_64"


# -- the VM object and start ----------------------------------------------------------------------------------------


async def test_start_answers_the_vm_with_its_command_line(api, project, images_dir: Path) -> None:
    qcow2(images_dir / "a.qcow2")
    qcow2(images_dir / "b.qcow2")
    body = {"name": "disks", "qemu_path": "qemu-system-x86_64", "ram": 32, "hda_disk_image": "a.qcow2",
            "hda_disk_interface": "ide", "hdb_disk_image": "b.qcow2", "hdb_disk_interface": "virtio",
            "process_priority": "normal"}
    vm = (await api.post(vms(project), body)).json
    # hdb keeps its own interface (the seed showed hda's; released 1.5.x fixed it: §15 #6, the release wins).
    assert (vm["hda_disk_interface"], vm["hdb_disk_interface"]) == ("ide", "virtio")
    assert vm["command_line"] == ""  # not started yet
    url = f"{vms(project)}/{vm['vm_id']}"
    reply = await api.post(f"{url}/start")
    try:
        # 200 and the VM object (the seed answered 204: §15 #2, the release wins).
        assert reply.status == 200, reply
        line = reply.json["command_line"]
        assert line == " ".join(shlex.split((Path(vm["vm_directory"]) / "qemu.command").read_text()))
        assert line.startswith("/usr/bin/qemu-system-x86_64 -name disks -m 32M")
        overlays = Path(vm["vm_directory"])
        assert f"file={overlays / 'hda_disk.qcow2'},if=ide,index=0,media=disk" in line
        assert f"file={overlays / 'hdb_disk.qcow2'},if=virtio,index=1,media=disk" in line
        again = await api.post(f"{url}/start")  # running: resumes, answers the same object
        assert again.status == 200 and again.json == reply.json
    finally:
        assert (await api.post(f"{url}/stop")).status == 204
    assert (await api.get(url)).json["command_line"] == line  # the last start's, kept after stop


async def test_boot_orders_reach_qemu(api, project) -> None:
    vm = (await api.post(vms(project), {"name": "boot", "qemu_path": "qemu-system-x86_64", "ram": 32,
                                        "process_priority": "normal"})).json
    url = f"{vms(project)}/{vm['vm_id']}"
    assert (await api.put(url, {"boot_priority": "cn"})).status == 200
    reply = await api.post(f"{url}/start")
    try:
        assert reply.status == 200 and " -boot order=cn " in reply.json["command_line"]
    finally:
        await api.post(f"{url}/stop")


async def test_linked_clone_is_repointed_at_the_current_base(api, project, images_dir: Path) -> None:
    old = qcow2(images_dir / "old.qcow2")
    new = qcow2(images_dir / "new.qcow2")
    vm = (await api.post(vms(project), {"name": "clone", "qemu_path": "qemu-system-x86_64", "ram": 32,
                                        "hda_disk_image": "new.qcow2", "process_priority": "normal"})).json
    Path(vm["vm_directory"]).mkdir(parents=True, exist_ok=True)
    overlay = qcow2(Path(vm["vm_directory"]) / "hda_disk.qcow2", backing=old)  # as an imported project brings it
    assert qcow2_backing_file(overlay) == str(old)
    url = f"{vms(project)}/{vm['vm_id']}"
    reply = await api.post(f"{url}/start")
    try:
        assert reply.status == 200, reply
        assert qcow2_backing_file(overlay) == str(new)
    finally:
        await api.post(f"{url}/stop")
    info = subprocess.run(["qemu-img", "info", str(overlay)], capture_output=True, text=True, check=True).stdout
    assert f"backing file: {new}" in info and "backing file format: qcow2" in info
    assert qcow2_backing_file(new) is None and qcow2_backing_file(images_dir / "missing") is None


async def test_a_qemu_path_from_another_machine_falls_back_to_its_name(api, project) -> None:
    reply = await api.post(vms(project), {"name": "moved", "qemu_path": "/opt/elsewhere/bin/qemu-system-i386"})
    assert reply.status == 201, reply
    assert reply.json["qemu_path"] == "/usr/bin/qemu-system-i386" and reply.json["platform"] == "i386"
    reply = await api.post(vms(project), {"name": "gone", "qemu_path": "/opt/elsewhere/bin/qemu-system-nope"})
    assert reply.status == 409 and "/opt/elsewhere/bin/qemu-system-nope" in reply.json["message"]


async def test_an_asa_initrd_is_warned_about(api, project, images_dir: Path, notifications) -> None:
    (images_dir / "asa842-initrd.gz").write_bytes(b"initrd")
    (images_dir / "linux-initrd.gz").write_bytes(b"initrd")
    vm = (await api.post(vms(project), {"name": "fw", "qemu_path": "qemu-system-x86_64",
                                        "initrd": "linux-initrd.gz"})).json
    await asyncio.sleep(0.2)
    assert not [e for e in notifications.events if e["action"] == "log.warning"]
    assert (await api.put(f"{vms(project)}/{vm['vm_id']}", {"initrd": "asa842-initrd.gz"})).status == 200
    warning = await notifications.wait_for("log.warning")
    assert "asa842-initrd.gz" in warning["event"]["message"] and "ASAv" in warning["event"]["message"]


# -- console ports asked for (issue: a taken port; api-core §7.2 decides) -------------------------------------------


async def test_a_taken_console_port_is_replaced_and_said(api, project, notifications) -> None:
    """The reference never refuses a requested console port: it takes a free one and says so in a `log.warning`
    (api-core §7.2; the release only dropped the notification, and §15 #8 keeps the seed)."""
    first = (await api.post(vms(project), {"name": "a", "qemu_path": "qemu-system-x86_64"})).json
    second = await api.post(vms(project), {"name": "b", "qemu_path": "qemu-system-x86_64",
                                           "console": first["console"]})
    assert second.status == 201 and second.json["console"] != first["console"]
    warning = await notifications.wait_for("log.warning")
    assert warning["event"]["message"] == (f"TCP port {first['console']} already in use on host 127.0.0.1. "
                                           f"Port has been replaced by {second.json['console']}")


class TestVNCConsoleRange:
    @pytest.fixture
    def gns3_config_overrides(self):
        return {"Server": {"console_start_port_range": "42000", "console_end_port_range": "42100"}}

    async def test_a_vnc_port_asked_for_is_taken_without_a_false_warning(self, api, project, notifications) -> None:
        reply = await api.post(vms(project), {"name": "v", "qemu_path": "qemu-system-x86_64", "console_type": "vnc",
                                              "console": 5977})
        assert reply.status == 201 and reply.json["console"] == 5977
        await asyncio.sleep(0.3)
        assert not [e for e in notifications.events if e["action"] == "log.warning"], notifications.events
        taken = await api.post(vms(project), {"name": "w", "qemu_path": "qemu-system-x86_64",
                                              "console_type": "vnc", "console": 5977})
        assert taken.status == 201 and 5900 <= taken.json["console"] <= 6000 and taken.json["console"] != 5977
        warning = await notifications.wait_for("log.warning")
        assert warning["event"]["message"].startswith("TCP port 5977 already in use")
