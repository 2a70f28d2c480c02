"""Every VMware route against the stand-in VMware: the VM list, creation rules, the vmrun command lines, the VMX
edits at start and stop, VMnets, NIOs, captures, linked clones and how failures are answered."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from standin_host import StandinVMware
from vmware_helpers import base, create_vm, udp_nio, vm_url

from gns3core.testing.ports import free_vpcs_udp_port

pytestmark = pytest.mark.timeout(120)


def vmrun_calls(standin: StandinVMware) -> list[list[str]]:
    """vmrun calls without `-T ws` (checked once below)."""
    calls = standin.calls()
    assert all(call[:2] == ["-T", "ws"] for call in calls), calls
    return [call[2:] for call in calls]


# -- GET /v1/vmware/vms -------------------------------------------------------------------------------------------


async def test_list_from_the_default_folder_then_from_the_inventory(api, standin: StandinVMware) -> None:
    first = standin.make_vm("alpha")
    second = standin.make_vm("beta")
    (standin.vm_folder / "notes.vmx").write_text("no display name here\n")
    reply = await api.get("/v1/vmware/vms")
    assert reply.status == 200
    assert reply.json == [{"vmname": "alpha", "vmx_path": str(first)}, {"vmname": "beta", "vmx_path": str(second)}]
    elsewhere = standin.make_vm("gamma", folder=standin.root / "elsewhere")
    (standin.home / ".vmware" / "inventory.vmls").write_text(
        f'.encoding = "UTF-8"\nvmlist1.config = "{elsewhere}"\nvmlist1.DisplayName = "gamma"\n'
        f'vmlist2.config = "/nowhere/gone.vmx"\nvmlist2.DisplayName = "gone"\n')
    reply = await api.get("/v1/vmware/vms")
    assert reply.json == [{"vmname": "gamma", "vmx_path": str(elsewhere)}]  # the inventory wins; missing files skip


async def test_list_from_the_preferred_folder(api, standin: StandinVMware) -> None:
    folder = standin.root / "my-vms"
    vmx = standin.make_vm("delta", folder=folder)
    (standin.home / ".vmware" / "preferences").write_text(f'prefvmx.defaultVMPath = "{folder}"\n')
    assert (await api.get("/v1/vmware/vms")).json == [{"vmname": "delta", "vmx_path": str(vmx)}]


@pytest.mark.parametrize(("product", "message"), [
    ("VMware Workstation 9.0.4 build-1945795", "Using VMware Workstation requires version 10 or above"),
    ("VMware Player 5.0.4 build-1945795", "Using VMware Player requires version 6 or above"),
    ("not a version", "Could not determine the VMware version"),
])
async def test_list_checks_the_vmware_version(api, standin: StandinVMware, product: str, message: str) -> None:
    standin.configure(product=product)
    reply = await api.get("/v1/vmware/vms")
    assert reply.status == 409 and message in reply.json["message"]


async def test_list_without_vmware(api, standin: StandinVMware, monkeypatch) -> None:
    (standin.bin_dir / "vmware").unlink()
    monkeypatch.setenv("PATH", "/nonexistent")
    reply = await api.get("/v1/vmware/vms")
    assert reply.status == 409 and reply.json["message"].startswith("VMware is not installed")


# -- create -------------------------------------------------------------------------------------------------------


async def test_create_answers_the_vm_object(api, project, standin: StandinVMware) -> None:
    vmx = standin.make_vm("alpha")
    vm = await create_vm(api, project, vmx, console=None)
    assert {k: v for k, v in vm.items() if k not in ("vm_id", "console", "vm_directory")} == {
        "name": "vm1", "project_id": project["project_id"], "status": "stopped", "vmx_path": str(vmx),
        "linked_clone": False, "enable_remote_console": False, "headless": False, "acpi_shutdown": False,
        "adapters": 0, "adapter_type": "e1000", "use_ubridge": True, "use_any_adapter": False}
    assert Path(vm["vm_directory"]).is_dir() and vm["vm_directory"].endswith(f"vmware/{vm['vm_id']}")
    assert standin.calls() == []  # nothing to ask vmrun for a VM that is not a linked clone


async def test_create_refuses_what_is_not_a_vmx_file(api, project, standin: StandinVMware, tmp_path: Path) -> None:
    url = base(project["project_id"])
    body = {"name": "x", "linked_clone": False}
    plain = standin.vm_folder / "plain.vmx"
    plain.write_text('displayName = "not a VM"\n')
    cases = [
        ("relative/x.vmx", 409, "must be absolute"),
        (str(standin.vm_folder / "x.txt"), 409, "is not a VMX file (its name must end with .vmx)"),
        (str(standin.vm_folder / "missing.vmx"), 409, 'could not find VMX file "'),
        (str(plain), 409, "is not a VMware VMX file"),
        (str(standin.vm_folder), 409, "is not a VMX file"),
    ]
    for path, status, message in cases:
        reply = await api.post(url, {**body, "vmx_path": path})
        assert reply.status == status and message in reply.json["message"], (path, reply)
        assert 'VMware VM "x" [' in reply.json["message"]
    for field, value in (("name", "n" * 257), ("vmx_path", "/" + "d" * 4096), ("adapter_type", 'e1000"'),
                         ("adapters", 11)):
        reply = await api.post(url, {**body, "vmx_path": str(plain), field: value})
        assert reply.status == 400, field


async def test_a_remote_server_takes_vmx_files_only_from_vm_folders(api, project, standin: StandinVMware,
                                                                     gns3_server) -> None:
    outside = standin.make_vm("outside", folder=standin.root / "outside")
    reply = await api.post(base(project["project_id"]), {"name": "x", "vmx_path": str(outside),
                                                         "linked_clone": False})
    assert reply.status == 409
    assert reply.json["message"].startswith('VMware VM "x" [')
    assert f"The VMX file {outside} is not allowed on this server: use a path inside {standin.vm_folder}" \
        in reply.json["message"] and "a local server" in reply.json["message"]
    link = standin.vm_folder / "link.vmx"
    link.symlink_to(outside)  # a symlink does not carry a file into the folder
    reply = await api.post(base(project["project_id"]), {"name": "x", "vmx_path": str(link), "linked_clone": False})
    assert reply.status == 409 and "is not allowed on this server" in reply.json["message"]
    # Registered in VMware's inventory: VMware's own VM, allowed.
    (standin.home / ".vmware" / "inventory.vmls").write_text(f'vmlist1.config = "{outside}"\n')
    await create_vm(api, project, outside)
    assert len(gns3_server.emulators["vmware"].vms) == 1


async def test_a_local_server_takes_any_vmx_file(api, project, standin: StandinVMware, gns3_server) -> None:
    gns3_server.config.set("Server", "local", "true")
    gns3_server.apply_config()
    outside = standin.make_vm("outside", folder=standin.root / "outside")
    await create_vm(api, project, outside)


async def test_one_vm_is_one_node_unless_cloned(api, project, standin: StandinVMware) -> None:
    vmx = standin.make_vm("alpha")
    await create_vm(api, project, vmx)
    reply = await api.post(base(project["project_id"]), {"name": "again", "vmx_path": str(vmx),
                                                         "linked_clone": False})
    assert reply.status == 409 and "already used by VMware VM vm1" in reply.json["message"]


# -- lifecycle and the vmrun command lines ------------------------------------------------------------------------


async def test_lifecycle_command_lines_and_status(api, project, standin: StandinVMware) -> None:
    vmx = standin.make_vm("alpha")
    vm = await create_vm(api, project, vmx, headless=True, acpi_shutdown=True)
    url = vm_url(project, vm)
    assert (await api.post(f"{url}/start")).status == 204
    assert (await api.get(url)).json["status"] == "started"
    assert (await api.post(f"{url}/suspend")).status == 204
    assert (await api.get(url)).json["status"] == "suspended"
    assert standin.running()[str(vmx)]["paused"]
    assert (await api.post(f"{url}/resume")).status == 204
    assert (await api.post(f"{url}/reload")).status == 204
    assert (await api.post(f"{url}/stop")).status == 204
    assert (await api.get(url)).json["status"] == "stopped"
    assert (await api.post(f"{url}/stop")).status == 204  # stopping a stopped VM: nothing to do
    path = str(vmx)
    assert vmrun_calls(standin) == [
        ["list"], ["start", path, "nogui"], ["pause", path], ["unpause", path], ["reset", path],
        ["list"], ["stop", path, "soft"]]
    standin.clear_calls()
    assert (await api.put(url, {"headless": False, "acpi_shutdown": False})).status == 200
    assert (await api.post(f"{url}/start")).status == 204
    assert (await api.post(f"{url}/start")).status == 204  # already started: nothing to do
    assert (await api.post(f"{url}/stop")).status == 204
    assert vmrun_calls(standin) == [["list"], ["start", path], ["list"], ["stop", path]]
    assert standin.overlapping_calls() == []


async def test_vm_events(api, project, standin: StandinVMware) -> None:
    vm = await create_vm(api, project, standin.make_vm("alpha"))
    url = vm_url(project, vm)
    async with api.client.get(f"/v1/projects/{project['project_id']}/notifications") as stream:
        await stream.content.readline()
        assert (await api.post(f"{url}/start")).status == 204
        assert (await api.post(f"{url}/stop")).status == 204
        actions = []
        async with asyncio.timeout(10):
            while len(actions) < 2:
                event = json.loads(await stream.content.readline())
                if event["action"] != "ping":
                    actions.append((event["action"], event["event"]["vm_id"], event["event"]["status"]))
    assert actions == [("vm.started", vm["vm_id"], "started"), ("vm.stopped", vm["vm_id"], "stopped")]


async def test_vmx_edits_at_start_and_the_file_back_at_stop(api, project, standin: StandinVMware) -> None:
    vmx = standin.make_vm("alpha", adapters={
        0: {"present": "TRUE", "connectionType": "custom", "vnet": "/dev/vmnet0", "virtualDev": "e1000",
            "addressType": "generated", "generatedAddress": "00:0c:29:11:22:33"},
        4: {"present": "TRUE", "connectionType": "bridged"}})
    original = vmx.read_bytes()
    vm = await create_vm(api, project, vmx, adapters=2)
    url = vm_url(project, vm)
    assert (await api.post(f"{url}/start")).status == 204
    first, second = f"vmnet{standin.vmnet_start}", f"vmnet{standin.vmnet_start + 1}"
    pipe = f"{standin.temp_dir}/gns3_vmware/{vm['vm_id']}"
    original_lines = original.decode().splitlines()
    lines = vmx.read_text().splitlines()
    generated = lines[-1].split('"')[1] if lines[-1].startswith("ethernet1.generatedAddress") else "?"
    assert lines == [
        # The file's own lines keep their place and spelling; only the VMnet of adapter 0 changes.
        *(line.replace('ethernet0.vnet = "/dev/vmnet0"', f'ethernet0.vnet = "{first}"') for line in original_lines),
        'ethernet0.generatedaddressoffset = "0"',
        'ethernet1.present = "TRUE"',
        'ethernet1.addresstype = "generated"',
        'ethernet1.generatedaddressoffset = "0"',
        'ethernet1.virtualdev = "e1000"',
        'ethernet1.connectiontype = "custom"',
        f'ethernet1.vnet = "{second}"',
        'ethernet4.startconnected = "FALSE"',
        'serial0.present = "TRUE"',
        'serial0.filetype = "pipe"',
        f'serial0.filename = "{pipe}"',
        'serial0.pipe.endpoint = "server"',
        f'ethernet1.generatedAddress = "{generated}"',  # what the stand-in "VMware" wrote at power-on
    ]
    assert generated.startswith("00:0c:29:")
    assert sorted(standin.vmnet_interfaces()) == sorted([first, second])
    assert (await api.post(f"{url}/stop")).status == 204
    assert vmx.read_bytes() == original
    assert not (Path(vm["vm_directory"]) / "vmx-restore.json").exists()


async def test_a_vmx_the_server_does_not_change_stays_byte_for_byte(api, project, standin: StandinVMware) -> None:
    vmx = standin.make_vm("alpha", extra='serial0.present = "TRUE"\nserial0.fileType = "pipe"\n')
    vm = await create_vm(api, project, vmx)
    url = vm_url(project, vm)
    original = vmx.read_bytes()
    stat = vmx.stat()
    assert (await api.put(url, {"name": "renamed", "adapters": 0, "headless": True})).status == 200
    assert (await api.get(url)).status == 200
    assert vmx.read_bytes() == original and vmx.stat().st_mtime_ns == stat.st_mtime_ns
    assert (await api.delete(url)).status == 204
    assert vmx.read_bytes() == original and vmx.stat().st_mtime_ns == stat.st_mtime_ns


async def test_a_failed_start_leaves_the_vmx_as_it_was(api, project, standin: StandinVMware) -> None:
    vmx = standin.make_vm("alpha")
    original = vmx.read_bytes()
    vm = await create_vm(api, project, vmx, adapters=1)
    url = vm_url(project, vm)
    standin.configure(fail={"start": "Error: Insufficient permissions in host operating system"})
    reply = await api.post(f"{url}/start")
    assert reply.status == 409
    assert reply.json["message"] == "vmrun has returned an error: Error: Insufficient permissions in host " \
                                    "operating system"
    assert vmx.read_bytes() == original
    standin.configure()
    # The VMnet of the failed run was given back: the next start gets the same one.
    assert (await api.post(f"{url}/start")).status == 204
    assert f'ethernet0.vnet = "vmnet{standin.vmnet_start}"' in vmx.read_text()
    assert (await api.post(f"{url}/stop")).status == 204


async def test_a_failed_wiring_stops_the_vm_again(api, project, standin: StandinVMware) -> None:
    vmx = standin.make_vm("alpha")
    original = vmx.read_bytes()
    vm = await create_vm(api, project, vmx, adapters=1)
    url = vm_url(project, vm)
    nio = await udp_nio(api, project, free_vpcs_udp_port())
    assert (await api.post(f"{url}/adapters/0/ports/0/nio", nio)).status == 201
    blocker = subprocess.Popen(["python3", "-c", f"import socket,time; s=socket.socket(socket.AF_INET, "
                                f"socket.SOCK_DGRAM); s.bind(('0.0.0.0', {nio['lport']})); print(1, flush=True); "
                                "time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        blocker.stdout.readline()
        reply = await api.post(f"{url}/start")
        assert reply.status == 409 and "already in use" in reply.json["message"]
    finally:
        blocker.kill()
        blocker.wait()
    assert standin.running() == {} and (await api.get(url)).json["status"] == "stopped"
    assert vmx.read_bytes() == original
    assert vmrun_calls(standin)[-2:] == [["list"], ["stop", str(vmx)]]


async def test_start_refuses_a_vm_vmware_already_runs(api, project, standin: StandinVMware) -> None:
    vmx = standin.make_vm("alpha")
    vm = await create_vm(api, project, vmx)
    subprocess.run([standin.vmrun, "-T", "ws", "start", str(vmx), "nogui"], check=True)
    try:
        reply = await api.post(f"{vm_url(project, vm)}/start")
        assert reply.status == 409 and reply.json["message"] == "The VM is already running in VMware"
    finally:
        subprocess.run([standin.vmrun, "-T", "ws", "stop", str(vmx)], check=True)


async def test_an_unfinished_run_is_put_back_before_the_next(api, project, standin: StandinVMware,
                                                             gns3_server) -> None:
    vmx = standin.make_vm("alpha")
    original = vmx.read_bytes()
    vm = await create_vm(api, project, vmx, adapters=1)
    url = vm_url(project, vm)
    assert (await api.post(f"{url}/start")).status == 204
    # As if the server had been killed: VMware stops the VM, the in-memory state is gone, the record stays.
    node = gns3_server.emulators["vmware"].get_vm(vm["vm_id"])
    node._watch.cancel()
    await node.links.stop()
    node.edits, node.status = None, "stopped"
    subprocess.run([standin.vmrun, "-T", "ws", "stop", str(vmx)], check=True)
    assert vmx.read_bytes() != original
    assert (await api.post(f"{url}/start")).status == 204
    assert (await api.post(f"{url}/stop")).status == 204
    assert vmx.read_bytes() == original


async def test_updates_while_running(api, project, standin: StandinVMware) -> None:
    vm = await create_vm(api, project, standin.make_vm("alpha"), adapters=1)
    url = vm_url(project, vm)
    assert (await api.post(f"{url}/start")).status == 204
    try:
        reply = await api.put(url, {"adapters": 3})
        assert reply.status == 409 and "stop it before changing adapters" in reply.json["message"]
        assert (await api.put(url, {"adapters": 1, "name": "same-count"})).status == 200  # unchanged: fine
        assert (await api.put(url, {"headless": True})).json["headless"] is True
    finally:
        assert (await api.post(f"{url}/stop")).status == 204
    other = standin.make_vm("beta")
    reply = await api.put(url, {"vmx_path": str(other), "adapters": 3})
    assert reply.status == 200 and reply.json["vmx_path"] == str(other) and reply.json["adapters"] == 3


async def test_vmrun_missing_or_misnamed(api, project, standin: StandinVMware, gns3_server) -> None:
    vm = await create_vm(api, project, standin.make_vm("alpha"))
    gns3_server.config.set("VMware", "vmrun_path", str(standin.bin_dir / "vmware"))
    reply = await api.post(f"{vm_url(project, vm)}/start")
    assert reply.status == 409 and "is not the vmrun program" in reply.json["message"]
    gns3_server.config.set("VMware", "vmrun_path", str(standin.root / "vmrun"))
    reply = await api.post(f"{vm_url(project, vm)}/start")
    assert reply.status == 409 and "does not exist or is not executable" in reply.json["message"]


async def test_player_cannot_pause_nor_clone(api, project, standin: StandinVMware, gns3_server) -> None:
    gns3_server.config.set("VMware", "host_type", "player")
    vmx = standin.make_vm("alpha")
    reply = await api.post(base(project["project_id"]), {"name": "c", "vmx_path": str(vmx), "linked_clone": True})
    assert reply.status == 409 and reply.json["message"] == "Linked clones are not supported by VMware Player"
    vm = await create_vm(api, project, vmx)
    url = vm_url(project, vm)
    assert (await api.post(f"{url}/start")).status == 204
    reply = await api.post(f"{url}/suspend")
    assert reply.status == 409 and reply.json["message"] == "Pausing a VM is only supported by VMware Workstation"
    assert (await api.post(f"{url}/stop")).status == 204
    assert all(call[:2] == ["-T", "player"] for call in standin.calls())


async def test_vmrun_calls_are_serialised_and_time_out(api, project, standin: StandinVMware, gns3_server) -> None:
    vms = [await create_vm(api, project, standin.make_vm(f"vm{i}"), name=f"vm{i}") for i in range(3)]
    standin.configure(delay={"list": 0.3})
    replies = await asyncio.gather(*(api.post(f"{vm_url(project, vm)}/start") for vm in vms))
    assert [r.status for r in replies] == [204, 204, 204]
    assert standin.overlapping_calls() == []
    replies = await asyncio.gather(*(api.post(f"{vm_url(project, vm)}/stop") for vm in vms))
    assert [r.status for r in replies] == [204, 204, 204]
    assert standin.overlapping_calls() == []
    standin.configure(delay={"list": 3})
    runner = gns3_server.emulators["vmware"].vmrun_runner
    with pytest.raises(Exception, match="vmrun has timed out after 1 seconds!"):
        await runner.run([standin.vmrun, "-T", "ws", "list"], timeout=1)


# -- VMnets -------------------------------------------------------------------------------------------------------


async def test_vmnet_allocation(api, project, standin: StandinVMware) -> None:
    standin.set_vmnets([1, 8, standin.vmnet_start, standin.vmnet_start + 1, standin.vmnet_end + 1])
    vm = await create_vm(api, project, standin.make_vm("alpha"))
    url = vm_url(project, vm)
    reply = await api.post(f"{url}/interfaces/vmnet")
    assert reply.status == 201 and reply.json == {"vmnet": f"vmnet{standin.vmnet_start}"}
    reply = await api.post(f"{url}/interfaces/vmnet")
    assert reply.json == {"vmnet": f"vmnet{standin.vmnet_start + 1}"}
    reply = await api.post(f"{url}/interfaces/vmnet")  # vmnet1, vmnet8 and the one out of range never
    assert reply.status == 409
    assert reply.json["message"] == (f"No VMnet interface available between vmnet{standin.vmnet_start} and "
                                     f"vmnet{standin.vmnet_end}. Go to preferences VMware / Network / Configure to "
                                     "add more interfaces.")
    # A VM that goes away gives its VMnets back; a running VM keeps its own.
    assert (await api.delete(url)).status == 204
    other = await create_vm(api, project, standin.make_vm("beta"), name="beta", adapters=1)
    assert (await api.post(f"{vm_url(project, other)}/start")).status == 204
    third = await create_vm(api, project, standin.make_vm("gamma"), name="gamma")
    reply = await api.post(f"{vm_url(project, third)}/interfaces/vmnet")
    assert reply.json == {"vmnet": f"vmnet{standin.vmnet_start + 1}"}
    assert (await api.post(f"{vm_url(project, other)}/stop")).status == 204


async def test_start_without_a_free_vmnet(api, project, standin: StandinVMware) -> None:
    standin.set_vmnets([standin.vmnet_start])
    vmx = standin.make_vm("alpha")
    original = vmx.read_bytes()
    vm = await create_vm(api, project, vmx, adapters=2)
    reply = await api.post(f"{vm_url(project, vm)}/start")
    assert reply.status == 409 and reply.json["message"].startswith("No VMnet interface available between")
    assert vmx.read_bytes() == original and standin.calls() == [["-T", "ws", "list"]]


# -- NIOs and captures ----------------------------------------------------------------------------------------------


async def test_nat_and_vmnet_links_are_written_for_the_run(api, project, standin: StandinVMware) -> None:
    vmx = standin.make_vm("alpha")
    original = vmx.read_bytes()
    vm = await create_vm(api, project, vmx, adapters=3)
    url = vm_url(project, vm)
    assert (await api.post(f"{url}/adapters/0/ports/0/nio", {"type": "nio_nat"})).json == {"type": "nio_nat"}
    own = standin.own_vmnet
    reply = await api.post(f"{url}/adapters/1/ports/0/nio", {"type": "nio_vmnet", "vmnet": own})
    assert reply.status == 201 and reply.json == {"type": "nio_vmnet", "vmnet": own}
    assert vmx.read_bytes() == original  # written at start, not before
    reply = await api.post(f"{url}/adapters/1/ports/0/start_capture", {"capture_file_name": "x.pcap"})
    assert reply.status == 409 and "nio_vmnet link is attached by vmware itself" in reply.json["message"]
    for body in ({"type": "nio_vmnet", "vmnet": "eth0"}, {"type": "nio_null"}):
        assert (await api.post(f"{url}/adapters/2/ports/0/nio", body)).status == 409
    reply = await api.post(f"{url}/adapters/3/ports/0/nio", {"type": "nio_nat"})
    assert reply.status == 409 and "Adapter 3 doesn't exist on VMware VM vm1" in reply.json["message"]
    assert (await api.post(f"{url}/adapters/0/ports/1/nio", {"type": "nio_nat"})).status == 409
    assert (await api.post(f"{url}/start")).status == 204
    text = vmx.read_text()
    assert 'ethernet0.connectiontype = "nat"' in text and "ethernet0.vnet" not in text
    assert f'ethernet1.vnet = "{own}"' in text
    assert f'ethernet2.vnet = "vmnet{standin.vmnet_start}"' in text
    assert standin.vmnet_interfaces() == sorted([f"vmnet{standin.vmnet_start}", own])
    assert (await api.post(f"{url}/stop")).status == 204
    assert vmx.read_bytes() == original
    assert (await api.delete(f"{url}/adapters/1/ports/0/nio")).status == 204
    assert (await api.delete(f"{url}/adapters/1/ports/0/nio")).status == 204  # no NIO there: fine


async def test_capture_requested_while_stopped_starts_with_the_vm(api, project, standin: StandinVMware) -> None:
    vm = await create_vm(api, project, standin.make_vm("alpha"), adapters=1)
    url = vm_url(project, vm)
    port = f"{url}/adapters/0/ports/0"
    reply = await api.post(f"{port}/start_capture", {"capture_file_name": "a.pcap", "data_link_type": "DLT_EN10MB"})
    assert reply.status == 409 and reply.json["message"] == "Adapter 0 is not connected"
    assert (await api.post(f"{port}/nio", await udp_nio(api, project, free_vpcs_udp_port()))).status == 201
    reply = await api.post(f"{port}/start_capture", {"capture_file_name": "a.pcap"})
    assert reply.status == 200
    pcap = Path(reply.json["pcap_file_path"])
    assert pcap.parent == Path(project["path"]) / "project-files" / "captures" and not pcap.exists()
    reply = await api.post(f"{port}/start_capture", {"capture_file_name": "../../escape.pcap"})
    assert reply.status == 403
    assert (await api.post(f"{url}/start")).status == 204
    assert pcap.exists() and pcap.read_bytes()[:4] == bytes.fromhex("d4c3b2a1")
    assert (await api.post(f"{port}/stop_capture")).status == 204
    assert (await api.post(f"{url}/stop")).status == 204


# -- linked clones ------------------------------------------------------------------------------------------------


async def test_linked_clone_lifecycle(api, project, standin: StandinVMware, gns3_server) -> None:
    base_vmx = standin.make_vm("base")
    vmsd = base_vmx.with_suffix(".vmsd")
    reply = await api.post(base(project["project_id"]), {"name": "R1", "vmx_path": str(base_vmx),
                                                         "linked_clone": True, "adapters": 1})
    assert reply.status == 201, reply
    vm = reply.json
    clone = Path(vm["vm_directory"]) / "R1.vmx"
    assert vm["vmx_path"] == str(clone) and vm["linked_clone"] and clone.is_file()
    snapshot = "GNS3 Linked Base for clones"
    assert vmrun_calls(standin) == [
        ["snapshot", str(base_vmx), snapshot],
        ["clone", str(base_vmx), str(clone), "linked", f"-snapshot={snapshot}", "-cloneName=R1"]]
    text = vmsd.read_text()
    assert f'snapshot0.displayName = "{snapshot}"' in text
    assert 'snapshot0.numClones = "0"' in text and "snapshot0.clone0" not in text  # VMware's record removed
    inventory = standin.home / ".vmware" / "inventory.vmls"
    assert str(clone) in inventory.read_text()

    # The same id again (a project re-opened): the clone is there, nothing is cloned again.
    standin.clear_calls()
    reply = await api.post(base(project["project_id"]), {"vm_id": vm["vm_id"], "name": "R1",
                                                         "vmx_path": str(base_vmx), "linked_clone": True})
    assert reply.status == 201 and reply.json["vmx_path"] == str(clone)
    # A second clone of the same base: the snapshot exists already.
    reply = await api.post(base(project["project_id"]), {"name": "R2", "vmx_path": str(base_vmx),
                                                         "linked_clone": True})
    assert reply.status == 201
    second = Path(reply.json["vmx_path"])
    assert vmrun_calls(standin) == [
        ["clone", str(base_vmx), str(second), "linked", f"-snapshot={snapshot}", "-cloneName=R2"]]

    # The clone runs like any VM; its base is untouched.
    base_before = base_vmx.read_bytes()
    url = vm_url(project, vm)
    assert (await api.post(f"{url}/start")).status == 204
    assert standin.running().keys() == {str(clone)}
    assert (await api.post(f"{url}/stop")).status == 204
    assert base_vmx.read_bytes() == base_before

    # Deleting a clone takes it out of VMware's inventory; its files go with the project's next commit.
    assert (await api.delete(url)).status == 204
    assert str(clone) not in inventory.read_text() and str(second) in inventory.read_text()
    assert (await api.post(f"/v1/projects/{project['project_id']}/commit")).status == 204
    assert not clone.exists()
    assert (await api.post(f"/v1/projects/{project['project_id']}/close")).status == 204
    assert str(second) not in inventory.read_text()


async def test_linked_clone_node_names_cannot_leave_the_node_directory(api, project, standin) -> None:
    base_vmx = standin.make_vm("base")
    reply = await api.post(base(project["project_id"]), {"name": "../../../../etc/evil", "vmx_path": str(base_vmx),
                                                         "linked_clone": True})
    assert reply.status == 201
    clone = Path(reply.json["vmx_path"])
    assert clone.parent == Path(reply.json["vm_directory"]) and clone.name == "_.._.._.._etc_evil.vmx"
    assert vmrun_calls(standin)[-1][-1] == "-cloneName=../../../../etc/evil"  # just VMware's display name


async def test_a_failed_clone_creates_no_node(api, project, standin: StandinVMware, gns3_server) -> None:
    base_vmx = standin.make_vm("base")
    standin.configure(fail={"clone": "Error: Insufficient disk space on destination"})
    reply = await api.post(base(project["project_id"]), {"name": "R1", "vmx_path": str(base_vmx),
                                                         "linked_clone": True})
    assert reply.status == 409
    assert reply.json["message"] == "vmrun has returned an error: Error: Insufficient disk space on destination"
    assert gns3_server.emulators["vmware"].vms == {}


async def test_closing_the_project_stops_the_vm_and_puts_the_vmx_back(api, standin: StandinVMware) -> None:
    project = (await api.post("/v1/projects", {"name": "closing"})).json
    vmx = standin.make_vm("alpha")
    original = vmx.read_bytes()
    vm = await create_vm(api, project, vmx, adapters=1, enable_remote_console=True)
    assert (await api.post(f"{vm_url(project, vm)}/start")).status == 204
    assert (await api.post(f"/v1/projects/{project['project_id']}/close")).status == 204
    assert standin.running() == {} and vmx.read_bytes() == original
    assert not (standin.temp_dir / "gns3_vmware" / vm["vm_id"]).exists()
