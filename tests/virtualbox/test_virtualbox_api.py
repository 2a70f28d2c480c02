"""Every VirtualBox route against the VBoxManage stand-in, with the exact VBoxManage calls each one makes."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import pytest
from vbox_lab import BASE_VM, StandIn

from gns3core.testing.ports import free_tcp_port

pytestmark = pytest.mark.timeout(120)


def base(project_id: str) -> str:
    return f"/v1/projects/{project_id}/virtualbox/vms"


async def create(api, project_id: str, **body) -> dict:
    reply = await api.post(base(project_id), {"name": "node", "vmname": BASE_VM, "linked_clone": False, **body})
    assert reply.status == 201, reply
    return reply.json


async def udp_link(api, project_id: str) -> dict:
    lport = (await api.post(f"/v1/projects/{project_id}/ports/udp")).json["udp_port"]
    return {"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1", "rport": free_tcp_port()}


async def test_list_vms_leaves_out_clones_and_inaccessible(api, standin: StandIn) -> None:
    standin.create_base_vm("Router", memory=512, disk=False)
    standin.create_base_vm("Made by GNS3", disk=False)
    standin.run("setextradata", "Made by GNS3", "GNS3/Clone", "yes")
    gone = standin.home / "VirtualBox VMs" / "Router" / "Router.vbox"
    standin.create_base_vm("Gone", disk=False)
    (standin.home / "VirtualBox VMs" / "Gone" / "Gone.vbox").unlink()
    reply = await api.get("/v1/virtualbox/vms")
    assert reply.status == 200
    assert sorted(reply.json, key=lambda v: v["vmname"]) == [{"vmname": "Router", "ram": 512},
                                                               {"vmname": BASE_VM, "ram": 256}]
    assert gone.exists()
    assert ["list", "systemproperties"] == standin.argv()[0]  # the API version is checked at first use


async def test_create_get_update_delete(api, project, standin: StandIn) -> None:
    pid = project["project_id"]
    standin.mark()
    vm = await create(api, pid, adapters=2, ram=512, headless=True, acpi_shutdown=True, use_any_adapter=True,
                      adapter_type="Paravirtualized Network (virtio-net)", enable_remote_console=True)
    assert vm == {
        "name": "node", "vm_id": vm["vm_id"], "project_id": pid, "console": vm["console"], "status": "stopped",
        "vmname": BASE_VM, "vm_directory": None, "enable_remote_console": True, "headless": True,
        "acpi_shutdown": True, "adapters": 2, "use_any_adapter": True,
        "adapter_type": "Paravirtualized Network (virtio-net)", "ram": 512,
    }
    assert standin.argv()[-2:] == [["showvminfo", BASE_VM, "--machinereadable"],
                                   ["modifyvm", BASE_VM, "--memory", "512"]]
    assert standin.info(BASE_VM)["memory"] == "512"
    url = f"{base(pid)}/{vm['vm_id']}"
    assert (await api.get(url)).json == vm

    standin.mark()
    reply = await api.put(url, {"name": "renamed", "ram": 0, "adapters": 4, "headless": False,
                                "console": vm["console"]})
    assert reply.status == 200, reply
    assert reply.json["name"] == "renamed" and reply.json["adapters"] == 4 and reply.json["ram"] == 512
    assert reply.json["headless"] is False
    assert standin.argv() == []  # ram 0 means "unchanged": VirtualBox is not touched
    reply = await api.put(url, {"adapters": 9})
    assert reply.status == 409 and "maximum supported of 8" in reply.json["message"]
    reply = await api.put(url, {"ram": 1024})
    assert reply.status == 200 and standin.info(BASE_VM)["memory"] == "1024"

    standin.create_base_vm("Other", memory=128, disk=False)
    reply = await api.put(url, {"vmname": "Other"})  # not a clone: the node now drives another VM
    assert reply.status == 200 and reply.json["vmname"] == "Other" and reply.json["ram"] == 128
    assert BASE_VM in standin.vms() and "Other" in standin.vms()
    reply = await api.put(url, {"vmname": "Nowhere"})
    assert reply.status == 409 and "Could not find a registered machine named 'Nowhere'" in reply.json["message"]
    assert (await api.get(url)).json["vmname"] == "Other"

    assert (await api.delete(url)).status == 204
    assert (await api.get(url)).status == 404
    assert set(standin.vms()) == {BASE_VM, "Other"}  # not a clone: the VM itself stays in VirtualBox


async def test_create_errors_change_nothing(api, project, standin: StandIn, gns3_server) -> None:
    pid = project["project_id"]
    reply = await api.post(base(pid), {"name": "n", "vmname": "NoSuchVM", "linked_clone": False})
    assert reply.status == 409
    assert reply.json["message"].startswith("VirtualBox has returned an error: VBoxManage: error: Could not find a "
                                            "registered machine named 'NoSuchVM'")
    reply = await api.post(base(pid), {"name": "n", "vmname": BASE_VM, "linked_clone": True, "adapters": 9})
    assert reply.status == 409 and "maximum supported of 8" in reply.json["message"]
    reply = await api.post(base(pid), {"name": "n", "vmname": "--help", "linked_clone": False})
    assert reply.status == 409 and "must not start with '-'" in reply.json["message"]
    reply = await api.post(base(pid), {"name": "../../escape", "vmname": BASE_VM, "linked_clone": True})
    assert reply.status == 409 and "cannot name a linked clone" in reply.json["message"]
    reply = await api.post(base(pid), {"name": "n", "vmname": "x" * 300, "linked_clone": False})
    assert reply.status == 400
    reply = await api.post(base(pid), {"name": "n", "vmname": BASE_VM})
    assert reply.status == 400  # linked_clone is required
    assert standin.vms() == [BASE_VM]
    assert gns3_server.emulators["virtualbox"].vms == {}
    assert gns3_server.ports.ports_of(pid) == (set(), set())


async def test_start_stop_calls(api, project, standin: StandIn) -> None:
    pid = project["project_id"]
    vm = await create(api, pid, adapters=2)
    url = f"{base(pid)}/{vm['vm_id']}"
    nio = await udp_link(api, pid)
    assert (await api.post(f"{url}/adapters/1/ports/0/nio", nio)).status == 201
    standin.mark()
    reply = await api.post(f"{url}/start")
    assert reply.status == 204 and reply.body == b""  # API v1 (and 1.5.4) answer a VirtualBox start with 204
    pipe = standin.info(BASE_VM)["uartmode1"].split(",", 1)[1]
    assert pipe.endswith(f"/gns3_vbox/{vm['vm_id']}")
    vm_dir = str(standin.home.parent / "projects" / pid / "project-files" / "virtualbox" / vm["vm_id"])
    assert standin.argv() == [
        ["showvminfo", BASE_VM, "--machinereadable"],
        ["modifyvm", BASE_VM, "--cableconnected1", "off"],
        ["modifyvm", BASE_VM, "--nic2", "null"], ["modifyvm", BASE_VM, "--cableconnected2", "off"],
        ["modifyvm", BASE_VM, "--nictrace2", "off"], ["modifyvm", BASE_VM, "--nictype2", "82540EM"],
        ["modifyvm", BASE_VM, "--nic2", "generic"], ["modifyvm", BASE_VM, "--nicgenericdrv2", "UDPTunnel"],
        ["modifyvm", BASE_VM, "--nicproperty2", f"sport={nio['lport']}"],
        ["modifyvm", BASE_VM, "--nicproperty2", "dest=127.0.0.1"],
        ["modifyvm", BASE_VM, "--nicproperty2", f"dport={nio['rport']}"],
        ["modifyvm", BASE_VM, "--cableconnected2", "on"],
        ["modifyvm", BASE_VM, "--uart1", "0x3F8", "4"],
        ["modifyvm", BASE_VM, "--uartmode1", "server", pipe],
        ["startvm", BASE_VM],
        ["guestproperty", "set", BASE_VM, "NameInGNS3", "node"],
        ["guestproperty", "set", BASE_VM, "ProjectDirInGNS3", vm_dir],
    ]
    info = standin.info(BASE_VM)
    assert info["VMState"] == "running" and info["nic1"] == "null" and info["nic2"] == "generic"
    assert (await api.get(url)).json["status"] == "started"

    standin.mark()
    assert (await api.post(f"{url}/start")).status == 204  # started already: nothing more happens
    assert standin.argv() == [["showvminfo", BASE_VM, "--machinereadable"]]

    standin.mark()
    assert (await api.post(f"{url}/stop")).status == 204
    assert standin.argv() == [
        ["showvminfo", BASE_VM, "--machinereadable"],
        ["controlvm", BASE_VM, "poweroff"],
        ["modifyvm", BASE_VM, "--uart1", "off"],
        ["modifyvm", BASE_VM, "--nictrace2", "off"], ["modifyvm", BASE_VM, "--cableconnected2", "off"],
        ["modifyvm", BASE_VM, "--nic2", "null"],
    ]
    assert standin.info(BASE_VM)["VMState"] == "poweroff"
    assert (await api.get(url)).json["status"] == "stopped"
    standin.mark()
    assert (await api.post(f"{url}/stop")).status == 204  # stopping a stopped VM changes nothing
    assert standin.argv() == [["showvminfo", BASE_VM, "--machinereadable"]]


async def test_headless_acpi_suspend_resume_reload(api, project, standin: StandIn) -> None:
    pid = project["project_id"]
    vm = await create(api, pid, headless=True, acpi_shutdown=True)
    url = f"{base(pid)}/{vm['vm_id']}"
    standin.mark()
    assert (await api.post(f"{url}/start")).status == 204
    assert ["startvm", BASE_VM, "--type", "headless"] in standin.argv()
    assert standin.session(BASE_VM)["type"] == "headless"
    assert (await api.post(f"{url}/suspend")).status == 204
    assert standin.info(BASE_VM)["VMState"] == "paused"
    assert (await api.get(url)).json["status"] == "suspended"
    reply = await api.post(f"{url}/suspend")
    assert reply.status == 409 and "is not running" in reply.json["message"]
    assert (await api.post(f"{url}/resume")).status == 204
    assert standin.info(BASE_VM)["VMState"] == "running"
    assert (await api.post(f"{url}/reload")).status == 204
    standin.mark()
    assert (await api.post(f"{url}/stop")).status == 204
    argv = standin.argv()
    assert argv[:2] == [["showvminfo", BASE_VM, "--machinereadable"], ["controlvm", BASE_VM, "acpipowerbutton"]]
    assert ["controlvm", BASE_VM, "poweroff"] not in argv  # the guest shut down by itself
    assert standin.info(BASE_VM)["VMState"] == "poweroff"


async def test_adapter_attached_elsewhere_is_refused(api, project, standin: StandIn) -> None:
    pid = project["project_id"]
    standin.run("modifyvm", BASE_VM, "--nic1", "bridged")
    vm = await create(api, pid, adapters=1)
    url = f"{base(pid)}/{vm['vm_id']}"
    assert (await api.post(f"{url}/adapters/0/ports/0/nio", await udp_link(api, pid))).status == 201
    standin.mark()
    reply = await api.post(f"{url}/start")
    assert reply.status == 409
    assert reply.json["message"] == ("Attachment (bridged) already configured on adapter 1. Please set it to "
                                     "'Not attached' to allow GNS3 to use it.")
    assert [a[0] for a in standin.argv()] == ["showvminfo"]  # refused before anything changed
    assert standin.info(BASE_VM)["nic1"] == "bridged"
    assert (await api.put(url, {"use_any_adapter": True})).status == 200
    assert (await api.post(f"{url}/start")).status == 204
    assert standin.info(BASE_VM)["nic1"] == "generic"
    assert (await api.post(f"{url}/stop")).status == 204


async def test_vm_started_outside_gns3_is_refused(api, project, standin: StandIn) -> None:
    pid = project["project_id"]
    vm = await create(api, pid)
    standin.run("startvm", BASE_VM, "--type", "headless")
    try:
        reply = await api.post(f"{base(pid)}/{vm['vm_id']}/start")
        assert reply.status == 409
        assert reply.json["message"] == f"VirtualBox VM not powered off: {BASE_VM} is running"
    finally:
        standin.run("controlvm", BASE_VM, "poweroff")


async def test_vboxmanage_error_text_is_passed_on(api, project, standin: StandIn) -> None:
    pid = project["project_id"]
    vm = await create(api, pid)
    url = f"{base(pid)}/{vm['vm_id']}"
    standin.run("unregistervm", BASE_VM)  # the VM vanishes from VirtualBox behind the server's back
    reply = await api.post(f"{url}/start")
    assert reply.status == 409
    assert reply.json["message"] == (
        f"VirtualBox has returned an error: VBoxManage: error: Could not find a registered machine named '{BASE_VM}'\n"
        "VBoxManage: error: Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component VirtualBoxWrap, "
        "interface IVirtualBox, callee nsISupports")


async def test_nios_hot_add_and_remove(api, project, standin: StandIn) -> None:
    pid = project["project_id"]
    vm = await create(api, pid, adapters=2)
    url = f"{base(pid)}/{vm['vm_id']}"
    reply = await api.post(f"{url}/adapters/0/ports/0/nio", {"type": "nio_nat"})
    assert reply.status == 201 and reply.json == {"type": "nio_nat"}
    reply = await api.post(f"{url}/adapters/2/ports/0/nio", {"type": "nio_nat"})
    assert reply.status == 409 and reply.json["message"] == "Adapter 2 doesn't exist on VirtualBox VM 'node'"
    reply = await api.post(f"{url}/adapters/0/ports/0/nio", {"type": "nio_tap", "tap_device": "tap0"})
    assert reply.status == 409 and "nio_tap is not supported" in reply.json["message"]
    assert (await api.post(f"{url}/start")).status == 204
    assert standin.info(BASE_VM)["nic1"] == "nat"

    nio = await udp_link(api, pid)
    standin.mark()
    assert (await api.post(f"{url}/adapters/1/ports/0/nio", nio)).status == 201
    assert standin.argv() == [
        ["controlvm", BASE_VM, "nic2", "generic", "UDPTunnel"],
        ["controlvm", BASE_VM, "nicproperty2", f"sport={nio['lport']}"],
        ["controlvm", BASE_VM, "nicproperty2", "dest=127.0.0.1"],
        ["controlvm", BASE_VM, "nicproperty2", f"dport={nio['rport']}"],
        ["controlvm", BASE_VM, "setlinkstate2", "on"],
        ["showvminfo", BASE_VM, "--machinereadable"],
    ]
    assert standin.info(BASE_VM)["nic2"] == "generic"
    standin.mark()
    assert (await api.delete(f"{url}/adapters/1/ports/0/nio")).status == 204
    assert standin.argv() == [["controlvm", BASE_VM, "setlinkstate2", "off"], ["controlvm", BASE_VM, "nic2", "null"]]
    assert standin.info(BASE_VM)["nic2"] == "null"
    standin.mark()
    assert (await api.delete(f"{url}/adapters/1/ports/0/nio/anything")).status == 204  # the seed's path, no NIO
    assert standin.argv() == []
    assert (await api.delete(f"{url}/adapters/0/ports/0/nio/0")).status == 204
    assert standin.argv() == [["controlvm", BASE_VM, "setlinkstate1", "off"], ["controlvm", BASE_VM, "nic1", "null"]]
    assert (await api.post(f"{url}/stop")).status == 204


async def test_capture(api, project, standin: StandIn) -> None:
    pid = project["project_id"]
    vm = await create(api, pid, adapters=1)
    url = f"{base(pid)}/{vm['vm_id']}/adapters/0/ports/0"
    body = {"capture_file_name": "vbox.pcap", "data_link_type": "DLT_EN10MB"}  # what the 1.5.4 client sends
    reply = await api.post(f"{url}/start_capture", body)
    assert reply.status == 409 and reply.json["message"] == "Adapter 0 is not connected"
    assert (await api.post(f"{url}/nio", await udp_link(api, pid))).status == 201
    reply = await api.post(f"{url}/start_capture", body)
    assert reply.status == 200
    assert reply.json["pcap_file_path"] == f"{project['path']}/project-files/captures/vbox.pcap"
    reply = await api.post(f"{url}/start_capture", {"capture_file_name": "again.pcap"})  # the seed's body
    assert reply.status == 409 and "already activated" in reply.json["message"]
    reply = await api.post(f"{url}/start_capture", {"capture_file_name": "../../x.pcap"})
    assert reply.status == 403
    standin.mark()
    assert (await api.post(f"{base(pid)}/{vm['vm_id']}/start")).status == 204
    pcap = reply_path = f"{project['path']}/project-files/captures/vbox.pcap"
    assert ["modifyvm", BASE_VM, "--nictrace1", "on"] in standin.argv()
    assert ["modifyvm", BASE_VM, "--nictracefile1", reply_path] in standin.argv()
    reply = await api.post(f"{url}/stop_capture")
    assert reply.status == 204
    reply = await api.post(f"{url}/start_capture", body)
    assert reply.status == 409
    assert reply.json["message"] == "Sorry, packet capturing on a started VirtualBox VM is not supported."
    assert (await api.post(f"{base(pid)}/{vm['vm_id']}/stop")).status == 204
    assert open(pcap, "rb").read(4) == b"\xd4\xc3\xb2\xa1"  # written by VirtualBox (here: the stand-in) itself
    standin.mark()
    assert (await api.post(f"{base(pid)}/{vm['vm_id']}/start")).status == 204
    assert not any(a[2:3] == ["--nictrace1"] and a[3] == "on" for a in standin.argv())  # stopped: no trace
    assert (await api.post(f"{base(pid)}/{vm['vm_id']}/stop")).status == 204


async def test_timeout_missing_program_and_old_api(api, project, standin: StandIn, gns3_server, monkeypatch) -> None:
    pid = project["project_id"]
    vm = await create(api, pid)
    manager = gns3_server.emulators["virtualbox"]
    manager.vbox.timeout = 1.0
    monkeypatch.setenv("VBOX_STANDIN_HANG", "showvminfo")
    reply = await api.post(f"{base(pid)}/{vm['vm_id']}/start")
    assert reply.status == 409 and reply.json["message"] == "VBoxManage has timed out after 1 seconds!"
    monkeypatch.delenv("VBOX_STANDIN_HANG")
    manager.vbox.timeout = 60.0

    gns3_server.config.overrides["VirtualBox"]["vboxmanage_path"] = str(standin.home / "VBoxManage")
    gns3_server.reload_config()
    reply = await api.get("/v1/virtualbox/vms")
    assert reply.status == 409 and "does not exist" in reply.json["message"]
    gns3_server.config.overrides["VirtualBox"]["vboxmanage_path"] = "/bin/true"
    gns3_server.reload_config()
    reply = await api.get("/v1/virtualbox/vms")
    assert reply.status == 409 and "Invalid VBoxManage executable name true" in reply.json["message"]

    gns3_server.config.overrides["VirtualBox"]["vboxmanage_path"] = standin.program
    gns3_server.reload_config()
    monkeypatch.setenv("VBOX_STANDIN_API_VERSION", "4_2")
    manager.vbox._api_checked = False
    reply = await api.get("/v1/virtualbox/vms")
    assert reply.status == 409 and "API version is lower than 4.3" in reply.json["message"]


async def test_two_vms_start_together_calls_stay_serialised(api, project, standin: StandIn) -> None:
    standin.create_base_vm("VM2", disk=False, nics={1: "null"})
    pid = project["project_id"]
    first = await create(api, pid, name="a", adapters=1)
    second = await create(api, pid, name="b", vmname="VM2", adapters=1)
    for vm in (first, second):
        assert (await api.post(f"{base(pid)}/{vm['vm_id']}/adapters/0/ports/0/nio", await udp_link(api, pid))).status \
            == 201
    standin.mark()
    replies = await asyncio.gather(*(api.post(f"{base(pid)}/{vm['vm_id']}/start") for vm in (first, second)))
    assert [r.status for r in replies] == [204, 204]
    calls = standin.calls()
    assert {c["argv"][1] for c in calls if c["argv"][0] == "startvm"} == {BASE_VM, "VM2"}
    names = [c["argv"][1] if c["argv"][0] != "guestproperty" else c["argv"][2] for c in calls]
    assert names.index("VM2") < len(names) - 1 - names[::-1].index(BASE_VM)  # the two starts interleaved
    ordered = sorted(calls, key=lambda c: c["start"])
    for earlier, later in zip(ordered, ordered[1:], strict=False):
        assert earlier["end"] <= later["start"], (earlier["argv"], later["argv"])  # never two at once
    replies = await asyncio.gather(*(api.post(f"{base(pid)}/{vm['vm_id']}/stop") for vm in (first, second)))
    assert [r.status for r in replies] == [204, 204]


async def test_vm_of_unknown_id_and_bad_body(api, project, standin: StandIn) -> None:
    pid = project["project_id"]
    reply = await api.post(f"{base(pid)}/{uuid.uuid4()}/start")
    assert reply.status == 404
    vm = await create(api, pid)
    reply = await api.put(f"{base(pid)}/{vm['vm_id']}", {"adapter_type": "x" * 1000})
    assert reply.status == 400


async def test_hardware_virtualization_held_by_another_emulator(api, project, standin: StandIn, gns3_server) -> None:
    pid = project["project_id"]
    vm = await create(api, pid)
    kvm_guest = SimpleNamespace(hw_virtualization=True, status="started")
    gns3_server.emulators["kvm-user"] = SimpleNamespace(vms={"x": kvm_guest})
    try:
        reply = await api.post(f"{base(pid)}/{vm['vm_id']}/start")
        assert reply.status == 409 and "hardware virtualization (VT-x/AMD-V) is already used" in reply.json["message"]
        standin.run("modifyvm", BASE_VM, "--hwvirtex", "off")  # a VM without VT-x/AMD-V may start
        assert (await api.post(f"{base(pid)}/{vm['vm_id']}/start")).status == 204
        assert (await api.post(f"{base(pid)}/{vm['vm_id']}/stop")).status == 204
    finally:
        del gns3_server.emulators["kvm-user"]
