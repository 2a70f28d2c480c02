"""How a VM's adapters are wired: the VBoxManage calls for a start, a stop, a link added or removed while it runs.

Plain functions from what the VM knows to argument lists, so the plans are tested without running anything.
Adapter `n` of VBoxManage is the API's `adapter_number + 1`. VirtualBox speaks the UDP tunnel itself (its generic
`UDPTunnel` driver) and writes the pcap of a captured adapter itself (`nictrace`), so no bridge is needed.
"""

from __future__ import annotations

from collections.abc import Mapping

from gns3core.emulator.nio import NIO, NIONAT, NIOUDP
from gns3core.errors import Conflict

DEFAULT_ADAPTER_TYPE = "Intel PRO/1000 MT Desktop (82540EM)"
ADAPTER_TYPES = {
    "PCnet-PCI II (Am79C970A)": "Am79C970A",
    "PCNet-FAST III (Am79C973)": "Am79C973",
    "Intel PRO/1000 MT Desktop (82540EM)": "82540EM",
    "Intel PRO/1000 T Server (82543GC)": "82543GC",
    "Intel PRO/1000 MT Server (82545EM)": "82545EM",
    "Paravirtualized Network (virtio-net)": "virtio",
}
FREE_ATTACHMENTS = ("none", "null", "generic")  # what GNS3 may take over without `use_any_adapter`

Call = list[str]


def nic_type(adapter_type: str) -> str:
    """VBoxManage's name of an adapter model; unknown names get the default model, as the reference did."""
    return ADAPTER_TYPES.get(adapter_type, "82540EM")


def check_attachment(adapter_number: int, attachment: str, nio: NIO, use_any_adapter: bool) -> None:
    """409 when a link would replace an attachment the user set up in VirtualBox (bridged, host-only, ...)."""
    if isinstance(nio, NIONAT) or use_any_adapter or attachment in FREE_ATTACHMENTS:
        return
    raise Conflict(f"Attachment ({attachment}) already configured on adapter {adapter_number + 1}. Please set it to "
                   "'Not attached' to allow GNS3 to use it.")


def start_plan(info: Mapping[str, str], nios: Mapping[int, NIO], adapters: int, max_adapters: int,
               use_any_adapter: bool, adapter_type: str) -> list[Call]:
    """The `modifyvm` options (one call each) that wire every adapter before `startvm`.

    Every attachment is checked before the first call, so a refused start changes nothing.
    """
    for index in range(adapters):
        nio = nios.get(index)
        if nio is not None:
            check_attachment(index, info.get(f"nic{index + 1}", "none"), nio, use_any_adapter)
    calls: list[Call] = []
    for index in range(adapters):
        n = index + 1
        attachment = info.get(f"nic{n}", "none")
        if attachment == "null":
            calls.append([f"--cableconnected{n}", "off"])
        elif attachment == "none":
            calls += [[f"--nic{n}", "null"], [f"--cableconnected{n}", "off"]]
        nio = nios.get(index)
        if nio is None:
            continue
        calls += [[f"--nictrace{n}", "off"], [f"--nictype{n}", nic_type(adapter_type)]]
        if isinstance(nio, NIOUDP):
            calls += [[f"--nic{n}", "generic"], [f"--nicgenericdrv{n}", "UDPTunnel"],
                      [f"--nicproperty{n}", f"sport={nio.lport}"], [f"--nicproperty{n}", f"dest={nio.rhost}"],
                      [f"--nicproperty{n}", f"dport={nio.rport}"], [f"--cableconnected{n}", "on"]]
        elif isinstance(nio, NIONAT):
            calls += [[f"--nic{n}", "nat"], [f"--cableconnected{n}", "on"]]
        if nio.capture_file is not None:
            calls += [[f"--nictrace{n}", "on"], [f"--nictracefile{n}", str(nio.capture_file)]]
    for n in range(adapters + 1, max_adapters + 1):
        if info.get(f"nic{n}", "none") != "none":  # already off: no call needed
            calls.append([f"--nic{n}", "none"])
    return calls


def stop_plan(connected: list[int]) -> list[Call]:
    """The `modifyvm` options after a stop: serial port off, linked adapters unplugged and detached."""
    calls: list[Call] = [["--uart1", "off"]]
    for index in connected:
        n = index + 1
        calls += [[f"--nictrace{n}", "off"], [f"--cableconnected{n}", "off"], [f"--nic{n}", "null"]]
    return calls


def hot_add_plan(adapter_number: int, nio: NIO) -> list[Call]:
    """The `controlvm` operations that link an adapter of a running VM."""
    n = adapter_number + 1
    if isinstance(nio, NIOUDP):
        return [[f"nic{n}", "generic", "UDPTunnel"], [f"nicproperty{n}", f"sport={nio.lport}"],
                [f"nicproperty{n}", f"dest={nio.rhost}"], [f"nicproperty{n}", f"dport={nio.rport}"],
                [f"setlinkstate{n}", "on"]]
    if isinstance(nio, NIONAT):
        return [[f"nic{n}", "nat"], [f"setlinkstate{n}", "on"]]
    raise Conflict(f"NIO of type {nio.type} is not supported")


def hot_remove_plan(adapter_number: int) -> list[Call]:
    """The `controlvm` operations that unlink an adapter of a running VM."""
    n = adapter_number + 1
    return [[f"setlinkstate{n}", "off"], [f"nic{n}", "null"]]
