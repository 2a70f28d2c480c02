"""VMware settings files and the decisions made on them, tested as plain functions: parsing and writing, the start
edits and their undoing, the VMnet pool, linked-clone records, vmrun command lines and version strings."""

from __future__ import annotations

from pathlib import Path

import pytest
from gns3_vmware import clones, inventory
from gns3_vmware.vmnet import VMnetPool, configured_vmnets, vmnet_number, vnet_interface
from gns3_vmware.vmrun import check_product_version, running_vmx_paths, vmrun_argv
from gns3_vmware.vmx import VMXError, VMXFile
from gns3_vmware.vmx_edits import edit_for_start, restore_after_stop

from gns3core.emulator.nio import NIONAT, NIOUDP, NIOVMNET
from gns3core.errors import Conflict

WORKSTATION_VMX = (
    b'#!/usr/bin/vmware\n'
    b'.encoding = "UTF-8"\n'
    b'config.version = "8"\n'
    b'virtualHW.version = "12"\n'
    b'displayName = "Debian \xc3\xa9t\xc3\xa9"\n'
    b'ethernet0.present = "TRUE"\n'
    b'ethernet0.connectionType = "nat"\n'
    b'ethernet0.virtualDev = "e1000"\n'
    b'ethernet0.addressType = "generated"\n'
    b'ethernet0.generatedAddress = "00:0c:29:aa:bb:cc"\n'
    b'ethernet1.present = "TRUE"\n'
    b'ethernet1.connectionType="custom"\n'
    b'ethernet1.vnet = "/dev/vmnet3"\n'
    b'# a comment VMware keeps\n'
    b'\n'
    b'serial0.present = "FALSE"\n'
)


ROUND_TRIP_FILES = {
    "workstation": WORKSTATION_VMX,
    "crlf, no final newline": b'.encoding = "UTF-8"\r\nconfig.version = "8"\r\nmemsize = "512"',
    "windows-1252 with bytes it lacks": b'.encoding = "windows-1252"\nannotation = "caf\xe9 \x81\x9d"\n',
    "unknown encoding": b'.encoding = "x-unknown"\nannotation = "\xff\xfe"\n',
    "invalid utf-8": b'config.version = "8"\nannotation = "\xc3\x28 \xa0"\n',
    "duplicates, odd spacing, unquoted": b'a = "1"\nA   =   "2"\nb=3\n  c = ""\ngarbage line\n',
    "empty": b"",
    "form feed and NEL in values": b'annotation = "x\x0cy\xc2\x85z"\n',
}


@pytest.mark.parametrize("name", ROUND_TRIP_FILES)
def test_parse_then_write_changes_nothing(name: str, tmp_path: Path) -> None:
    data = ROUND_TRIP_FILES[name]
    assert VMXFile.parse(data).to_bytes() == data
    path = tmp_path / "vm.vmx"
    path.write_bytes(data)
    path.chmod(0o751)
    VMXFile.read(path).write(path)
    assert path.read_bytes() == data
    assert path.stat().st_mode & 0o777 == 0o751


def test_parsing_reads_keys_case_insensitively_and_decodes_the_declared_encoding() -> None:
    vmx = VMXFile.parse(WORKSTATION_VMX)
    assert vmx.get("DISPLAYNAME") == "Debian été"
    assert vmx.get("ethernet1.connectiontype") == "custom"
    assert vmx.is_true("ethernet0.present") and not vmx.is_true("serial0.present")
    assert "#!/usr/bin/vmware" not in vmx.items()
    latin = VMXFile.parse(b'.encoding = "windows-1252"\nannotation = "caf\xe9"\n')
    assert latin.encoding == "cp1252" and latin.get("annotation") == "café"
    assert VMXFile.parse(b'a = "1"\nA = "2"\n').get("a") == "2"  # the last one wins, as in VMware


