"""The plugin's plain functions: VBoxManage discovery, its answers, and the network plans of §5.3 of the spec."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from gns3_virtualbox import linked_clone, network
from gns3_virtualbox.vboxmanage import (
    find_program,
    parse_api_version,
    parse_blocks,
    parse_machine_readable,
    parse_vm_list,
)
from vbox_lab import VBOXMANAGE

from gns3core.emulator.nio import NIONAT, NIOUDP
from gns3core.errors import Conflict, EmulatorError, Forbidden

SHOWVMINFO = '''name="VM 1"
CfgFile="/vms/VM 1/VM 1.vbox"
memory=256
VMState="running"
"SATA-0-0"="/vms/VM 1/disk=1.vdi"
"SATA-ImageUUID-0-0"="6af4f26f-3a64-4962-86be-c1bf82281da1"
nic1="nat"
description="two
lines"
'''


def test_machine_readable_and_lists() -> None:
    info = parse_machine_readable(SHOWVMINFO)
    assert info["name"] == "VM 1" and info["memory"] == "256" and info["VMState"] == "running"
    assert info["SATA-0-0"] == "/vms/VM 1/disk=1.vdi" and info["nic1"] == "nat"
    assert parse_vm_list('"VM 1" {212f6d02-6363-4b7a-b22a-2cc4d71f7e7c}\n"<inaccessible>" {0-1}\ngarbage\n') == [
        ("VM 1", "212f6d02-6363-4b7a-b22a-2cc4d71f7e7c"), ("<inaccessible>", "0-1")]
    blocks = parse_blocks("UUID:  a\nState: created\nLocation: /x/a.vdi\n\nUUID: b\nState: inaccessible\n")
    assert blocks == [{"UUID": "a", "State": "created", "Location": "/x/a.vdi"}, {"UUID": "b", "State": "inaccessible"}]
    assert parse_api_version("7_0") == (7, 0) and parse_api_version("4_2") < (4, 3)
    assert parse_api_version("?") is None


def test_program_comes_from_the_configuration_or_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_program(str(VBOXMANAGE)) == str(VBOXMANAGE)
    with pytest.raises(EmulatorError, match="does not exist"):
        find_program(str(tmp_path / "VBoxManage"))
    with pytest.raises(EmulatorError, match="Invalid VBoxManage executable name sh"):
        find_program("/bin/sh")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmulatorError, match="VirtualBox is not installed"):
        find_program(None)
    (tmp_path / "vboxmanage").symlink_to(VBOXMANAGE)
    assert find_program(None) == str(tmp_path / "vboxmanage")
    assert find_program("vboxmanage") == str(tmp_path / "vboxmanage")  # a bare name is looked up on PATH
    plain = tmp_path / "other" / "VBoxManage"
    plain.parent.mkdir()
    plain.write_text("#!/bin/sh\n")
    os.chmod(plain, 0o644)
    with pytest.raises(EmulatorError, match="not executable"):
        find_program(str(plain))


def test_start_plan_wires_links_and_refuses_taken_adapters() -> None:
    udp = NIOUDP(20000, "127.0.0.1", 20001)
    udp.capture_file = Path("/p/captures/a.pcap")
    info = {"nic1": "none", "nic2": "null", "nic3": "nat", "nic4": "bridged", "nic5": "none", "nic6": "nat"}
    plan = network.start_plan(info, {0: udp, 2: NIONAT()}, 4, 8, False, "PCNet-FAST III (Am79C973)")
    assert plan == [
        ["--nic1", "null"], ["--cableconnected1", "off"],
        ["--nictrace1", "off"], ["--nictype1", "Am79C973"], ["--nic1", "generic"], ["--nicgenericdrv1", "UDPTunnel"],
        ["--nicproperty1", "sport=20000"], ["--nicproperty1", "dest=127.0.0.1"], ["--nicproperty1", "dport=20001"],
        ["--cableconnected1", "on"], ["--nictrace1", "on"], ["--nictracefile1", "/p/captures/a.pcap"],
        ["--cableconnected2", "off"],
        ["--nictrace3", "off"], ["--nictype3", "Am79C973"], ["--nic3", "nat"], ["--cableconnected3", "on"],
        ["--nic6", "none"],
    ]
    with pytest.raises(Conflict, match=r"Attachment \(bridged\) already configured on adapter 4"):
        network.start_plan(info, {3: udp}, 4, 8, False, network.DEFAULT_ADAPTER_TYPE)
    assert ["--nic4", "generic"] in network.start_plan(info, {3: udp}, 4, 8, True, "unknown model")
    assert network.nic_type("unknown model") == "82540EM"


def test_stop_and_hot_plans() -> None:
    assert network.stop_plan([1]) == [["--uart1", "off"], ["--nictrace2", "off"], ["--cableconnected2", "off"],
                                      ["--nic2", "null"]]
    assert network.hot_add_plan(0, NIONAT()) == [["nic1", "nat"], ["setlinkstate1", "on"]]
    assert network.hot_add_plan(2, NIOUDP(1, "h", 2))[0] == ["nic3", "generic", "UDPTunnel"]
    assert network.hot_remove_plan(1) == [["setlinkstate2", "off"], ["nic2", "null"]]


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "-x", ".hidden", "a\\b", "x" * 256])
def test_clone_names_that_would_leave_the_project(name: str) -> None:
    with pytest.raises(Conflict):
        linked_clone.check_clone_name(name)


def test_hdd_info_is_read_defensively(tmp_path: Path) -> None:
    folder = tmp_path / "R1"
    folder.mkdir()
    (folder / "hdd_info.json").write_text(json.dumps([
        {"hdd": "{a}.vdi", "controller": "SATA", "port": 0, "device": 0},
        {"hdd": "../../etc/passwd", "controller": "SATA", "port": 0, "device": 0},
        {"hdd": "b.vdi", "controller": "SATA", "port": "0", "device": 0},
        "junk",
    ]))
    assert linked_clone.recorded_disks(tmp_path, "R1") == [
        {"hdd": "{a}.vdi", "controller": "SATA", "port": 0, "device": 0}]
    (folder / "hdd_info.json").write_text("{not json")
    with pytest.raises(EmulatorError, match="Cannot read"):
        linked_clone.recorded_disks(tmp_path, "R1")
    with pytest.raises(Forbidden):
        linked_clone.recorded_disks(tmp_path, "../R1")
