"""End to end with the real qemu: a tiny Linux guest boots, pings a real VPCS over a UDP link, suspends and resumes,
writes to a linked-clone disk, and goes away cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
from qemu_helpers import SerialConsole

from gns3core.files import md5_of_file
from gns3core.testing import require

pytestmark = pytest.mark.timeout(180)


def vm_url(project: dict, vm_id: str = "") -> str:
    base = f"/v1/projects/{project['project_id']}/qemu/vms"
    return f"{base}/{vm_id}" if vm_id else base


def qemu_process(gns3_server, vm_id: str) -> psutil.Process:
    vm = gns3_server.emulators["qemu"].get_vm(vm_id)
    return psutil.Process(vm._process.pid)


async def create_guest_vm(api, project, guest, **fields) -> dict:
    body = {"name": "guest", "qemu_path": "qemu-system-x86_64", "ram": 128, **guest,
            "kernel_command_line": "console=ttyS0 quiet panic=-1 guestip=10.0.0.3/24", **fields}
    reply = await api.post(vm_url(project), body)
    assert reply.status == 201, reply
    return reply.json


async def link_to_vpcs(api, project, vm_id: str, adapter: int, peer) -> None:
    nio = {"type": "nio_udp", "lport": peer.rport, "rhost": "127.0.0.1", "rport": peer.lport}
    reply = await api.post(f"{vm_url(project, vm_id)}/adapters/{adapter}/ports/0/nio", nio)
    assert reply.status == 201, reply


async def monitor_status(gns3_server, vm_id: str) -> str:
    vm = gns3_server.emulators["qemu"].get_vm(vm_id)
    return await vm.monitor_command("info status")


async def test_guest_pings_vpcs_suspends_resumes_and_stops(api, project, guest, vpcs_peer, images_dir, gns3_server,
                                                           notifications) -> None:
    require(subprocess.run(["which", "cpulimit"], capture_output=True).returncode == 0,
            "cpulimit is not installed (apt-get install cpulimit)")
    reply = await api.post("/v1/qemu/img", {"qemu_img": "qemu-img", "path": "base.qcow2", "format": "qcow2",
                                            "size": 16})
    assert reply.status == 201, reply
    base = images_dir / "base.qcow2"
    base_md5 = md5_of_file(base)
    vm = await create_guest_vm(api, project, guest, adapters=2, hda_disk_image="base.qcow2",
                               hda_disk_interface="virtio", cpu_throttling=150, acpi_shutdown=True)
    assert vm["hda_disk_image"] == "base.qcow2" and vm["hda_disk_image_md5sum"] == base_md5
    await link_to_vpcs(api, project, vm["vm_id"], 0, vpcs_peer)

    reply = await api.post(f"{vm_url(project, vm['vm_id'])}/start")
    # 200 with the VM object and its command line, as released 1.5.x answers (the seed's 204: §15 #2, the release wins)
    assert reply.status == 200, reply
    assert vm["command_line"] == "" and reply.json["vm_id"] == vm["vm_id"]
    argv = reply.json["command_line"].split(" ")
    assert argv[0].endswith("nice") and argv[1:3] == ["-n", "5"] and argv[3].endswith("qemu-system-x86_64")
    assert f"-serial telnet:127.0.0.1:{vm['console']},server=on,wait=off" in reply.json["command_line"]
    assert "if=virtio,index=0" in reply.json["command_line"]
    await notifications.wait_for("vm.started")
    console = await SerialConsole.open(vm["console"])
    try:
        await console.wait_prompt(90)
        proc = qemu_process(gns3_server, vm["vm_id"])
        assert proc.nice() == 5  # process_priority "low", the default
        assert any(f"--pid={proc.pid}" in " ".join(p.cmdline()) for p in psutil.process_iter(["cmdline"])
                   if p.info["cmdline"] and p.info["cmdline"][0].endswith("cpulimit"))

        links = await console.run("ls /sys/class/net")
        assert "eth0" in links and "eth1" in links  # the adapter without a link exists too
        macs = await console.run("cat /sys/class/net/eth0/address /sys/class/net/eth1/address")
        assert vm["mac_address"] in macs and vm["mac_address"][:-2] + "01" in macs
        ping = await console.run("ping -c 3 -W 2 10.0.0.1", timeout=30)
        assert " 0 packets received" not in ping and "packets received" in ping, ping

        await console.run("echo written-by-guest | dd of=/dev/vda bs=512 count=1 conv=fsync")

        assert (await api.post(f"{vm_url(project, vm['vm_id'])}/suspend")).status == 204
        assert "paused" in await monitor_status(gns3_server, vm["vm_id"])
        assert (await api.post(f"{vm_url(project, vm['vm_id'])}/resume")).status == 204
        assert "running" in await monitor_status(gns3_server, vm["vm_id"])
        # start on a running VM resumes it
        assert (await api.post(f"{vm_url(project, vm['vm_id'])}/suspend")).status == 204
        assert (await api.post(f"{vm_url(project, vm['vm_id'])}/start")).status == 200
        assert "running" in await monitor_status(gns3_server, vm["vm_id"])
        reply = await api.post(f"{vm_url(project, vm['vm_id'])}/adapters/1/ports/0/nio", {"type": "nio_nat"})
        assert reply.status == 409 and "started Qemu VM" in reply.json["message"]
    finally:
        await console.close()

    children = [p.pid for p in proc.children(recursive=True)]
    reply = await api.post(f"{vm_url(project, vm['vm_id'])}/stop")
    assert reply.status == 204
    await notifications.wait_for("vm.stopped")
    assert not psutil.pid_exists(proc.pid) or proc.status() == psutil.STATUS_ZOMBIE
    assert not any(psutil.pid_exists(pid) for pid in children)
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if vm["vm_id"] in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []
    assert not [e for e in notifications.events if e["action"] == "log.error"]  # ACPI power-off is a clean exit

    # linked clone: the guest's write went to the overlay, the base image is untouched
    overlay = Path(vm["vm_directory"]) / "hda_disk.qcow2"
    assert overlay.is_file()
    assert md5_of_file(base) == base_md5
    compare = subprocess.run(["qemu-img", "compare", str(base), str(overlay)], capture_output=True)
    assert compare.returncode == 1, compare.stdout  # 1 = the contents differ
    info = subprocess.run(["qemu-img", "info", str(overlay)], capture_output=True, text=True, check=True).stdout
    assert "backing file format: qcow2" in info


async def test_legacy_networking_still_gives_a_working_nic(api, project, guest, vpcs_peer) -> None:
    vm = await create_guest_vm(api, project, guest, legacy_networking=True, process_priority="normal")
    await link_to_vpcs(api, project, vm["vm_id"], 0, vpcs_peer)
    assert (await api.post(f"{vm_url(project, vm['vm_id'])}/start")).status == 200
    console = await SerialConsole.open(vm["console"])
    try:
        await console.wait_prompt(90)
        ping = await console.run("ping -c 3 -W 2 10.0.0.1", timeout=30)
        assert " 0 packets received" not in ping and "packets received" in ping, ping
    finally:
        await console.close()
    assert (await api.post(f"{vm_url(project, vm['vm_id'])}/stop")).status == 204


async def test_qemu_dying_on_its_own_is_reported(api, project, guest, gns3_server, notifications) -> None:
    vm = await create_guest_vm(api, project, guest)
    assert (await api.post(f"{vm_url(project, vm['vm_id'])}/start")).status == 200
    pid = qemu_process(gns3_server, vm["vm_id"]).pid
    os.kill(pid, signal.SIGKILL)
    error = await notifications.wait_for("log.error")
    assert "QEMU process has stopped, return code: -9" in error["event"]["message"]
    await notifications.wait_for("vm.stopped")
    assert not gns3_server.emulators["qemu"].get_vm(vm["vm_id"]).running
    # a stopped VM has no monitor to suspend through
    reply = await api.post(f"{vm_url(project, vm['vm_id'])}/suspend")
    assert reply.status == 409 and "Suspending a QEMU VM is not supported" in reply.json["message"]
    # and it starts again
    assert (await api.post(f"{vm_url(project, vm['vm_id'])}/start")).status == 200
    assert (await api.post(f"{vm_url(project, vm['vm_id'])}/reload")).status == 204
    assert (await api.post(f"{vm_url(project, vm['vm_id'])}/stop")).status == 204


async def test_a_refused_command_line_is_a_409_with_qemu_words(api, project, qemu_binary) -> None:
    reply = await api.post(vm_url(project), {"name": "bad", "qemu_path": "qemu-system-x86_64",
                                             "options": "-no-such-option"})
    assert reply.status == 201
    reply = await api.post(f"{vm_url(project, reply.json['vm_id'])}/start")
    assert reply.status == 409
    assert "no-such-option" in reply.json["message"]