def test_set_keeps_the_line_and_its_spelling_and_appends_new_keys_lower_case() -> None:
    vmx = VMXFile.parse(b'.encoding = "UTF-8"\r\nethernet0.connectionType = "nat"\r\nmemsize = "512"')
    vmx.set("ETHERNET0.CONNECTIONTYPE", "custom")
    vmx.set("ethernet0.vnet", "vmnet5")
    assert vmx.to_bytes() == (b'.encoding = "UTF-8"\r\nethernet0.connectionType = "custom"\r\nmemsize = "512"\r\n'
                              b'ethernet0.vnet = "vmnet5"\r\n')
    with pytest.raises(VMXError):
        vmx.set("annotation", 'a"\nserial0.fileName = "/etc/passwd')


def test_an_oversized_or_missing_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.vmx"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(VMXError, match="larger than"):
        VMXFile.read(big, limit=1024)
    with pytest.raises(VMXError, match="Could not read"):
        VMXFile.read(tmp_path / "missing.vmx")


# -- the start edits and their undoing ------------------------------------------------------------------------------


def plan(vmx: VMXFile, *, adapters: int = 2, nios=None, pool=None, **options):
    pool = pool or VMnetPool(2, 255)
    free = ["vmnet10", "vmnet11", "vmnet12"]
    settings = {"adapter_type": "e1000", "use_any_adapter": False, "use_ubridge": True, **options}
    return edit_for_start(vmx, adapters=adapters, nios=nios or {}, pipe="/tmp/gns3_vmware/id",
                          allocate=lambda: free.pop(0), manages=pool.manages, **settings)


def test_start_edits_are_exactly_the_specified_ones() -> None:
    vmx = VMXFile.parse(b'config.version = "8"\nethernet3.present = "TRUE"\nethernet3.connectionType = "nat"\n')
    nio = NIOUDP(10000, "127.0.0.1", 10001)
    edits = plan(vmx, nios={0: nio})
    assert vmx.to_bytes().decode().splitlines() == [
        'config.version = "8"',
        'ethernet3.present = "TRUE"',
        'ethernet3.connectionType = "nat"',
        'ethernet0.present = "TRUE"',
        'ethernet0.addresstype = "generated"',
        'ethernet0.generatedaddressoffset = "0"',
        'ethernet0.virtualdev = "e1000"',
        'ethernet0.connectiontype = "custom"',
        'ethernet0.vnet = "vmnet10"',
        'ethernet1.present = "TRUE"',
        'ethernet1.addresstype = "generated"',
        'ethernet1.generatedaddressoffset = "0"',
        'ethernet1.virtualdev = "e1000"',
        'ethernet1.connectiontype = "custom"',
        'ethernet1.vnet = "vmnet11"',
        'ethernet3.startconnected = "FALSE"',  # an adapter beyond the count starts unplugged
        'serial0.present = "TRUE"',
        'serial0.filetype = "pipe"',
        'serial0.filename = "/tmp/gns3_vmware/id"',
        'serial0.pipe.endpoint = "server"',
    ]
    assert edits.bridged == {0: "vmnet10", 1: "vmnet11"} and edits.allocated == ["vmnet10", "vmnet11"]


def test_restore_after_stop_gives_back_the_file_byte_for_byte() -> None:
    vmx = VMXFile.parse(WORKSTATION_VMX)
    edits = plan(vmx, adapters=3, use_any_adapter=True, nios={0: NIOUDP(1, "h", 2)}, pool=VMnetPool(10, 30))
    assert vmx.to_bytes() != WORKSTATION_VMX
    assert vmx.get("ethernet1.vnet") == "/dev/vmnet3" and edits.bridged[1] == "vmnet3"  # the user's own VMnet
    vmx.set("ethernet2.generatedAddress", "00:0c:29:01:02:03")  # what VMware wrote while it ran
    vmx.set("ethernet0.generatedAddress", "00:0c:29:aa:bb:cc")
    restore_after_stop(vmx, edits.undo)
    assert vmx.to_bytes() == WORKSTATION_VMX


