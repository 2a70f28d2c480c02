"""Linked clones on the VBoxManage stand-in: made, renamed, handed back to VirtualBox on close, the same on reopen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vbox_lab import BASE_VM, StandIn

pytestmark = pytest.mark.timeout(180)

BASE_SNAPSHOT = "GNS3 Linked Base for clones"


def base(project_id: str) -> str:
    return f"/v1/projects/{project_id}/virtualbox/vms"


async def test_clone_survives_close_and_reopen(api, standin: StandIn) -> None:
    project = (await api.post("/v1/projects", {"name": "clones"})).json
    pid, lab = project["project_id"], Path(project["path"])
    standin.mark()
    reply = await api.post(base(pid), {"name": "R1", "vmname": BASE_VM, "linked_clone": True, "adapters": 1,
                                       "ram": 384})
    assert reply.status == 201, reply
    vm = reply.json
    vm_dir = lab / "project-files" / "virtualbox" / vm["vm_id"]
    assert vm["vmname"] == "R1" and vm["vm_directory"] == str(vm_dir) and vm["ram"] == 384
    assert standin.argv() == [
        ["list", "systemproperties"],
        ["showvminfo", BASE_VM, "--machinereadable"],
        ["list", "vms"],
        ["snapshot", BASE_VM, "take", BASE_SNAPSHOT],
        ["clonevm", BASE_VM, "--snapshot", BASE_SNAPSHOT, "--options", "link", "--name", "R1",
         "--basefolder", str(vm_dir), "--register"],
        ["setextradata", "R1", "GNS3/Clone", "yes"],
        ["snapshot", "R1", "take", "reset"],
        ["showvminfo", "R1", "--machinereadable"],
        ["modifyvm", "R1", "--memory", "384"],
    ]
    clone = standin.info("R1")
    assert clone["CfgFile"] == str(vm_dir / "R1" / "R1.vbox")
    disk = clone["SATA-0-0"]
    assert Path(disk).parent == vm_dir / "R1" / "Snapshots"
    assert standin.info(BASE_VM)["memory"] == "256"  # the base VM is untouched

    # a second clone reuses the base snapshot, and the host's VM list never shows GNS3's clones
    standin.mark()
    second = (await api.post(base(pid), {"name": "R2", "vmname": BASE_VM, "linked_clone": True})).json
    assert ["snapshot", BASE_VM, "take", BASE_SNAPSHOT] not in standin.argv()
    assert (await api.get("/v1/virtualbox/vms")).json == [{"vmname": BASE_VM, "ram": 256}]
    reply = await api.post(base(pid), {"name": "R1", "vmname": BASE_VM, "linked_clone": True})
    assert reply.status == 409 and "A VirtualBox VM named 'R1' already exists" in reply.json["message"]

    # the clone runs, then the project closes: disks detached, recorded, clone unregistered
    url = f"{base(pid)}/{vm['vm_id']}"
    assert (await api.post(f"{url}/start")).status == 204
    standin.mark()
    assert (await api.post(f"/v1/projects/{pid}/close")).status == 204
    argv = standin.argv()
    assert ["controlvm", "R1", "poweroff"] in argv
    detach = ["storageattach", "R1", "--storagectl", "SATA", "--port", "0", "--device", "0", "--type", "hdd",
              "--medium", "none"]
    assert argv[argv.index(detach) + 1:argv.index(detach) + 2] == [["unregistervm", "R1"]]
    assert set(standin.vms()) == {BASE_VM}
    hdd_info = json.loads((vm_dir / "R1" / "hdd_info.json").read_text())
    assert hdd_info == [{"hdd": Path(disk).name, "controller": "SATA", "port": 0, "device": 0}]
    assert not standin.running_pids()

    # reopen: the same VM (same VirtualBox UUID, same disk) comes back
    assert (await api.post("/v1/projects", {"name": "clones", "project_id": pid})).status == 201
    standin.mark()
    reply = await api.post(base(pid), {"vm_id": vm["vm_id"], "name": "R1", "vmname": "R1", "linked_clone": True,
                                       "adapters": 1, "ram": 384})
    assert reply.status == 201, reply
    assert reply.json == {**vm, "console": reply.json["console"]}
    assert standin.argv()[:3] == [
        ["list", "vms"],
        ["registervm", str(vm_dir / "R1" / "R1.vbox")],
        ["storageattach", "R1", "--storagectl", "SATA", "--port", "0", "--device", "0", "--type", "hdd",
         "--medium", disk],
    ]
    again = standin.info("R1")
    assert again["UUID"] == clone["UUID"] and again["SATA-0-0"] == disk
    assert (await api.post(f"{url}/start")).status == 204
    assert standin.info("R1")["VMState"] == "running"
    assert (await api.post(f"{url}/stop")).status == 204

    # the second clone was never reopened: deleting the project leaves nothing of it in VirtualBox
    assert (await api.delete(f"/v1/projects/{pid}")).status == 204
    assert set(standin.vms()) == {BASE_VM}
    assert not lab.exists()
    assert second["vm_id"]


async def test_rename_clone_and_forget_deleted_disks(api, standin: StandIn) -> None:
    pid = (await api.post("/v1/projects", {"name": "p"})).json["project_id"]
    vm = (await api.post(base(pid), {"name": "R1", "vmname": BASE_VM, "linked_clone": True})).json
    url = f"{base(pid)}/{vm['vm_id']}"
    standin.mark()
    reply = await api.put(url, {"vmname": "Edge"})
    assert reply.status == 200 and reply.json["vmname"] == "Edge" and reply.json["name"] == "R1"
    assert standin.argv() == [["modifyvm", "R1", "--name", "Edge"]]
    assert "Edge" in standin.vms() and "R1" not in standin.vms()
    assert Path(standin.info("Edge")["CfgFile"]) == Path(vm["vm_directory"]) / "Edge" / "Edge.vbox"
    reply = await api.put(url, {"vmname": "../outside"})
    assert reply.status == 409 and "cannot name a linked clone" in reply.json["message"]

    # deleting the project removes the clone's files; their disks become inaccessible to VirtualBox, and the next
    # project close makes VirtualBox forget them (differencing children before their parents)
    assert (await api.delete(f"/v1/projects/{pid}")).status == 204
    hdds = standin.run("list", "hdds").stdout
    assert hdds.count("State:          inaccessible") == 2
    other = (await api.post("/v1/projects", {"name": "q"})).json["project_id"]
    assert (await api.post(base(other), {"name": "n", "vmname": BASE_VM, "linked_clone": False})).status == 201
    standin.mark()
    assert (await api.post(f"/v1/projects/{other}/close")).status == 204
    closed = [a for a in standin.argv() if a[0] == "closemedium"]
    assert len(closed) == 2 and all(a[1] == "disk" for a in closed)
    assert "inaccessible" not in standin.run("list", "hdds").stdout
