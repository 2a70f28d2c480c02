"""The VBoxManage stand-in's state: registered machines, media, snapshots and the sessions of running VMs.

This is test equipment, not VirtualBox. Like VirtualBox it keeps a global registry (`VirtualBox.xml` in
`$VBOX_USER_HOME`, default `~/.config/VirtualBox`) listing the registered machines and the base disks, and one
settings file per machine (`<name>.vbox`, next to its disks) holding its hardware, extra data, snapshots and the
media it owns (the differencing images of its snapshots and linked clones). Unregistering a machine leaves its
settings file on disk; registering that file again brings the same machine back. The XML written here is the
stand-in's own, smaller than VirtualBox's.

A running VM is a process (`VBoxHeadless` next to this file); its session is recorded under
`standin-sessions/<uuid>.json`, VBoxManage reaches it on the abstract UNIX socket `vbox-standin-<uuid>`, and the
process writes its run state (`running`, `paused`) beside the session. A session whose process is gone ends as
`poweroff` when the process said goodbye (`<uuid>.exit`) and `aborted` otherwise, as VirtualBox reports a VM
process that crashed.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

NIC_TYPES = ("Am79C970A", "Am79C973", "Am79C960", "82540EM", "82543GC", "82545EM", "virtio")
ATTACHMENTS = ("none", "null", "nat", "bridged", "intnet", "hostonly", "generic", "natnetwork")
MAX_NICS = {"piix3": 8, "ich9": 36}
CONTROLLER_TYPES = {"sata": "IntelAhci", "ide": "PIIX4", "scsi": "LsiLogic", "sas": "LsiLogicSas",
                    "floppy": "I82078", "virtio": "VirtioSCSI", "usb": "USB", "pcie": "NVMe"}
API_VERSION = os.environ.get("VBOX_STANDIN_API_VERSION", "7_0")
VERSION = "7.0.14_standin"


class VBoxError(Exception):
    """What VBoxManage prints on stderr before exiting with `code` (1: refused, 2: syntax error)."""

    def __init__(self, message: str, code: int = 1, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details

    def stderr(self) -> str:
        lines = [f"VBoxManage: error: {line}" for line in self.message.splitlines()]
        if self.details:
            lines.append(f"VBoxManage: error: Details: {self.details}")
        return "\n".join(lines) + "\n"


def home_dir() -> Path:
    raw = os.environ.get("VBOX_USER_HOME") or os.path.expanduser("~/.config/VirtualBox")
    return Path(raw).absolute()


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def new_mac() -> str:
    return "080027" + "".join(f"{random.randrange(256):02X}" for _ in range(3))


@dataclass
class NIC:
    attachment: str = "none"
    type: str = "82540EM"
    mac: str = field(default_factory=new_mac)
    cable: bool = True
    generic_driver: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    trace: bool = False
    tracefile: str = ""


@dataclass
class UART:
    enabled: bool = False
    iobase: str = "0x03f8"
    irq: int = 4
    mode: str = "disconnected"  # disconnected | server | client | tcpserver | file
    path: str = ""


@dataclass
class Attachment:
    controller: str
    port: int
    device: int
    type: str = "hdd"
    medium: str = ""  # a medium uuid; "" for an empty drive


@dataclass
class Snapshot:
    uuid: str
    name: str
    parent: str = ""
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class Medium:
    uuid: str
    location: str
    parent: str = ""
    capacity_mb: int = 0


@dataclass
class Machine:
    uuid: str
    name: str
    settings_file: str
    ostype: str = "Linux_64"
    memory: int = 128
    chipset: str = "piix3"
    hwvirtex: bool = True
    last_state: str = "poweroff"
    state_changed: float = field(default_factory=time.time)
    nics: dict[int, NIC] = field(default_factory=dict)
    uart: UART = field(default_factory=UART)
    controllers: dict[str, str] = field(default_factory=dict)  # name -> type
    attachments: list[Attachment] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    current_snapshot: str = ""
    extradata: dict[str, str] = field(default_factory=dict)
    guestproperties: dict[str, str] = field(default_factory=dict)
    media: dict[str, Medium] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return Path(self.settings_file).parent

    @property
    def max_nics(self) -> int:
        return MAX_NICS.get(self.chipset, 8)

    def nic(self, slot: int) -> NIC:
        return self.nics.setdefault(slot, NIC())

    def attachment(self, controller: str, port: int, device: int) -> Attachment | None:
        for item in self.attachments:
            if (item.controller, item.port, item.device) == (controller, port, device):
                return item
        return None


# -- XML ---------------------------------------------------------------------------------------------------------------

def _bool(value: str | None) -> bool:
    return value == "true"


def _text(value: bool) -> str:
    return "true" if value else "false"


def _attachments_xml(parent: ET.Element, attachments: list[Attachment]) -> None:
    for item in attachments:
        ET.SubElement(parent, "AttachedDevice", controller=item.controller, port=str(item.port),
                      device=str(item.device), type=item.type, medium=item.medium)


def _attachments_of(parent: ET.Element) -> list[Attachment]:
    return [Attachment(e.get("controller", ""), int(e.get("port", "0")), int(e.get("device", "0")),
                       e.get("type", "hdd"), e.get("medium", "")) for e in parent.findall("AttachedDevice")]


def machine_to_xml(machine: Machine) -> bytes:
    root = ET.Element("VirtualBox", version="standin-1")
    root.append(ET.Comment(" written by the VBoxManage stand-in of the gns3core tests, not by VirtualBox "))
    node = ET.SubElement(root, "Machine", uuid=machine.uuid, name=machine.name, OSType=machine.ostype,
                         currentSnapshot=machine.current_snapshot, lastState=machine.last_state,
                         lastStateChange=repr(machine.state_changed))
    media = ET.SubElement(node, "MediaRegistry")
    for medium in machine.media.values():
        ET.SubElement(media, "HardDisk", uuid=medium.uuid, location=medium.location, parent=medium.parent,
                      capacity=str(medium.capacity_mb))
    extradata = ET.SubElement(node, "ExtraData")
    for key, value in machine.extradata.items():
        ET.SubElement(extradata, "ExtraDataItem", name=key, value=value)
    hardware = ET.SubElement(node, "Hardware")
    ET.SubElement(hardware, "Memory", RAMSize=str(machine.memory))
    ET.SubElement(hardware, "Chipset", type=machine.chipset)
    ET.SubElement(hardware, "HardwareVirtEx", enabled=_text(machine.hwvirtex))
    network = ET.SubElement(hardware, "Network")
    for slot, nic in sorted(machine.nics.items()):
        adapter = ET.SubElement(network, "Adapter", slot=str(slot), attachment=nic.attachment, type=nic.type,
                                MACAddress=nic.mac, cable=_text(nic.cable), trace=_text(nic.trace),
                                traceFile=nic.tracefile, driver=nic.generic_driver)
        for key, value in nic.properties.items():
            ET.SubElement(adapter, "Property", name=key, value=value)
    uart = machine.uart
    ET.SubElement(hardware, "UARTPort", slot="0", enabled=_text(uart.enabled), IOBase=uart.iobase,
                  IRQ=str(uart.irq), hostMode=uart.mode, path=uart.path)
    properties = ET.SubElement(hardware, "GuestProperties")
    for key, value in machine.guestproperties.items():
        ET.SubElement(properties, "GuestProperty", name=key, value=value)
    storage = ET.SubElement(node, "StorageControllers")
    for name, kind in machine.controllers.items():
        ET.SubElement(storage, "StorageController", name=name, type=kind)
    _attachments_xml(storage, machine.attachments)
    for snapshot in machine.snapshots:
        element = ET.SubElement(node, "Snapshot", uuid=snapshot.uuid, name=snapshot.name, parent=snapshot.parent)
        _attachments_xml(element, snapshot.attachments)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def machine_from_xml(path: Path) -> Machine:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise VBoxError(f"Could not open the settings file '{path}' ({exc})") from None
    node = root.find("Machine")
    if node is None:
        raise VBoxError(f"Settings file '{path}' holds no machine")
    machine = Machine(uuid=node.get("uuid", ""), name=node.get("name", ""), settings_file=str(path),
                      ostype=node.get("OSType", "Linux_64"), current_snapshot=node.get("currentSnapshot", ""),
                      last_state=node.get("lastState", "poweroff"),
                      state_changed=float(node.get("lastStateChange", "0") or 0))
    for element in node.iterfind("MediaRegistry/HardDisk"):
        medium = Medium(element.get("uuid", ""), element.get("location", ""), element.get("parent", ""),
                        int(element.get("capacity", "0")))
        machine.media[medium.uuid] = medium
    for element in node.iterfind("ExtraData/ExtraDataItem"):
        machine.extradata[element.get("name", "")] = element.get("value", "")
    hardware = node.find("Hardware")
    if hardware is not None:
        machine.memory = int(hardware.find("Memory").get("RAMSize", "128"))
        machine.chipset = hardware.find("Chipset").get("type", "piix3")
        machine.hwvirtex = _bool(hardware.find("HardwareVirtEx").get("enabled"))
        for element in hardware.iterfind("Network/Adapter"):
            nic = NIC(attachment=element.get("attachment", "none"), type=element.get("type", "82540EM"),
                      mac=element.get("MACAddress", ""), cable=_bool(element.get("cable")),
                      generic_driver=element.get("driver", ""), trace=_bool(element.get("trace")),
                      tracefile=element.get("traceFile", ""))
            nic.properties = {p.get("name", ""): p.get("value", "") for p in element.findall("Property")}
            machine.nics[int(element.get("slot", "1"))] = nic
        uart = hardware.find("UARTPort")
        if uart is not None:
            machine.uart = UART(_bool(uart.get("enabled")), uart.get("IOBase", "0x03f8"), int(uart.get("IRQ", "4")),
                                uart.get("hostMode", "disconnected"), uart.get("path", ""))
        for element in hardware.iterfind("GuestProperties/GuestProperty"):
            machine.guestproperties[element.get("name", "")] = element.get("value", "")
    storage = node.find("StorageControllers")
    if storage is not None:
        for element in storage.findall("StorageController"):
            machine.controllers[element.get("name", "")] = element.get("type", "")
        machine.attachments = _attachments_of(storage)
    for element in node.findall("Snapshot"):
        machine.snapshots.append(Snapshot(element.get("uuid", ""), element.get("name", ""),
                                          element.get("parent", ""), _attachments_of(element)))
    return machine


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -- sessions ----------------------------------------------------------------------------------------------------------

def process_alive(pid: int, marker: str) -> bool:
    """The pid is a live (not zombie) process whose command line carries `marker` (the machine's uuid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X") and marker.encode() in cmdline


class Registry:
    """Everything VirtualBox knows, loaded from `home`; one VBoxManage run holds `lock()` while it works."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home or home_dir()
        self.path = self.home / "VirtualBox.xml"
        self.sessions = self.home / "standin-sessions"
        self.machine_files: dict[str, str] = {}  # uuid -> settings file
        self.media: dict[str, Medium] = {}  # the global media registry (base disks)
        self._machines: dict[str, Machine] = {}
        self._lock_file = None

    def lock(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.home / "standin.lock", "w")  # noqa: SIM115 - held until the process ends
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)

    def load(self) -> Registry:
        if self.path.is_file():
            root = ET.parse(self.path).getroot()
            for element in root.iterfind("MachineRegistry/MachineEntry"):
                self.machine_files[element.get("uuid", "")] = element.get("src", "")
            for element in root.iterfind("MediaRegistry/HardDisk"):
                medium = Medium(element.get("uuid", ""), element.get("location", ""), element.get("parent", ""),
                                int(element.get("capacity", "0")))
                self.media[medium.uuid] = medium
        return self

    def save(self) -> None:
        root = ET.Element("VirtualBox", version="standin-1")
        root.append(ET.Comment(" written by the VBoxManage stand-in of the gns3core tests, not by VirtualBox "))
        machines = ET.SubElement(root, "MachineRegistry")
        for machine_uuid, src in self.machine_files.items():
            ET.SubElement(machines, "MachineEntry", uuid=machine_uuid, src=src)
        media = ET.SubElement(root, "MediaRegistry")
        for medium in self.media.values():
            ET.SubElement(media, "HardDisk", uuid=medium.uuid, location=medium.location, parent=medium.parent,
                          capacity=str(medium.capacity_mb))
        ET.indent(root)
        write_file(self.path, ET.tostring(root, encoding="utf-8", xml_declaration=True))
        for machine in self._machines.values():
            if machine.uuid in self.machine_files:
                self.save_machine(machine)

    @staticmethod
    def save_machine(machine: Machine) -> None:
        write_file(Path(machine.settings_file), machine_to_xml(machine))

    # -- machines --------------------------------------------------------------------------------------------------

    def machine(self, machine_uuid: str) -> Machine:
        machine = self._machines.get(machine_uuid)
        if machine is None:
            machine = machine_from_xml(Path(self.machine_files[machine_uuid]))
            self._machines[machine_uuid] = machine
        return machine

    def machines(self) -> list[Machine]:
        found = []
        for machine_uuid in self.machine_files:
            try:
                found.append(self.machine(machine_uuid))
            except VBoxError:
                continue  # an inaccessible machine: its settings file is gone
        return found

    def inaccessible(self) -> list[str]:
        return [u for u, src in self.machine_files.items() if not Path(src).is_file()]

    def find(self, name_or_uuid: str) -> Machine:
        for machine in self.machines():
            if name_or_uuid in (machine.name, machine.uuid, "{" + machine.uuid + "}"):
                return machine
        raise VBoxError(f"Could not find a registered machine named '{name_or_uuid}'",
                        details="code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component VirtualBoxWrap, "
                                "interface IVirtualBox, callee nsISupports")

    def register(self, machine: Machine) -> None:
        for other in self.machines():
            if other.uuid == machine.uuid:
                raise VBoxError(f"Cannot register the machine '{machine.name}' ({machine.settings_file}) because a "
                                f"machine with UUID {{{machine.uuid}}} already exists",
                                details="code VBOX_E_OBJECT_IN_USE (0x80bb000c), component VirtualBoxWrap, "
                                        "interface IVirtualBox")
        self.machine_files[machine.uuid] = machine.settings_file
        self._machines[machine.uuid] = machine

    def unregister(self, machine: Machine) -> None:
        self.save_machine(machine)
        self.machine_files.pop(machine.uuid, None)
        self._machines.pop(machine.uuid, None)

    # -- media -----------------------------------------------------------------------------------------------------

    def all_media(self) -> dict[str, Medium]:
        """Every medium VirtualBox knows: the global registry and those of registered machines."""
        media = dict(self.media)
        for machine in self.machines():
            media.update(machine.media)
        return media

    def find_medium(self, location_or_uuid: str) -> Medium | None:
        wanted = os.path.abspath(location_or_uuid) if "/" in location_or_uuid else location_or_uuid
        for medium in self.all_media().values():
            if wanted in (medium.uuid, medium.location):
                return medium
        return None

    def forget_medium(self, medium: Medium) -> None:
        self.media.pop(medium.uuid, None)
        for machine in self.machines():
            machine.media.pop(medium.uuid, None)

    # -- sessions --------------------------------------------------------------------------------------------------

    def session(self, machine: Machine) -> dict | None:
        """The live session of a machine, or None (a dead one is closed here and its end recorded)."""
        path = self.sessions / f"{machine.uuid}.json"
        try:
            session = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if process_alive(session["pid"], machine.uuid):
            return session
        exit_marker = self.sessions / f"{machine.uuid}.exit"
        machine.last_state = "poweroff" if exit_marker.exists() else "aborted"
        machine.state_changed = time.time()
        for suffix in (".json", ".exit", ".state"):
            try:
                (self.sessions / f"{machine.uuid}{suffix}").unlink()
            except FileNotFoundError:
                pass
        self.save_machine(machine)
        return None

    def state(self, machine: Machine) -> str:
        """VMState as showvminfo reports it."""
        if self.session(machine) is None:
            return machine.last_state
        try:
            return (self.sessions / f"{machine.uuid}.state").read_text().strip() or "starting"
        except OSError:
            return "starting"

    @staticmethod
    def control_socket(machine: Machine) -> str:
        """Where `controlvm` reaches the VM process: an abstract UNIX socket (no file, no path-length limit)."""
        return f"\0vbox-standin-{machine.uuid}"