def test_adapters_vmware_attaches_itself_are_left_alone_unless_allowed() -> None:
    vmx = VMXFile.parse(WORKSTATION_VMX)
    edits = plan(vmx, adapters=1)
    assert vmx.get("ethernet0.connectiontype") == "nat" and 0 not in edits.bridged
    with pytest.raises(Conflict, match=r"Attachment \(nat\) already configured on network adapter 0"):
        plan(VMXFile.parse(WORKSTATION_VMX), adapters=1, nios={0: NIOUDP(1, "h", 2)})


def test_nat_and_vmnet_links_and_a_differing_adapter_type() -> None:
    vmx = VMXFile.parse(b'config.version = "8"\n')
    edits = plan(vmx, adapters=2, nios={0: NIONAT(), 1: NIOVMNET("vmnet42")})
    assert vmx.get("ethernet0.connectiontype") == "nat" and vmx.get("ethernet0.vnet") is None
    assert vmx.get("ethernet1.connectiontype") == "custom" and vmx.get("ethernet1.vnet") == "vmnet42"
    assert edits.bridged == {} and edits.allocated == []
    with pytest.raises(Conflict, match="not of type vmxnet3.*set adapter_type to e1000 or default"):
        plan(VMXFile.parse(WORKSTATION_VMX), adapters=1, adapter_type="vmxnet3", use_any_adapter=True)
    default = VMXFile.parse(WORKSTATION_VMX)
    plan(default, adapters=1, adapter_type="default", use_any_adapter=True)
    assert default.get("ethernet0.virtualdev") == "e1000"


def test_without_ubridge_unlinked_adapters_start_unplugged() -> None:
    vmx = VMXFile.parse(b'config.version = "8"\n')
    edits = plan(vmx, adapters=1, use_ubridge=False)
    assert vmx.get("ethernet0.startconnected") == "FALSE" and edits.bridged == {}


def test_a_managed_or_vmnet0_vnet_is_replaced_by_an_allocated_one() -> None:
    for vnet in ("vmnet0", "vmnet20"):
        vmx = VMXFile.parse(f'ethernet0.present = "TRUE"\nethernet0.connectionType = "custom"\n'
                            f'ethernet0.vnet = "{vnet}"\n'.encode())
        edits = plan(vmx, adapters=1, pool=VMnetPool(10, 30))
        assert edits.bridged == {0: "vmnet10"} and vmx.get("ethernet0.vnet") == "vmnet10"


# -- VMnets -------------------------------------------------------------------------------------------------------


def test_vmnet_pool_excludes_vmware_defaults_those_in_use_and_those_out_of_range() -> None:
    networking = "VERSION=1,0\nanswer VNET_1_VIRTUAL_ADAPTER yes\nanswer VNET_2_VIRTUAL_ADAPTER yes\n" \
                 "answer VNET_2_DHCP no\nanswer VNET_8_VIRTUAL_ADAPTER yes\nanswer VNET_5_VIRTUAL_ADAPTER yes\n" \
                 "answer VNET_9_VIRTUAL_ADAPTER yes\nanswer VNET_30_VIRTUAL_ADAPTER yes\n"
    available = configured_vmnets(networking) | {0, 7}
    assert available == {0, 1, 2, 5, 7, 8, 9, 30}
    pool = VMnetPool(2, 9)
    assert pool.free(available, set()) == ["vmnet2", "vmnet5", "vmnet7", "vmnet9"]
    assert pool.free(available, {"vmnet2", "vmnet7"}) == ["vmnet5", "vmnet9"]
    assert pool.free(available, {"vmnet2", "vmnet5", "vmnet7", "vmnet9"}) == []
    assert pool.exhausted().message == ("No VMnet interface available between vmnet2 and vmnet9. Go to preferences "
                                        "VMware / Network / Configure to add more interfaces.")
    assert pool.manages("vmnet9") and not pool.manages("vmnet8") and not pool.manages("vmnet30")
    assert vmnet_number("vmnet12") == 12 and vmnet_number("eth0") is None and vmnet_number("vmnet1x") is None
    assert vnet_interface("/dev/vmnet3") == "vmnet3" and vnet_interface("VMnet4") == "vmnet4"


# -- linked clones and the inventory ------------------------------------------------------------------------------


VMSD = (b'.encoding = "UTF-8"\nsnapshot.lastUID = "2"\nsnapshot.numSnapshots = "2"\n'
        b'snapshot0.uid = "1"\nsnapshot0.displayName = "before upgrade"\nsnapshot0.numClones = "1"\n'
        b'snapshot0.clone0 = "/vms/other/other.vmx"\n'
        b'snapshot1.uid = "2"\nsnapshot1.displayName = "GNS3 Linked Base for clones"\n'
        b'snapshot1.numClones = "2"\nsnapshot1.clone0 = "/p/a/a.vmx"\nsnapshot1.clone1 = "/p/b/b.vmx"\n')


def test_linked_clone_records_are_removed_from_the_base_snapshot_only() -> None:
    vmsd = VMXFile.parse(VMSD)
    prefix = clones.snapshot_prefix(vmsd)
    assert prefix == "snapshot1"
    clones.forget_clones(vmsd, prefix)
    text = vmsd.to_bytes().decode()
    assert 'snapshot1.numClones = "1"' in text and "snapshot1.clone" not in text
    assert 'snapshot0.numClones = "1"' in text and 'snapshot0.clone0 = "/vms/other/other.vmx"' in text
    assert clones.snapshot_prefix(VMXFile.parse(b'snapshot0.displayName = "x"\n')) is None


def test_clone_file_names_stay_in_the_node_directory() -> None:
    assert clones.clone_file_name("R1 (lab)") == "R1 (lab).vmx"
    assert clones.clone_file_name("../../etc/x") == "_.._etc_x.vmx"
    assert clones.clone_file_name("...") == "vm.vmx"
    assert "/" not in clones.clone_file_name("a/b\\c\x00d")


def test_inventory_entries_of_a_clone_are_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "inventory.vmls"
    original = (b'.encoding = "UTF-8"\nvmlist1.config = "/vms/base/base.vmx"\nvmlist1.DisplayName = "base"\n'
                b'vmlist2.config = "/p/clone/clone.vmx"\nvmlist2.DisplayName = "clone"\nvmlist2.IsClone = "TRUE"\n'
                b'index0.field0.name = "guestOS"\n')
    path.write_bytes(original)
    assert inventory.forget_in_inventory("/p/clone/clone.vmx", path)
    assert path.read_bytes() == (b'.encoding = "UTF-8"\nvmlist1.config = "/vms/base/base.vmx"\n'
                                 b'vmlist1.DisplayName = "base"\nindex0.field0.name = "guestOS"\n')
    assert not inventory.forget_in_inventory("/p/clone/clone.vmx", path)


# -- vmrun --------------------------------------------------------------------------------------------------------


def test_vmrun_command_lines_are_argument_lists() -> None:
    assert vmrun_argv("/usr/bin/vmrun", "ws", "start", "/vms/a b/a.vmx", "nogui") == [
        "/usr/bin/vmrun", "-T", "ws", "start", "/vms/a b/a.vmx", "nogui"]
    assert running_vmx_paths("Total running VMs: 2\n/vms/a.vmx\n/vms/b c/b.vmx\n") == ["/vms/a.vmx", "/vms/b c/b.vmx"]
    assert running_vmx_paths("Total running VMs: 0\n") == []


def test_product_versions() -> None:
    assert check_product_version("VMware Workstation 12.5.9 build-7535481\n").startswith("VMware Workstation 12")
    assert check_product_version("VMware Player 6.0.7 build-2844087").startswith("VMware Player 6")
    with pytest.raises(Conflict, match="Using VMware Workstation requires version 10 or above"):
        check_product_version("VMware Workstation 9.0.2 build-1031769")
    with pytest.raises(Conflict, match="Using VMware Player requires version 6 or above"):
        check_product_version("VMware Player 5.0.0 build-812388")
    with pytest.raises(Conflict, match="Could not determine the VMware version"):
        check_product_version("something else")
